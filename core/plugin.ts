// The plugin contract: an object with a required name and an apply function that taps hooks.

import { BesterError } from "./errors.js";
import type { Bester } from "./bester.js";

export interface BesterPlugin {
  /** Unique among the plugins of one server; every tap the plugin makes uses it. */
  readonly name: string;
  apply(bester: Bester): void | Promise<void>;
}

/**
 * Returns a lookup that gives each Bester instance its own value from `create`, made on first use.
 * A plugin keeps its own hooks this way, so other plugins of the same server can tap them.
 */
export function perInstance<T>(create: () => T): (bester: Bester) => T {
  const values = new WeakMap<Bester, T>();
  return (bester) => {
    let value = values.get(bester);
    if (value === undefined) {
      value = create();
      values.set(bester, value);
    }
    return value;
  };
}

const PLUGIN_NAME_PATTERN = /^[A-Za-z0-9@/._:-]{1,128}$/;

/** Throws `invalidPlugin` unless `value` has a usable name and an apply function. */
export function assertPlugin(value: unknown, where: string): asserts value is BesterPlugin {
  const candidate = value as Partial<BesterPlugin> | null;
  if (candidate === null || typeof candidate !== "object") {
    throw new BesterError("invalidPlugin", `${where} is ${candidate === null ? "null" : typeof candidate}, not a plugin object. Pass an object with a name and an apply(bester) function.`);
  }
  if (typeof candidate.name !== "string" || !PLUGIN_NAME_PATTERN.test(candidate.name)) {
    throw new BesterError("invalidPlugin", `${where} has no valid name (got ${JSON.stringify(candidate.name)}). Give the plugin a name of 1-128 characters from [A-Za-z0-9@/._:-].`);
  }
  if (typeof candidate.apply !== "function") {
    throw new BesterError("invalidPlugin", `Plugin "${candidate.name}" has no apply function. Add apply(bester) that taps the hooks it needs.`);
  }
}
