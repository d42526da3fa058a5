// Group commit: writes that arrive close together share one transaction, so durability costs one
// fsync per batch instead of one per job.

import type { Logger } from "pino";
import type { JournalBackend, JournalBatch, JournalEntry } from "./backend.js";

export interface GroupCommitOptions {
  /** Milliseconds a write waits for others to join its batch; default 2. */
  commitDelayMs?: number;
  /** Writes after which a batch commits without waiting for the delay; default 512. */
  maxBatch?: number;
}

/**
 * A value this long commits without waiting commitDelayMs, because writing it costs about as much
 * as the wait or more, so the wait would only add latency. In standalone tests 1 MiB took 4 ms as a
 * SQLite row and 1.2 ms to write and fsync as a file, which is how the SQLite backend stores it.
 */
const LARGE_VALUE_CHARS = 256 * 1024;

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Collects puts and deletes and commits them in batches, one transaction at a time, in order.
 *
 * A batch is only ever taken at the start of a timer callback, never inside a promise chain. So
 * every write made within one turn of the event loop, including its promise callbacks, lands in
 * the same transaction: a job's removal and its stored offline notification commit together.
 */
export class GroupCommitWriter {
  private pending: JournalBatch = new Map();
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing = false;
  /** Set by flush() or a large value, so the pending batch commits without waiting the delay. */
  private commitAtOnce = false;
  private closed = false;
  private readonly commitDelayMs: number;
  private readonly maxBatch: number;

  constructor(
    readonly backend: JournalBackend,
    private readonly log: Logger,
    options: GroupCommitOptions = {},
  ) {
    this.commitDelayMs = options.commitDelayMs ?? 2;
    this.maxBatch = options.maxBatch ?? 512;
  }

  get durable(): boolean {
    return this.backend.durable;
  }

  /** Stores `value` under `key`; resolves once the batch holding it has committed. */
  put(key: string, value: string): Promise<void> {
    return this.add(key, value);
  }

  /** Removes `key`; resolves once the batch holding the removal has committed. */
  delete(key: string): Promise<void> {
    return this.add(key, null);
  }

  /** Resolves once every write made before the call has committed. */
  async flush(): Promise<void> {
    if (this.pending.size === 0 && !this.writing) {
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.commitAtOnce = true;
      this.schedule(0);
    });
  }

  /** Reads entries after committing pending writes, so a scan returns every write made before it. */
  async scan(prefix: string): Promise<JournalEntry[]> {
    await this.flush();
    return this.backend.scan(prefix);
  }

  /** Commits what is pending, then closes the backend. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    await this.backend.close();
  }

  private add(key: string, value: string | null): Promise<void> {
    if (this.closed) {
      return Promise.reject(new Error(`The journal at ${this.backend.description} is closed.`));
    }
    // A later write to the same key replaces the earlier one in the batch: only the last one counts.
    this.pending.delete(key);
    this.pending.set(key, value);
    const promise = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (value !== null && value.length >= LARGE_VALUE_CHARS) {
      this.commitAtOnce = true;
    }
    this.schedule(this.pendingDelayMs());
    return promise;
  }

  /** Returns how long the pending batch waits: none after a flush, a large value or a full batch. */
  private pendingDelayMs(): number {
    return this.commitAtOnce || this.pending.size >= this.maxBatch ? 0 : this.commitDelayMs;
  }

  private schedule(delayMs: number): void {
    if (this.writing) {
      // The running commit schedules the next batch when it ends.
      return;
    }
    if (this.timer && delayMs > 0) {
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.commit(), delayMs);
  }

  private async commit(): Promise<void> {
    this.timer = undefined;
    const batch = this.pending;
    const waiters = this.waiters;
    this.pending = new Map();
    this.waiters = [];
    this.writing = true;
    this.commitAtOnce = false;

    try {
      if (batch.size > 0) {
        await this.backend.write(batch);
      }
      for (const waiter of waiters) {
        waiter.resolve();
      }
    } catch (error) {
      this.log.error({ err: error, writes: batch.size, journal: this.backend.description }, "journal commit failed");
      for (const waiter of waiters) {
        waiter.reject(error);
      }
    } finally {
      this.writing = false;
      if (this.waiters.length > 0) {
        // Writes that arrived during this commit form the next batch, which waits the delay too.
        // Under load fewer, larger batches then commit, and a commit costs far more CPU time than
        // a row in it.
        this.schedule(this.pendingDelayMs());
      }
    }
  }
}
