// Turns ajv's errors for a config into one sentence that names the key, the value the author wrote
// and what the key accepts, so the author can fix the file without reading the schema.

import type { ErrorObject, SchemaObject } from "ajv";
import { describePattern } from "../protocol/schemas.js";

/**
 * Describes the most specific schema mistake in `config` with its key, value and fix. `reference`
 * names where the valid keys are listed.
 */
export function describeConfigError(errors: ErrorObject[], config: unknown, schema: SchemaObject, source: string, reference = "docs/configuration.md"): string {
  const error = mostSpecificError(errors);
  if (!error) {
    return `Invalid config in ${source}.`;
  }

  const key = error.instancePath.replace(/^\//, "").replaceAll("/", ".") || "(top level)";
  if (error.propertyName !== undefined) {
    return `Invalid config in ${source}: ${key} has an invalid key "${error.propertyName}", which ${describeProblem(error, schema)}. Rename it.`;
  }
  if (error.keyword === "required") {
    const missing = String(error.params.missingProperty);
    const message = `Invalid config in ${source}: missing key "${key === "(top level)" ? missing : `${key}.${missing}`}". Add it, as ${reference} describes.`;
    // The shared ajv instance stops at the first error (allErrors: false), so a misspelt required
    // key would otherwise be reported only as missing.
    const unknown = unknownKeys(valueAt(config, error.instancePath), schemaAt(schema, error.schemaPath.split("/").slice(1, -1)));
    if (unknown.length === 0) {
      return message;
    }
    return `${message} The unknown ${unknown.length === 1 ? "key" : "keys"} ${unknown.map((name) => `"${name}"`).join(", ")} may be a misspelling of it.`;
  }
  if (error.keyword === "additionalProperties") {
    const extra = String(error.params.additionalProperty);
    return `Invalid config in ${source}: unknown key "${key === "(top level)" ? extra : `${key}.${extra}`}". Remove it or check its spelling against ${reference}.`;
  }

  const value = describeValue(valueAt(config, error.instancePath));
  return `Invalid config in ${source}: ${key} = ${value} ${describeProblem(error, schema)}. Fix ${key} and start again.`;
}

/**
 * Picks the most specific error: the deepest path, and at equal depth one that is not a type
 * mismatch. For a key that allows several forms (`listen`, `command`), ajv lists a
 * type mismatch per form first, such as "listen must be object" for a bad port in a listen array.
 */
function mostSpecificError(errors: ErrorObject[]): ErrorObject | undefined {
  let best: ErrorObject | undefined;
  for (const error of errors) {
    if (error.keyword === "anyOf" || error.keyword === "propertyNames") {
      continue;
    }
    if (!best || isMoreSpecific(error, best)) {
      best = error;
    }
  }
  return best ?? errors[0];
}

function isMoreSpecific(error: ErrorObject, than: ErrorObject): boolean {
  const depth = error.instancePath.split("/").length;
  const thanDepth = than.instancePath.split("/").length;
  if (depth !== thanDepth) {
    return depth > thanDepth;
  }
  return than.keyword === "type" && error.keyword !== "type";
}

/** Says what the key accepts: "must be an integer from 0 to 1000" rather than ajv's "must be >= 0". */
function describeProblem(error: ErrorObject, schema: SchemaObject): string {
  if (error.keyword === "enum") {
    return `must be one of ${(error.params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(", ")}`;
  }
  const rule = error.keyword === "pattern" ? describePattern(String(error.params.pattern)) : undefined;
  if (rule) {
    return rule;
  }
  if (error.keyword === "type") {
    const types = String(error.params.type).split(",");
    return `must be ${types.map(withArticle).join(" or ")}`;
  }
  if (error.keyword === "minimum" || error.keyword === "maximum") {
    const rule = schemaAt(schema, error.schemaPath.split("/").slice(1, -1));
    if (typeof rule?.minimum === "number" && typeof rule.maximum === "number") {
      return `must be ${withArticle(rule.type === "integer" ? "integer" : "number")} from ${rule.minimum} to ${rule.maximum}`;
    }
  }
  return error.message ?? "is invalid";
}

function withArticle(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** Writes the value as the author would have: NaN and Infinity, which JSON shows as null, by name. */
function describeValue(value: unknown): string {
  if (typeof value === "function") {
    // Usually a plugin factory listed without calling it: `websocketTransport` for `websocketTransport()`.
    return `the function ${value.name || "(anonymous)"}, not its result (call it: ${value.name || "factory"}(...))`;
  }
  if (value === undefined || (typeof value === "number" && !Number.isFinite(value))) {
    return String(value);
  }
  return JSON.stringify(value);
}

/** Lists the keys of `value` that an object schema with `additionalProperties: false` does not allow. */
function unknownKeys(value: unknown, objectSchema: SchemaObject | undefined): string[] {
  if (typeof value !== "object" || value === null || objectSchema?.additionalProperties !== false) {
    return [];
  }
  const allowed = (objectSchema.properties ?? {}) as Record<string, unknown>;
  return Object.keys(value).filter((name) => !Object.hasOwn(allowed, name));
}

function valueAt(config: unknown, pointer: string): unknown {
  let value = config;
  for (const part of pointer.split("/").slice(1)) {
    value = (value as Record<string, unknown> | undefined)?.[part];
  }
  return value;
}

/** Follows a schema path such as ["properties", "journal", "properties", "commitIdleMs"]. */
function schemaAt(schema: SchemaObject, parts: string[]): SchemaObject | undefined {
  let node: unknown = schema;
  for (const part of parts) {
    node = (node as Record<string, unknown> | undefined)?.[decodeURIComponent(part.replaceAll("~1", "/").replaceAll("~0", "~"))];
  }
  return node as SchemaObject | undefined;
}
