// The decision for a job whose handler run failed: leave it for the next start, send it again,
// retry it on another connection, or fail it with a coded error for its submitter.

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
  /** The connection broke mid-job and retries are left: run it again on another connection. */
  | { action: "retry"; reason: string }
  | { action: "fail"; error: WireError };

export interface RunFailureContext {
  /** False once the server stopped accepting jobs, i.e. during shutdown. */
  accepting: boolean;
  /** The `retries` setting of the job's type. */
  retries: number;
  /** How often this job was already resent after an unread failure. */
  resends: number;
}

/**
 * Decides what to do with `job` after its run rejected with `error`. A retry counts in
 * job.attempts, which the caller raises; the decision itself changes nothing.
 */
export function decideRunFailure(job: Job, error: unknown, context: RunFailureContext): RunFailureAction {
  const retryable = error instanceof BesterError && error.code === "handlerFailed" && (error as { retryable?: boolean }).retryable === true;
  if (retryable && !context.accepting) {
    return { action: "leave" };
  }

  // A handler that closes after each reply drops a job sent before its close arrived.
  const unread = retryable && (error as { unread?: boolean }).unread === true;
  if (unread && context.resends < MAX_UNREAD_RESENDS) {
    return { action: "resend" };
  }

  if (retryable && job.attempts < context.retries) {
    return { action: "retry", reason: (error as BesterError).message };
  }

  const wire = toWireError(error, "handlerFailed");
  if (retryable && job.attempts > 0) {
    wire.message = `${wire.message} It failed the same way on each of ${job.attempts + 1} attempts. For a handler the server starts itself, the server log has its exit code and stderr.`;
  }
  return { action: "fail", error: wire };
}
