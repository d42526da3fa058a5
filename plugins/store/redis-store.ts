// The Redis store: keyv namespaces on one shared Redis connection. Errors reach the caller instead
// of keyv's default of swallowing them, so a failed account or outbox write is never taken for a
// stored one. While Redis is unreachable every call fails at once with `storeUnavailable`.

import KeyvRedis from "@keyv/redis";
import { ClientOfflineError } from "@redis/client";
import Keyv from "keyv";
import type { Logger } from "pino";
import type { StoreProvider } from "../../core/store.js";
import { closeRedisClient, commandError, describeRedisUrl, openRedisClient, runCommand, type RedisClient } from "./redis-client.js";

/** The connection's name in logs and errors; the journal has its own, named "journal". */
const ROLE = "store";

/** The adapter methods that keyv calls and that send commands, iterator() aside. */
const COMMAND_METHODS = ["get", "getMany", "set", "setMany", "has", "hasMany", "delete", "deleteMany", "clear"] as const;

/**
 * Makes every command method of `adapter` fail at once with `storeUnavailable` while `client` is
 * not connected, and turns a connection error from a command into that code. The *Many methods
 * send MULTI, which node-redis would otherwise hold until its next reconnect attempt.
 */
function failFastWhenOffline(adapter: KeyvRedis<unknown>, client: RedisClient, where: string): void {
  const methods = adapter as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const name of COMMAND_METHODS) {
    const original = methods[name]!.bind(adapter);
    methods[name] = (...args: unknown[]) => runCommand(client, where, ROLE, () => original(...args));
  }

  const iterate = adapter.iterator.bind(adapter);
  adapter.iterator = async function* (...args: Parameters<typeof iterate>) {
    if (!client.isReady) {
      throw commandError(new ClientOfflineError(), client, where, ROLE);
    }
    try {
      yield* iterate(...args);
    } catch (error) {
      throw commandError(error, client, where, ROLE);
    }
  };
}

/**
 * A key written at open and read after each reconnect. Redis restarted without persistence comes
 * back empty, and the missing key distinguishes that from a restart that kept the data.
 */
export const DATA_MARKER_KEY = "bester:store-marker";

export class RedisStoreProvider implements StoreProvider {
  readonly durable = true;
  readonly description: string;
  private client: RedisClient | undefined;
  private namespaces = new Map<string, Keyv<any>>();

  constructor(private readonly url: string) {
    this.description = describeRedisUrl(url);
  }

  namespace<Value = unknown>(name: string): Keyv<Value> {
    let keyv = this.namespaces.get(name);
    if (!keyv) {
      if (!this.client) {
        throw new Error(`The store ${this.description} is not open yet; open() connects it.`);
      }
      const adapter = new KeyvRedis<Value>(this.client, { namespace: name, throwOnErrors: true, throwOnConnectError: true });
      failFastWhenOffline(adapter as KeyvRedis<unknown>, this.client, this.description);
      keyv = new Keyv<Value>({ store: adapter, namespace: name, useKeyPrefix: false, throwOnErrors: true });
      // The error also rejects the call that failed, which is where it is reported.
      keyv.on("error", () => undefined);
      this.namespaces.set(name, keyv);
    }
    return keyv as Keyv<Value>;
  }

  /** Whether the connection to Redis is up, for the status report. */
  get reachable(): boolean {
    return this.client?.isReady === true;
  }

  /** Connects, or rejects when Redis is not reachable within REDIS_CONNECT_TIMEOUT_MS, then checks that it is writable. */
  async open(log?: Logger): Promise<void> {
    const client = await openRedisClient(this.url, log, "store");
    this.client = client;
    await this.namespace("meta").set("openedAt", Date.now());
    await client.set(DATA_MARKER_KEY, String(Date.now()));
    // The client emits "ready" again after each reconnect. The first one came before connect() resolved.
    client.on("ready", () => {
      void this.checkDataMarker(client, log);
    });
  }

  /** Logs an error when the marker key is gone after a reconnect, and writes it again so one loss logs once. */
  private async checkDataMarker(client: RedisClient, log: Logger | undefined): Promise<void> {
    try {
      if ((await client.exists(DATA_MARKER_KEY)) === 1) {
        return;
      }
      log?.error({ store: this.description, key: DATA_MARKER_KEY }, "Redis lost its data: the store's marker key is missing after the reconnect, so Redis restarted without persistence and the accounts, peer outboxes and duplicate-message records are gone. Enable appendonly yes on the Redis server, as docs/reliability.md describes");
      await client.set(DATA_MARKER_KEY, String(Date.now()));
    } catch (error) {
      // The connection dropped again, and the next "ready" checks once more.
      log?.debug({ err: error, store: this.description }, "checking the Redis data marker failed");
    }
  }

  async close(): Promise<void> {
    this.namespaces.clear();
    const client = this.client;
    this.client = undefined;
    await closeRedisClient(client);
  }
}
