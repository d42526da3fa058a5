// The key-value store behind accounts, keys and durable state, as keyv namespaces. A store plugin
// replaces the default in-memory provider with SQLite or Redis.

import Keyv from "keyv";

export interface StoreProvider {
  /** Human-readable location for logs, without credentials. */
  readonly description: string;
  /** Whether data survives a restart. */
  readonly durable: boolean;
  /** Whether the connection to a store server is up; left out by stores without one, such as SQLite. */
  readonly reachable?: boolean;
  /** Returns the keyv instance for one namespace, creating it on first use. */
  namespace<Value = unknown>(name: string): Keyv<Value>;
  close(): Promise<void>;
}

/** Keeps everything in process memory; nothing survives a restart. */
export class MemoryStoreProvider implements StoreProvider {
  readonly description = "memory";
  readonly durable = false;
  private namespaces = new Map<string, Keyv<any>>();

  namespace<Value = unknown>(name: string): Keyv<Value> {
    let keyv = this.namespaces.get(name);
    if (!keyv) {
      keyv = new Keyv<Value>({ store: new Map(), namespace: name });
      this.namespaces.set(name, keyv);
    }
    return keyv as Keyv<Value>;
  }

  async close(): Promise<void> {
    this.namespaces.clear();
  }
}
