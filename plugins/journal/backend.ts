// The storage under the journal: one ordered key-value table that takes a whole batch of writes in
// one transaction. SQLite, Redis and memory implement it.

/** One batch: a string value stores the key, null deletes it. Applied in one transaction. */
export type JournalBatch = Map<string, string | null>;

export interface JournalEntry {
  key: string;
  value: string;
}

export interface JournalBackend {
  /** Location for logs, without credentials. */
  readonly description: string;
  /** Whether entries survive a restart of the daemon. */
  readonly durable: boolean;
  /** Whether the connection to a store server is up; left out by backends without one, such as SQLite. */
  readonly reachable?: boolean;
  open(): Promise<void>;
  /** Applies every write of the batch atomically and durably before resolving. */
  write(batch: JournalBatch): Promise<void>;
  /** Returns the entries whose key starts with `prefix`, in ascending key order. */
  scan(prefix: string): Promise<JournalEntry[]>;
  /** Returns the keys that start with `prefix`, in ascending key order. */
  keys(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

/** Keeps entries in process memory: used for offline messages when the store is `memory`. */
export class MemoryJournalBackend implements JournalBackend {
  readonly description = "memory";
  readonly durable = false;
  private entries = new Map<string, string>();

  async open(): Promise<void> {}

  async write(batch: JournalBatch): Promise<void> {
    for (const [key, value] of batch) {
      if (value === null) {
        this.entries.delete(key);
      } else {
        this.entries.set(key, value);
      }
    }
  }

  async scan(prefix: string): Promise<JournalEntry[]> {
    const keys = await this.keys(prefix);
    return keys.map((key) => ({ key, value: this.entries.get(key)! }));
  }

  async keys(prefix: string): Promise<string[]> {
    return [...this.entries.keys()].filter((key) => key.startsWith(prefix)).sort();
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}

/** Returns an upper bound for the ASCII keys that start with `prefix`, for range scans. */
export function prefixEnd(prefix: string): string {
  return `${prefix}\uffff`;
}
