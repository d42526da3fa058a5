// JSON schemas for every message Bester NG accepts, compiled once with ajv. Plugins add schemas
// for their own request types through RequestValidators.define().

import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from "ajv";
import { USERNAME_PATTERN } from "../jobs/job.js";

const ajv = new Ajv({ allErrors: false, strict: true });

const JOB_TYPE_PATTERN = "^[^@:]+$";
const HANDOFF_TARGET_PATTERN = "^[^@]+@.+$";

/**
 * Rule of each pattern in the message and config schemas in words, shown in error messages in
 * place of the regular expression.
 */
const PATTERN_RULES: Record<string, string> = {
  [JOB_TYPE_PATTERN]: 'must not contain "@" or ":"',
  [HANDOFF_TARGET_PATTERN]: 'must have the form "<type>@<host:port>", such as "wordcount@10.0.0.2:2222"',
  "^(memory|sqlite://.+|redis://.+|rediss://.+)$": 'must be "memory", "sqlite://PATH", "redis://HOST:PORT" or "redis://HOST:PORT/DB" ("rediss://" for TLS)',
  "^[^@:\\s]+:[0-9]{1,5}$|^\\[[0-9a-fA-F:.]+\\]:[0-9]{1,5}$": 'must be "host:port", such as "jobs.example.org:2222" or "[::1]:2222"',
  "^ed25519:[A-Za-z0-9+/]{43}=$": 'must be "ed25519:" followed by 44 base64 characters, as "bester keys" prints it',
  "^[^@:]{1,128}$": 'must be 1 to 128 characters without "@" or ":"',
  "^/": 'must start with "/"',
};

/** Returns what `pattern` requires in words, such as 'must start with "/"', or undefined for a pattern without a rule. */
export function describePattern(pattern: string): string | undefined {
  return PATTERN_RULES[pattern];
}

const account: SchemaObject = {
  type: "object",
  required: ["username", "password"],
  additionalProperties: false,
  properties: {
    username: { type: "string", minLength: 1, maxLength: 64 },
    password: { type: "string", minLength: 1, maxLength: 1024 },
  },
};

/**
 * The account of a register request. The accounts plugin checks the username rules itself, so an
 * empty or too long name gets `invalidUsername` and not `invalidRequest`. This schema only bounds
 * the name's size.
 */
const newAccount: SchemaObject = {
  ...account,
  properties: { ...account.properties, username: { type: "string", maxLength: 1024 } },
};

const tag: SchemaObject = { type: "string", maxLength: 256 };

function request(name: string, properties: Record<string, SchemaObject>, required: string[]): SchemaObject {
  return {
    type: "object",
    required: ["request", ...required],
    additionalProperties: false,
    properties: { request: { const: name }, tag, ...properties },
  };
}

/** Client request schemas of the core protocol, keyed by request name. */
export const CLIENT_REQUEST_SCHEMAS: Record<string, SchemaObject> = {
  auth: request("auth", { account }, ["account"]),
  register: request("register", { account: newAccount }, ["account"]),
  newJob: request(
    "newJob",
    {
      job: {
        type: "object",
        required: ["payload"],
        additionalProperties: false,
        properties: {
          payload: {
            type: "object",
            required: ["type", "data"],
            additionalProperties: false,
            properties: {
              type: { type: "string", minLength: 1, maxLength: 128, pattern: JOB_TYPE_PATTERN },
              data: {},
            },
          },
          priority: { type: "integer", minimum: -2147483648, maximum: 2147483647 },
        },
      },
    },
    ["job"],
  ),
};

/** A handler's final reply: output with a director, or an error. Progress frames never reach it. */
export const HANDLER_REPLY_SCHEMA: SchemaObject = {
  type: "object",
  oneOf: [
    {
      required: ["payload", "director"],
      properties: {
        payload: {},
        director: {
          type: "object",
          required: ["type"],
          properties: { type: { type: "string", minLength: 1 } },
        },
      },
    },
    {
      required: ["error"],
      properties: {
        error: { type: "object", properties: { message: { type: "string" } } },
      },
    },
  ],
};

/** Options of the three built-in directors, checked before the director runs. */
export const DIRECTOR_SCHEMAS: Record<string, SchemaObject> = {
  userDelivery: {
    type: "object",
    required: ["type", "users"],
    properties: {
      type: { const: "userDelivery" },
      users: { type: "array", items: { type: "string", minLength: 1, maxLength: 512 }, maxItems: 10000 },
    },
  },
  handler: {
    type: "object",
    required: ["type", "handler"],
    properties: { type: { const: "handler" }, handler: { type: "string", minLength: 1 } },
  },
  handoff: {
    type: "object",
    required: ["type", "handler"],
    properties: { type: { const: "handoff" }, handler: { type: "string", pattern: HANDOFF_TARGET_PATTERN } },
  },
};

export { USERNAME_PATTERN };

/** Formats the first ajv error as "<path> <problem>", naming the offending field. */
export function describeSchemaError(errors: ErrorObject[] | null | undefined): string {
  const first = errors?.[0];
  if (!first) {
    return "the message does not match its schema";
  }
  const path = first.instancePath || "(root)";
  if (first.keyword === "required") {
    return `${path === "(root)" ? "" : path}/${String(first.params.missingProperty)} is required`;
  }
  if (first.keyword === "additionalProperties") {
    return `${path === "(root)" ? "" : path}/${String(first.params.additionalProperty)} is not an allowed property`;
  }
  const rule = first.keyword === "pattern" ? describePattern(String(first.params.pattern)) : undefined;
  if (rule) {
    return `${path} ${rule}`;
  }
  if (first.keyword === "const") {
    return `${path} must be ${JSON.stringify(first.params.allowedValue)}`;
  }
  return `${path} ${first.message ?? "is invalid"}`;
}

/** Compiles a schema with the shared ajv instance. */
export function compileSchema<T = unknown>(schema: SchemaObject): ValidateFunction<T> {
  return ajv.compile<T>(schema);
}

export interface RequestDefinition {
  /** Allowed before a successful auth, like `auth`, `register` and peer handshakes. */
  public?: boolean;
}

/** Validators for client request types; the core's are built in, plugins define more. */
export class RequestValidators {
  private validators = new Map<string, ValidateFunction>();
  private publicNames = new Set<string>(["auth", "register"]);

  constructor() {
    for (const [name, schema] of Object.entries(CLIENT_REQUEST_SCHEMAS)) {
      this.define(name, schema);
    }
  }

  /** Adds or replaces the schema for one request name. */
  define(name: string, schema: SchemaObject, definition: RequestDefinition = {}): void {
    this.validators.set(name, ajv.compile(schema));
    if (definition.public) {
      this.publicNames.add(name);
    }
  }

  has(name: string): boolean {
    return this.validators.has(name);
  }

  names(): string[] {
    return [...this.validators.keys()];
  }

  isPublic(name: string): boolean {
    return this.publicNames.has(name);
  }

  /** Returns undefined when valid, otherwise a message naming the field. Names with no schema pass. */
  validate(name: string, message: unknown): string | undefined {
    const validator = this.validators.get(name);
    if (!validator || validator(message)) {
      return undefined;
    }
    return describeSchemaError(validator.errors);
  }
}
