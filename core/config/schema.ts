// The ajv schema for bester.config.* and the step that applies defaults and resolves paths.

import path from "node:path";
import type { SchemaObject } from "ajv";
import { BesterError } from "../errors.js";
import { compileSchema } from "../protocol/schemas.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../protocol/frame-codec.js";
import { assertPlugin } from "../plugin.js";
import { describeConfigError } from "./config-errors.js";
import type { BesterConfig, FederationConfig, ResolvedConfig, ResolvedFederationConfig, ResolvedHandlerConfig } from "./types.js";

export const DEFAULT_PORT = 2222;
export const DEFAULT_HOST = "127.0.0.1";

const listen: SchemaObject = {
  type: "object",
  additionalProperties: false,
  properties: {
    host: { type: "string", minLength: 1 },
    port: { type: "integer", minimum: 0, maximum: 65535 },
  },
};

const clientListen: SchemaObject = {
  ...listen,
  properties: {
    ...listen.properties,
    tls: {
      type: "object",
      additionalProperties: false,
      required: ["key", "cert"],
      properties: { key: { type: "string", minLength: 1 }, cert: { type: "string", minLength: 1 } },
    },
  },
};

const handler: SchemaObject = {
  type: "object",
  additionalProperties: false,
  properties: {
    socket: { type: "string", minLength: 1, maxLength: 107 },
    connections: { type: "integer", minimum: 1, maximum: 1024 },
    command: {
      anyOf: [
        { type: "string", minLength: 1 },
        { type: "array", minItems: 1, items: { type: "string" } },
      ],
    },
    cwd: { type: "string" },
    env: { type: "object", additionalProperties: { type: "string" } },
    retries: { type: "integer", minimum: 0, maximum: 100 },
    timeoutMs: { type: "integer", minimum: 0 },
    maxQueued: { type: "integer", minimum: 1 },
    unavailableTimeoutMs: { type: "integer", minimum: 0 },
  },
};

/** A server name: `host:port` or `[ipv6]:port`. */
const serverName: SchemaObject = { type: "string", pattern: "^[^@:\\s]+:[0-9]{1,5}$|^\\[[0-9a-fA-F:.]+\\]:[0-9]{1,5}$" };

const federation: SchemaObject = {
  type: "object",
  additionalProperties: false,
  properties: {
    keyFile: { type: "string", minLength: 1 },
    peers: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "publicKey"],
        properties: {
          name: serverName,
          publicKey: { type: "string", pattern: "^ed25519:[A-Za-z0-9+/]{43}=$" },
          address: serverName,
        },
      },
    },
    tls: {
      type: "object",
      additionalProperties: false,
      required: ["key", "cert"],
      properties: {
        key: { type: "string", minLength: 1 },
        cert: { type: "string", minLength: 1 },
        ca: { type: "string", minLength: 1 },
      },
    },
    listen,
    reconnect: {
      type: "object",
      additionalProperties: false,
      properties: {
        minDelayMs: { type: "integer", minimum: 1 },
        maxDelayMs: { type: "integer", minimum: 1 },
      },
    },
    ackTimeoutMs: { type: "integer", minimum: 0 },
    outboxRetryMs: { type: "integer", minimum: 0 },
  },
};

