// Checks a plugin's options against a JSON schema, so a typo in bester.config.ts stops start-up with
// the same kind of message as a mistake in the core keys: the key, the value and what it accepts.
// TypeScript checks option types only where the config is type-checked; tsx, which loads it, does not.

import type { SchemaObject, ValidateFunction } from "ajv";
import { BesterError } from "../errors.js";
import { compileSchema } from "../protocol/schemas.js";
import { describeConfigError } from "./config-errors.js";

/** Compiled validators by schema object, so a plugin created several times compiles its schema once. */
const compiled = new WeakMap<SchemaObject, ValidateFunction>();

/**
 * Throws invalidConfig when `options` do not match `schema`, naming the plugin and the key.
 * Give the schema `additionalProperties: false`, so a misspelt option is reported too.
 */
export function validatePluginOptions<Options>(pluginName: string, schema: SchemaObject, options: unknown): asserts options is Options {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = compileSchema(schema);
    compiled.set(schema, validate);
  }
  if (!validate(options)) {
    throw new BesterError("invalidConfig", describeConfigError(validate.errors ?? [], options, schema, `the options of plugin "${pluginName}"`, "the plugin's documentation"));
  }
}
