// Retries outbox writes while the store is unreachable. An accepted job's output for a peer exists
// only in memory until its outbox write succeeds, so a store outage of a few seconds must not lose
// it: the write is retried with backoff, and the job's completion waits meanwhile. The job then
// stays in the journal, so a crash during the wait runs it again after the next start.

import type { Logger } from "pino";
import { BesterError } from "../../core/errors.js";
import { isStoreUnreachable } from "../store/unreachable.js";

/** The first wait between two attempts, in milliseconds. It doubles after each attempt up to RETRY_MAX_DELAY_MS. */
const RETRY_MIN_DELAY_MS = 100;
const RETRY_MAX_DELAY_MS = 2000;

/** The ids that a retried write logs, so its lines can be matched to the job and the peer. */
export interface WriteContext {
  peer: string;
  jobId?: string;
  /** When the write was requested, in milliseconds since the epoch. The time limit counts from here. */
  requestedAt: number;
}

export interface OutboxRetryOptions {
  /** Milliseconds a write may keep failing with an unreachable store before it fails for good. */
  timeoutMs: number;
  /** The store's description without credentials, such as `redis://127.0.0.1:6379`, for messages. */
  store: () => string;
  log: Logger;
}

/**
 * Runs outbox writes and retries those that fail because the store is unreachable. After stop()
 * a write that still fails is left pending for good instead of failing, so its job ends neither
 * `completed` nor `failed` and stays stored for the next start.
 */
export class OutboxRetry {
  private stopping = false;
  private closed = false;
  private readonly wakers = new Set<() => void>();

  constructor(private readonly options: OutboxRetryOptions) {}

  /** Marks the server as stopping, so a write that runs out of time from now on waits for the next start instead of failing its job. */
  stop(): void {
    this.stopping = true;
  }

  /** Marks the store as about to close, so writes still retrying stop now and wait for the next start. */
  close(): void {
    this.stopping = true;
    this.closed = true;
    for (const wake of this.wakers) {
      wake();
    }
    this.wakers.clear();
  }

  /**
   * Runs `write` until it succeeds. Rejects with `directorFailed` naming the store when the write
   * fails for another reason than an unreachable store, or keeps failing for timeoutMs.
   */
  async run<T>(write: () => Promise<T>, context: WriteContext): Promise<T> {
    const { log, timeoutMs } = this.options;
    const fields = { jobId: context.jobId, peer: context.peer, store: this.options.store() };
    let delay = RETRY_MIN_DELAY_MS;
    let failures = 0;

    for (;;) {
      if (this.closed) {
        return this.holdForNextStart(fields);
      }
      try {
        const result = await write();
        if (failures > 0) {
          log.info({ ...fields, attempts: failures + 1, waitedMs: Date.now() - context.requestedAt }, "stored the peer message in the outbox after the store came back");
        }
        return result;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        // The job's submitter reads these messages, so the store and its reason go to the log only.
        if (!isStoreUnreachable(error)) {
          log.error({ ...fields, err: error }, "storing a peer message in the outbox failed, so its job fails");
          throw new BesterError("directorFailed", `Storing the message for peer ${context.peer} in the outbox failed; the server log has the details.`, { cause: error });
        }
        failures += 1;
        const waitedMs = Date.now() - context.requestedAt;
        if (waitedMs >= timeoutMs) {
          if (this.stopping) {
            return this.holdForNextStart(fields);
          }
          log.error({ ...fields, attempts: failures, waitedMs, reason }, "the store stayed unreachable for federation.outboxRetryMs, so the peer message is not stored and its job fails");
          throw new BesterError("directorFailed", `Storing the message for peer ${context.peer} in the outbox failed because the server's store was unreachable for ${formatSeconds(waitedMs)}, the limit set by federation.outboxRetryMs. Submit the job again once the store is back.`, { cause: error });
        }
        if (failures === 1) {
          log.warn({ ...fields, reason, timeoutMs }, "storing a peer message failed because the store is unreachable, so it is retried until the store is back");
        }
        await this.sleep(Math.min(delay, timeoutMs - waitedMs));
        delay = Math.min(delay * 2, RETRY_MAX_DELAY_MS);
      }
    }
  }

  /** Never settles: the job's completion waits until the process exits, so the journal keeps the job. */
  private holdForNextStart(fields: Record<string, unknown>): Promise<never> {
    this.options.log.info(fields, "server stopping while a peer message waits for the store, so its job stays stored and runs again after the next start");
    return new Promise<never>(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
