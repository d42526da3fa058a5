// The plugin contract: an object with a required name and an apply function that taps hooks.

import { BesterError } from "./errors.js";
import type { Bester } from "./bester.js";

export interface BesterPlugin {
  /** Unique among the plugins of one server; every tap the plugin makes uses it. */
  readonly name: string;
  apply(bester: Bester): void | Promise<void>;
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
