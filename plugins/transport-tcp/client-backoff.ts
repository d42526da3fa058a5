// When and how often a client tries to connect again: the backoff delays, which failures mean the
// server is down, and the wait for a server at the first connect. BesterClient's reconnect loop,
// its waitForServerMs option and `bester listen` share them.

import { setTimeout as sleep } from "node:timers/promises";
import { BesterClientError } from "./client-error.js";

export interface ReconnectOptions {
  /** Connection attempts after a loss before the client gives up and closes; default unlimited. */
  retries?: number;
  /** Milliseconds before the first attempt, doubled after each failure; default 200. */
  delayMs?: number;
  /** Upper bound of the delay between attempts, in milliseconds; default 5000. */
  maxDelayMs?: number;
}

/** The reconnect delays the client uses when `reconnect` leaves them out. */
export const RECONNECT_DEFAULTS = { delayMs: 200, maxDelayMs: 5000 } as const;

/** Socket errors that clear once the server runs. TLS trust errors and unknown host names do not clear. */
const SERVER_DOWN_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);

/** Returns the wait before reconnect attempt `attempt` (counted from 1): `delayMs`, doubled per earlier attempt, at most `maxDelayMs`. */
export function reconnectDelayMs(attempt: number, options: { delayMs: number; maxDelayMs: number }): number {
  return Math.min(options.delayMs * 2 ** (attempt - 1), options.maxDelayMs);
}

/** Returns whether `error` is a failed connect or a lost connection that clears once the server runs. */
export function isServerDown(error: unknown): boolean {
  // A server that is starting or stopping may also reset the connection during the login.
  if (!(error instanceof BesterClientError) || (error.code !== "connectFailed" && error.code !== "connectionClosed")) {
    return false;
  }
  const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
  return cause?.code !== undefined && SERVER_DOWN_CODES.has(cause.code);
}

/**
 * Returns whether a login failed because the server's store is unreachable for the moment
 * (`storeUnavailable`), which clears once the store is back, so a login retry may succeed.
 */
export function isStoreOutageReply(error: unknown): boolean {
  return error instanceof BesterClientError && error.code === "storeUnavailable";
}

/**
 * Calls `open` until it resolves, while it fails because the server is down, waiting
 * reconnectDelayMs() between attempts. No attempt starts after `waitMs`, but one in progress
 * runs to its own connect timeout. The last failure is rethrown as `connectFailed`, with the wait
 * added to the message. Any other failure is rethrown at once.
 */
export async function retryWhileServerDown<T>(open: () => Promise<T>, waitMs: number, backoff: { delayMs: number; maxDelayMs: number }): Promise<T> {
  const deadline = performance.now() + waitMs;
  let lastAttempt = false;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await open();
    } catch (error) {
      if (!isServerDown(error)) {
        throw error;
      }

      const remainingMs = deadline - performance.now();
      if (lastAttempt || remainingMs <= 0) {
        const last = error as BesterClientError;
        const attempts = `${attempt} attempt${attempt === 1 ? "" : "s"}`;
        throw new BesterClientError("connectFailed", `${last.message} The client waited ${waitMs} ms for the server (waitForServerMs) and made ${attempts}.`, { cause: last.cause });
      }

      // The attempt after a sleep to the deadline is the last. Node's timers drop the fraction of
      // a millisecond of remainingMs, so the sleep may end just before the deadline.
      const delayMs = reconnectDelayMs(attempt, backoff);
      lastAttempt = delayMs >= remainingMs;
      await sleep(Math.min(delayMs, remainingMs));
    }
  }
}