export const CONFIG_SCHEMA: SchemaObject = {
  type: "object",
  additionalProperties: false,
  properties: {
    server: {
      type: "object",
      additionalProperties: false,
      properties: { name: { type: "string", pattern: "^[^@:\\s]+:[0-9]{1,5}$|^\\[[0-9a-fA-F:.]+\\]:[0-9]{1,5}$" } },
    },
    listen: { anyOf: [clientListen, { type: "array", minItems: 1, items: clientListen }] },
    store: { type: "string", pattern: "^(memory|sqlite://.+|redis://.+|rediss://.+)$" },
    registration: { type: "boolean" },
    maxFrameBytes: { type: "integer", minimum: 64, maximum: 1073741824 },
    maxChainLength: { type: "integer", minimum: 1, maximum: 10000 },
    dataDir: { type: "string", minLength: 1 },
    handlers: {
      type: "object",
      propertyNames: { pattern: "^[^@:]{1,128}$" },
      additionalProperties: handler,
    },
    plugins: { type: "array", items: { type: "object" } },
    omitBuiltins: { type: "array", items: { type: "string" } },
    log: {
      type: "object",
      additionalProperties: false,
      properties: { level: { enum: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] } },
    },
    federation,
    limits: {
      type: "object",
      additionalProperties: false,
      properties: {
        maxConnections: { type: "integer", minimum: 1 },
        authTimeoutMs: { type: "integer", minimum: 0 },
        maxBufferedBytes: { type: "integer", minimum: 1024 },
        outputCoalesceMs: { type: "integer", minimum: 0, maximum: 1000 },
        login: {
          type: "object",
          additionalProperties: false,
          properties: {
            maxFailuresPerUser: { type: "integer", minimum: 1 },
            maxFailuresPerAddress: { type: "integer", minimum: 1 },
            windowMs: { type: "integer", minimum: 1 },
          },
        },
      },
    },
    offline: {
      type: "object",
      additionalProperties: false,
      properties: { maxMessages: { type: "integer", minimum: 1 } },
    },
    journal: {
      type: "object",
      additionalProperties: false,
      properties: {
        commitDelayMs: { type: "integer", minimum: 0, maximum: 1000 },
        commitIdleMs: { type: "integer", minimum: 0, maximum: 1000 },
        maxBatch: { type: "integer", minimum: 1 },
      },
    },
    shutdown: {
      type: "object",
      additionalProperties: false,
      properties: { drainTimeoutMs: { type: "integer", minimum: 0 } },
    },
  },
};

const validateConfig = compileSchema<BesterConfig>(CONFIG_SCHEMA);

/** Validates a config object, applies defaults and resolves paths against `root`. */
export function resolveConfig(config: unknown, root: string, file?: string): ResolvedConfig {
  const source = file ?? "the config object";
  if (!validateConfig(config)) {
    throw new BesterError("invalidConfig", describeConfigError(validateConfig.errors ?? [], config, CONFIG_SCHEMA, source));
  }

  const plugins = config.plugins ?? [];
  plugins.forEach((plugin, index) => assertPlugin(plugin, `plugins[${index}] in ${source}`));

  const listeners = (Array.isArray(config.listen) ? config.listen : [config.listen ?? {}]).map((entry) => ({
    host: entry.host ?? DEFAULT_HOST,
    port: entry.port ?? DEFAULT_PORT,
    ...(entry.tls ? { tls: { key: path.resolve(root, entry.tls.key), cert: path.resolve(root, entry.tls.cert) } } : {}),
  }));
  const first = listeners[0]!;
  const dataDir = path.resolve(root, config.dataDir ?? "data");

  const handlers: Record<string, ResolvedHandlerConfig> = {};
  for (const [type, entry] of Object.entries(config.handlers ?? {})) {
    if (!entry.socket && !entry.command) {
      throw new BesterError("invalidConfig", `Invalid config in ${source}: handlers.${type} needs a socket, a command, or both. Add socket: "/path/to/${type}.sock" for a handler you start yourself.`);
    }
    const socket = path.resolve(root, entry.socket ?? path.join(dataDir, "sockets", `${type}.sock`));
    assertSocketPathFits(socket, type, source);
    handlers[type] = {
      socket,
      connections: entry.connections ?? 4,
      command: entry.command,
      cwd: path.resolve(root, entry.cwd ?? "."),
      env: entry.env ?? {},
      retries: entry.retries ?? 2,
      timeoutMs: entry.timeoutMs ?? 60_000,
      maxQueued: entry.maxQueued ?? 10_000,
      unavailableTimeoutMs: entry.unavailableTimeoutMs ?? 30_000,
    };
  }

  const maxFrameBytes = config.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const store = config.store ?? `sqlite://${path.join(dataDir, "bester.sqlite")}`;
  checkRedisUrl(store, source);
  return {
    root,
    file,
    serverName: config.server?.name ?? `${formatHost(first.host)}:${first.port}`,
    listen: listeners,
    store: resolveStorePath(store, root),
    registration: config.registration ?? false,
    maxFrameBytes,
    maxChainLength: config.maxChainLength ?? 32,
    dataDir,
    handlers,
    plugins,
    omitBuiltins: config.omitBuiltins ?? [],
    logLevel: config.log?.level ?? "info",
    federation: config.federation ? resolveFederation(config.federation, root, dataDir) : undefined,
    limits: {
      maxConnections: config.limits?.maxConnections ?? 20_000,
      authTimeoutMs: config.limits?.authTimeoutMs ?? 30_000,
      maxBufferedBytes: config.limits?.maxBufferedBytes ?? maxFrameBytes + 8 * 1024 * 1024,
      outputCoalesceMs: config.limits?.outputCoalesceMs ?? 1,
      login: {
        maxFailuresPerUser: config.limits?.login?.maxFailuresPerUser ?? 10,
        maxFailuresPerAddress: config.limits?.login?.maxFailuresPerAddress ?? 100,
        windowMs: config.limits?.login?.windowMs ?? 60_000,
      },
    },
    offline: { maxMessages: config.offline?.maxMessages ?? 1000 },
    journal: {
      commitDelayMs: config.journal?.commitDelayMs ?? 5,
      commitIdleMs: config.journal?.commitIdleMs ?? 1,
      maxBatch: config.journal?.maxBatch ?? 512,
    },
    shutdown: { drainTimeoutMs: config.shutdown?.drainTimeoutMs ?? 10_000 },
  };
}

