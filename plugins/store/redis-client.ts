// The Redis connection behind the Redis store and the Redis journal. node-redis's defaults suit a
// cache, not a job server: commands sent while the server is unreachable wait in an offline queue
// without limit, and connect() retries without limit. Here both fail fast and the log records why.
// A login or submission during an outage then gets an error at once instead of hanging, and a
// start-up with Redis down ends with storeFailed.

import { ClientOfflineError, createClient, ErrorReply } from "@redis/client";
import type { Logger } from "pino";
import { BesterError } from "../../core/errors.js";
import { isStoreUnreachable } from "./unreachable.js";

/** How long start-up waits for the first connection before it gives up. */
export const REDIS_CONNECT_TIMEOUT_MS = 5000;

/** How long reading the server's `databases` setting may take, for the message about a missing database. */
const SETTING_LOOKUP_TIMEOUT_MS = 1000;

export type RedisClient = ReturnType<typeof createRedisClient>;

function createRedisClient(url: string) {
  return createClient({
    url,
    // A command sent while the connection is down rejects at once ("The client is offline").
    disableOfflineQueue: true,
    socket: {
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      // Reconnects after a lost connection: 100 ms doubling up to 2 s, for as long as it takes.
      reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000),
    },
  });
}

/** Returns `redis://host:port/db` without a user name or password, for logs and messages. */
export function describeRedisUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

/**
 * Connects to `url` and resolves with the ready client. Rejects when no connection comes up within
 * REDIS_CONNECT_TIMEOUT_MS, and stops the client's retries then. A connection setup that Redis
 * rejects (a database number out of range, a wrong password) rejects at once with `storeFailed`.
 * Once connected, a lost connection logs one warning, and its return one info line.
 */
export async function openRedisClient(url: string, log: Logger | undefined, role: string): Promise<RedisClient> {
  const client = createRedisClient(url);
  const where = describeRedisUrl(url);
  let lastError: Error | undefined;
  let started = false;
  let warned = false;
  // Redis sends the same error reply to the SELECT or AUTH of every retry, so the first one ends the wait.
  let rejectSetup!: (error: ErrorReply) => void;
  const setupRejected = new Promise<never>((_, reject) => (rejectSetup = reject));
  setupRejected.catch(() => undefined);

  client.on("error", (error: Error) => {
    lastError = error;
    if (!started && error instanceof ErrorReply) {
      rejectSetup(error);
    }
    // Errors before the first connection belong to start-up, which reports them itself. After it,
    // the client reports every failed reconnect attempt, so one warning stands for the outage.
    if (!started || warned) {
      return;
    }
    warned = true;
    log?.warn({ store: where, role, reason: error.message }, "Redis connection lost; commands fail until it is back");
  });
  client.on("ready", () => {
    if (warned) {
      warned = false;
      log?.info({ store: where, role }, "Redis connection back");
    }
  });

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no connection within ${REDIS_CONNECT_TIMEOUT_MS} ms${lastError ? ` (${lastError.message})` : ""}`)), REDIS_CONNECT_TIMEOUT_MS);
  });
  try {
    await Promise.race([client.connect(), timedOut, setupRejected]);
  } catch (error) {
    client.destroy();
    if (error instanceof ErrorReply) {
      throw await setupError(url, error);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
  started = true;
  return client;
}

/** Builds the `storeFailed` error for a connection setup that Redis rejected with `reply`. */
async function setupError(url: string, reply: ErrorReply): Promise<BesterError> {
  const where = describeRedisUrl(url);
  if (!reply.message.includes("DB index is out of range")) {
    return new BesterError("storeFailed", `Redis at ${where} rejected the connection setup (Redis replied "${reply.message}"). Check the user name, password and database number in "store".`, { cause: reply });
  }

  const database = new URL(url).pathname.slice(1);
  const limit = await readDatabasesSetting(url);
  if (limit === undefined) {
    return new BesterError("storeFailed", `Redis at ${where} has no database ${database} (Redis replied "${reply.message}"). Use a database number below the server's "databases" setting in "store". The redis.conf that ships with Redis sets 16.`, { cause: reply });
  }
  return new BesterError("storeFailed", `Redis at ${where} has no database ${database}: its "databases" setting is ${limit}, so the store URL may name databases 0 to ${limit - 1} (Redis replied "${reply.message}"). Use a number in that range in "store", or raise "databases" in the Redis config.`, { cause: reply });
}

/**
 * Reads the `databases` setting over a connection to database 0. Returns undefined when that
 * fails, as on a server where CONFIG is renamed or not permitted to the user.
 */
async function readDatabasesSetting(url: string): Promise<number | undefined> {
  const first = new URL(url);
  first.pathname = "";
  const probe = createClient({
    url: first.toString(),
    disableOfflineQueue: true,
    socket: { connectTimeout: SETTING_LOOKUP_TIMEOUT_MS, reconnectStrategy: false },
  });
  probe.on("error", () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), SETTING_LOOKUP_TIMEOUT_MS);
  });
  try {
    const lookup = probe.connect().then(() => probe.configGet("databases"));
    const setting = await Promise.race([lookup, timedOut]);
    const limit = Number(setting?.databases);
    return Number.isInteger(limit) && limit > 0 ? limit : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    probe.destroy();
  }
}

/**
 * Returns the error to raise for a failed command on `client`. A connection that is down, or an
 * error that reports it broke, gives `storeUnavailable` with the original error as its cause, so a
 * client gets that code and the log keeps Redis's reason. A reply error from Redis, such as OOM or
 * MISCONF, is returned as it is.
 */
export function commandError(error: unknown, client: RedisClient, where: string, role: string): unknown {
  if (error instanceof BesterError) {
    return error;
  }
  // A reply error such as OOM stays as it is; LOADING, sent while Redis reads its data back, does not.
  if ((!client.isReady && !(error instanceof ErrorReply)) || isStoreUnreachable(error)) {
    return new BesterError("storeUnavailable", `Redis at ${where} is unreachable, so a command on the ${role} connection failed`, { cause: error });
  }
  return error;
}

/**
 * Runs `command` on `client`, and fails at once with `storeUnavailable` while the connection is
 * down. node-redis 5.12 queues a MULTI until the next reconnect attempt even with
 * disableOfflineQueue, which delayed journal commits during an outage by up to the reconnect
 * delay (2 s), so the check comes before the command is sent.
 */
export async function runCommand<T>(client: RedisClient, where: string, role: string, command: () => Promise<T>): Promise<T> {
  if (!client.isReady) {
    throw commandError(new ClientOfflineError(), client, where, role);
  }
  try {
    return await command();
  } catch (error) {
    throw commandError(error, client, where, role);
  }
}

/** Closes the connection after pending commands; a client that is not open is left alone. */
export async function closeRedisClient(client: RedisClient | undefined): Promise<void> {
  if (client?.isOpen) {
    await client.close();
  }
}
