// The Redis connection behind the Redis store and the Redis journal. node-redis's defaults suit a
// cache, not a job server: commands sent while the server is unreachable wait in an offline queue
// without limit, and connect() retries without limit. Here both fail fast and the log records why.
// A login or submission during an outage then gets an error at once instead of hanging, and a
// start-up with Redis down ends with storeFailed.

import { createClient } from "@keyv/redis";
import type { Logger } from "pino";

/** How long start-up waits for the first connection before it gives up. */
export const REDIS_CONNECT_TIMEOUT_MS = 5000;

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
 * REDIS_CONNECT_TIMEOUT_MS, and stops the client's retries then. Once connected, a lost connection
 * logs one warning, and its return one info line.
 */
export async function openRedisClient(url: string, log: Logger | undefined, role: string): Promise<RedisClient> {
  const client = createRedisClient(url);
  const where = describeRedisUrl(url);
  let lastError: Error | undefined;
  let started = false;
  let warned = false;

  client.on("error", (error: Error) => {
    lastError = error;
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
    await Promise.race([client.connect(), timedOut]);
  } catch (error) {
    client.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  started = true;
  return client;
}

/** Closes the connection after pending commands; a client that is not open is left alone. */
export async function closeRedisClient(client: RedisClient | undefined): Promise<void> {
  if (client?.isOpen) {
    await client.close();
  }
}