function resolveFederation(config: FederationConfig, root: string, dataDir: string): ResolvedFederationConfig {
  const tls = config.tls && {
    key: path.resolve(root, config.tls.key),
    cert: path.resolve(root, config.tls.cert),
    ca: config.tls.ca === undefined ? undefined : path.resolve(root, config.tls.ca),
  };
  const listen = config.listen && { host: config.listen.host ?? DEFAULT_HOST, port: config.listen.port ?? 0 };
  const minDelayMs = config.reconnect?.minDelayMs ?? 250;

  return {
    keyFile: config.keyFile === undefined ? path.join(dataDir, "server.key") : path.resolve(root, config.keyFile),
    peers: config.peers ?? [],
    tls,
    listen,
    reconnect: { minDelayMs, maxDelayMs: Math.max(minDelayMs, config.reconnect?.maxDelayMs ?? 30_000) },
    ackTimeoutMs: config.ackTimeoutMs ?? 30_000,
    outboxRetryMs: config.outboxRetryMs ?? 60_000,
  };
}

/**
 * Maximum UNIX socket path in bytes on Linux: sun_path has room for 108 bytes with the final NUL.
 * NOTE: macOS allows only 103, which this check does not cover.
 */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Throws when a resolved socket path is too long. Node 20 cuts a longer path to the limit without
 * an error, so the socket would land elsewhere and two handler types could share one socket.
 */
function assertSocketPathFits(socket: string, type: string, source: string): void {
  const bytes = Buffer.byteLength(socket);
  if (bytes <= MAX_SOCKET_PATH_BYTES) {
    return;
  }
  throw new BesterError(
    "invalidConfig",
    `Invalid config in ${source}: the socket of handler "${type}" resolves to ${socket}, which is ${bytes} bytes, but a UNIX socket path may have at most ${MAX_SOCKET_PATH_BYTES}. Set handlers.${type}.socket to a shorter path, or move dataDir.`,
  );
}

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * Checks a Redis store URL the way the Redis client reads it, so a bad port or database number is
 * reported as a config mistake at load time rather than as a failure inside the store plugin.
 */
function checkRedisUrl(store: string, source: string): void {
  if (!store.startsWith("redis://") && !store.startsWith("rediss://")) {
    return;
  }
  let problem: string | undefined;
  try {
    const url = new URL(store);
    if (url.hostname === "") {
      problem = "it names no host";
    } else if (!/^(\/[0-9]*)?$/.test(url.pathname)) {
      problem = `the path "${url.pathname}" is not a database number`;
    }
  } catch {
    problem = "it is not a valid URL (check the host and that the port is a number)";
  }
  if (problem) {
    throw new BesterError("invalidConfig", `Invalid config in ${source}: store = ${JSON.stringify(store)} is not a Redis URL of the form redis://HOST:PORT or redis://HOST:PORT/DB: ${problem}. Fix store and start again.`);
  }
}

/** Makes a relative sqlite path absolute, so the store does not depend on the working folder. */
function resolveStorePath(store: string, root: string): string {
  if (!store.startsWith("sqlite://")) {
    return store;
  }
  return `sqlite://${path.resolve(root, store.slice("sqlite://".length))}`;
}
