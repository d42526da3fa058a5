// The store plugin: turns the `store` URL into keyv namespaces on SQLite, Redis or memory.

import path from "node:path";
import KeyvSqlite from "@keyv/sqlite";
import Keyv from "keyv";
import type { Logger } from "pino";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import { createFolder } from "../../core/folders.js";
import type { BesterPlugin } from "../../core/plugin.js";
import type { ServerStatus, StatusSection } from "../../core/status.js";
import { MemoryStoreProvider, type StoreProvider } from "../../core/store.js";
import { RedisStoreProvider } from "./redis-store.js";

export const PLUGIN_NAME = "store";

const SQLITE_TABLE = "bester";

/** One SQLite file; each namespace gets its own adapter, all in one table keyed by namespace prefix. */
class SqliteStoreProvider implements StoreProvider {
  readonly durable = true;
  readonly description: string;
  private namespaces = new Map<string, { keyv: Keyv<any>; adapter: KeyvSqlite }>();

  constructor(private readonly file: string) {
    this.description = `sqlite://${file}`;
    // The default store file lies in dataDir, so either key may have chosen the folder.
    createFolder(path.dirname(file), "store and dataDir");
  }

  namespace<Value = unknown>(name: string): Keyv<Value> {
    let entry = this.namespaces.get(name);
    if (!entry) {
      // The iterator pages with LIMIT/OFFSET, so each page rescans the rows before it. 100 rows a page
      // instead of the default 10 listed 10 000 stored messages in 0.3 s instead of 1.7 s.
      const adapter = new KeyvSqlite({ uri: `sqlite://${this.file}`, table: SQLITE_TABLE, busyTimeout: 5000, iterationLimit: 100 });
      // By default keyv swallows a failed write and set() returns false. With throwOnErrors a
      // caller such as the federation outbox fails instead of taking the write for a stored one.
      const keyv = new Keyv<Value>({ store: adapter, namespace: name, throwOnErrors: true });
      keyv.on("error", () => undefined);
      entry = { keyv, adapter };
      this.namespaces.set(name, entry);
    }
    return entry.keyv as Keyv<Value>;
  }

  /** Opens the file, switches it to write-ahead logging and checks that it is writable. */
  async open(): Promise<void> {
    const probe = this.namespace("meta");
    const adapter = this.namespaces.get("meta")!.adapter;
    await adapter.query("PRAGMA journal_mode=WAL");
    await probe.set("openedAt", Date.now());
  }

  async close(): Promise<void> {
    for (const { adapter } of this.namespaces.values()) {
      await adapter.disconnect();
    }
    this.namespaces.clear();
  }
}

/** Creates the provider for a store URL: `memory`, `sqlite://PATH` or `redis://host:port`. */
export function createStoreProvider(url: string): StoreProvider & { open?: (log?: Logger) => Promise<void> } {
  if (url === "memory") {
    return new MemoryStoreProvider();
  }
  if (url.startsWith("sqlite://")) {
    return new SqliteStoreProvider(url.slice("sqlite://".length));
  }
  if (url.startsWith("redis://") || url.startsWith("rediss://")) {
    return new RedisStoreProvider(url);
  }
  throw new BesterError("invalidConfig", `Unsupported store "${url}". Use memory, sqlite://PATH or redis://host:port.`);
}

/** Opens `provider`, turning any failure into `storeFailed` that names the store and the setting to check. */
export async function openStore(provider: ReturnType<typeof createStoreProvider>, log?: Logger): Promise<void> {
  try {
    await provider.open?.(log);
  } catch (error) {
    // Such an error already names the store and its fix, as for a Redis database that does not exist.
    if (error instanceof BesterError && error.code === "storeFailed") {
      throw error;
    }
    throw new BesterError("storeFailed", `Opening the store ${provider.description} failed: ${(error as Error).message}. Check that the path or URL in "store" is right and, for Redis, that redis-server is running there.`, { cause: error });
  }
}

/** Key of the status report's section with one row per connection to the store server. */
export const STORE_STATUS_SECTION = "store";

/** Returns the `state` column of a store connection in the status report. */
export function connectionState(reachable: boolean): string {
  return reachable ? "connected" : "unreachable";
}

/** Adds `row` to the status report's table of store connections, creating the table on first use. */
export function addStoreConnectionRow(status: ServerStatus, row: StatusSection["rows"][number]): void {
  const section = (status.sections[STORE_STATUS_SECTION] ??= { title: "Store connections", rows: [] });
  section.rows.push(row);
}

export function storePlugin(options: { url: string }): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const provider = createStoreProvider(options.url);
      bester.store = provider;

      let opened = false;
      bester.hooks.initialize.tapPromise({ name: PLUGIN_NAME, stage: -100 }, async () => {
        await openStore(provider, log);
        opened = true;
        log.info({ store: provider.description }, "store open");
      });

      bester.hooks.onStatus.tap(PLUGIN_NAME, (status) => {
        if (provider.reachable !== undefined) {
          addStoreConnectionRow(status, { store: provider.description, connection: "store", state: connectionState(provider.reachable) });
        }
        return status;
      });

      bester.hooks.close.tapPromise({ name: PLUGIN_NAME, stage: 100 }, async () => {
        await provider.close();
        if (!opened) {
          // Start-up failed before the store opened, for example on a data folder another server uses.
          return;
        }
        log.info({ store: provider.description }, "store closed");
      });
    },
  };
}
