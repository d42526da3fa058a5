// The Redis store: keyv namespaces on one shared Redis connection. Errors reach the caller instead
// of keyv's default of swallowing them, so a failed account or outbox write is never taken for a
// stored one.

import KeyvRedis from "@keyv/redis";
import Keyv from "keyv";
import type { Logger } from "pino";
import type { StoreProvider } from "../../core/store.js";
import { closeRedisClient, describeRedisUrl, openRedisClient, type RedisClient } from "./redis-client.js";

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
      keyv = new Keyv<Value>({ store: adapter, namespace: name, useKeyPrefix: false, throwOnErrors: true });
      // The error also rejects the call that failed, which is where it is reported.
      keyv.on("error", () => undefined);
      this.namespaces.set(name, keyv);
    }
    return keyv as Keyv<Value>;
  }

  /** Connects, or rejects when Redis is not reachable within REDIS_CONNECT_TIMEOUT_MS, then checks that it is writable. */
  async open(log?: Logger): Promise<void> {
    this.client = await openRedisClient(this.url, log, "store");
    await this.namespace("meta").set("openedAt", Date.now());
  }

  async close(): Promise<void> {
    this.namespaces.clear();
    const client = this.client;
    this.client = undefined;
    await closeRedisClient(client);
  }
}
