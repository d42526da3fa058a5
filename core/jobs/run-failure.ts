// The decision for a job whose handler run failed: leave it for the next start, send it again,
// run it again alone, retry it, or fail it with a coded error for its submitter.

import { BesterError, toWireError, type WireError } from "../errors.js";
import type { Job } from "./job.js";

/**
 * Resends of one job after `unread` link failures, which do not count against `retries`. The cap
 * only stops a handler that never reads anything from bouncing a job forever.
 */
export const MAX_UNREAD_RESENDS = 10;

export type RunFailureAction =
  /** The server is stopping: the job stays stored and runs after the next start. */
  | { action: "leave" }
  /** The handler closed without reading the job: send it again, without counting an attempt. */
  | { action: "resend" }
  /**
   * The connection broke mid-job while other jobs of the type shared the handler, so any of them
   * may have ended it: run the job again alone, without counting an attempt.
   */
  | { action: "isolate"; reason: string }
  /** The connection broke mid-job while the job ran alone and retries are left: count an attempt and run it again alone. */
  | { action: "retry"; reason: string }
  | { action: "fail"; error: WireError };

export interface RunFailureContext {
  /** False once the server stopped accepting jobs, i.e. during shutdown. */
  accepting: boolean;
  /** The `retries` setting of the job's type. */
  retries: number;
  /** How often this job was already resent after an unread failure. */
  resends: number;
  /**
   * Whether the job was the only job of its type in flight when its connection broke, with no
   * other connection of the type breaking during its run (Scheduler.recordBreak).
   */
  alone: boolean;
}

/** Whether `error` is a broken handler connection, after which the job may run again. */
export function isLinkBreak(error: unknown): error is BesterError {
  return error instanceof BesterError && error.code === "handlerFailed" && (error as { retryable?: boolean }).retryable === true;
}

/**
 * Decides what to do with `job` after its run rejected with `error`. A retry counts in
 * job.attempts, which the caller raises; the decision itself changes nothing.
 */
export function decideRunFailure(job: Job, error: unknown, context: RunFailureContext): RunFailureAction {
  const retryable = isLinkBreak(error);
  if (retryable && !context.accepting) {
    return { action: "leave" };
  }

  // A handler that closes after each reply drops a job sent before its close arrived.
  const unread = retryable && (error as { unread?: boolean }).unread === true;
  if (unread && context.resends < MAX_UNREAD_RESENDS) {
    return { action: "resend" };
  }

  // A crash of a shared handler process breaks every job in flight, the innocent ones too, so only
  // a break while the job ran alone counts against its retries.
  if (retryable && !context.alone) {
    return { action: "isolate", reason: error.message };
  }
  if (retryable && job.attempts < context.retries) {
    return { action: "retry", reason: error.message };
  }

  const wire = toWireError(error, "handlerFailed");
  const explanation = retryable ? explainBreaks(job, unread) : undefined;
  if (explanation) {
    wire.message = `${wire.message} ${explanation} For a handler the server starts itself, the server log has its exit code and stderr.`;
  }
  return { action: "fail", error: wire };
}

/** Explains why a job whose connection broke is failed. Every break that reaches here ran alone. */
function explainBreaks(job: Job, unread: boolean): string | undefined {
  const attempts = job.attempts + 1;
  if (unread) {
    // The handler never read the job on its last attempt, so nothing points at the job itself.
    return attempts === 1 ? undefined : `It failed the same way on each of ${attempts} attempts.`;
  }
  if (attempts === 1) {
    return `No other job of type "${job.type}" was in flight, so the job itself most likely made the handler exit or close the connection.`;
  }
  return `It failed the same way on each of ${attempts} attempts while running alone on the handler, so the job itself most likely makes the handler exit or close the connection.`;
}
