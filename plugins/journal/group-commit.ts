// Group commit: writes that arrive close together share one transaction, so durability costs one
// fsync per batch instead of one per job.

import type { Logger } from "pino";
import { logRequestFailure } from "../../core/log.js";
import type { JournalBackend, JournalBatch, JournalEntry } from "./backend.js";

export interface GroupCommitOptions {
  /** Maximum time, in milliseconds, that a batch's first write waits for others to join it; default 5. */
  commitDelayMs?: number;
  /**
   * Milliseconds without a new write after which a batch commits before commitDelayMs is up;
   * default 1. A lone write then waits 1 ms, while under load the writers keep the batch open
   * until most of them wait on it, so one commit covers them. 1 ms is the finest step Node.js
   * timers take; 0 commits in the next check phase of the event loop.
   */
  commitIdleMs?: number;
  /** Writes after which a batch commits without waiting; default 512. */
  maxBatch?: number;
}

/**
 * A value this long commits without waiting, because writing it costs about as much as the wait
 * or more, so the wait would only add latency. In standalone tests 1 MiB took 4 ms as a SQLite
 * row and 1.2 ms to write and fsync as a file, which is how the SQLite backend stores it.
 */
const LARGE_VALUE_CHARS = 256 * 1024;

/**
 * The promise every write and flush of one batch returns, settled once when the batch commits or
 * fails. One promise per batch instead of one per write saves a promise, a closure and a waiter
 * object on each job's put and delete.
 */
interface BatchOutcome {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

function newBatchOutcome(): BatchOutcome {
  const outcome = {} as BatchOutcome;
  outcome.promise = new Promise<void>((resolve, reject) => {
    outcome.resolve = resolve;
    outcome.reject = reject;
  });
  return outcome;
}

/**
 * Collects puts and deletes and commits them in batches, one transaction at a time, in order.
 *
 * A batch is only ever taken at the start of an immediate callback, never inside a promise chain.
 * So every write made within one turn of the event loop, including its promise callbacks, lands in
 * the same transaction: a job's removal and its stored offline notification commit together.
 */
export class GroupCommitWriter {
  private pending: JournalBatch = new Map();
  /** Outcome of the pending batch, made by its first write or flush; one promise for all of them. */
  private outcome: BatchOutcome | undefined;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** performance.now() at the pending batch's first and latest write. */
  private firstWriteAt = 0;
  private lastWriteAt = 0;
  private writing = false;
  /** Set by flush() or a large value, so the pending batch commits without waiting. */
  private commitAtOnce = false;
  private closed = false;
  private readonly commitDelayMs: number;
  private readonly commitIdleMs: number;
  private readonly maxBatch: number;

  constructor(
    readonly backend: JournalBackend,
    private readonly log: Logger,
    options: GroupCommitOptions = {},
  ) {
    this.commitDelayMs = options.commitDelayMs ?? 5;
    this.commitIdleMs = options.commitIdleMs ?? 1;
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
    this.outcome ??= newBatchOutcome();
    this.commitAtOnce = true;
    this.schedule();
    await this.outcome.promise;
  }

  /** Reads entries after committing pending writes, so a scan returns every write made before it. */
  async scan(prefix: string): Promise<JournalEntry[]> {
    await this.flush();
    return this.backend.scan(prefix);
  }

  /** Commits what is pending, then closes the backend. */
  async close(): Promise<void> {
    // Writes can arrive while the last batch commits; a stopping server makes few, so this ends.
    do {
      await this.flush();
    } while (this.pending.size > 0 || this.writing);
    this.closed = true;
    await this.backend.close();
  }

  private add(key: string, value: string | null): Promise<void> {
    if (this.closed) {
      return Promise.reject(new Error(`The journal at ${this.backend.description} is closed.`));
    }

    const now = performance.now();
    if (this.pending.size === 0) {
      this.firstWriteAt = now;
    }
    this.lastWriteAt = now;
    // A later write to the same key replaces the earlier one in the batch: only the last one counts.
    this.pending.delete(key);
    this.pending.set(key, value);

    this.outcome ??= newBatchOutcome();
    const promise = this.outcome.promise;
    if (value !== null && value.length >= LARGE_VALUE_CHARS) {
      this.commitAtOnce = true;
    }
    this.schedule(now);
    return promise;
  }

  /** Returns how many milliseconds the pending batch may still wait for more writes. */
  private remainingWaitMs(now = performance.now()): number {
    if (this.commitAtOnce || this.pending.size >= this.maxBatch) {
      return 0;
    }
    const due = Math.min(this.lastWriteAt + this.commitIdleMs, this.firstWriteAt + this.commitDelayMs);
    return due - now;
  }

  /**
   * Arms the commit of the pending batch. Later writes move the batch's due time without touching
   * the timer, which re-arms itself when it fires too early, so a write costs no timer call.
   * A write passes the time it already read as `now`.
   */
  private schedule(now?: number): void {
    if (this.writing || this.immediate) {
      // The running commit schedules the next batch when it ends, or one is about to start.
      return;
    }
    const waitMs = this.remainingWaitMs(now);
    // Timers fire in whole milliseconds, so a batch due within a quarter of one commits now.
    if (waitMs <= 0.25) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.immediate = setImmediate(this.commit);
    } else if (!this.timer) {
      this.timer = setTimeout(this.onTimer, waitMs);
    }
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.schedule();
  };

  private readonly commit = async (): Promise<void> => {
    this.immediate = undefined;
    const batch = this.pending;
    const outcome = this.outcome;
    this.pending = new Map();
    this.outcome = undefined;
    this.writing = true;
    this.commitAtOnce = false;

    try {
      if (batch.size > 0) {
        await this.backend.write(batch);
      }
      outcome?.resolve();
    } catch (error) {
      logRequestFailure(this.log, error, { writes: batch.size, journal: this.backend.description }, "journal commit failed");
      outcome?.reject(error);
    } finally {
      this.writing = false;
      if (this.outcome) {
        // Writes that arrived during this commit form the next batch. Their wait counts from
        // their own arrival, so the commit's time is part of it.
        this.schedule();
      }
    }
  };
}
