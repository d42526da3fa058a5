// The classification of store errors into an unreachable store, where the same write may succeed
// when it is retried later, and every other failure. Callers that must not lose a write, such as
// the federation outbox, retry the first kind and fail at once on the second.

import { ClientClosedError, ClientOfflineError, ConnectionTimeoutError, ErrorReply, ReconnectStrategyError, SocketClosedUnexpectedlyError, SocketTimeoutError } from "@redis/client";
import { isStoreUnavailable } from "../../core/errors.js";

/** Errors of node-redis 5 raised while its connection is down or being set up again. */
const REDIS_CONNECTION_ERRORS = [ClientOfflineError, ClientClosedError, SocketClosedUnexpectedlyError, ConnectionTimeoutError, SocketTimeoutError, ReconnectStrategyError];

/** Error codes of Node's sockets for a server that is down or out of reach. */
const NETWORK_ERROR_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);

/**
 * SQLite codes for a database file that another process holds locked for longer than busyTimeout.
 * NOTE: only the Redis errors are covered by a test; these codes come from node-sqlite3's errors.
 */
const SQLITE_BUSY_CODES = new Set(["SQLITE_BUSY", "SQLITE_LOCKED"]);

/** The message @keyv/redis 5 throws when its client cannot connect, with throwOnConnectError set. */
const KEYV_REDIS_NOT_CONNECTED = "Redis client is not connected";

/** Returns whether `error` from a store call means the store is unreachable for now rather than rejecting the write. */
export function isStoreUnreachable(error: unknown): boolean {
  if (!(error instanceof Error)) {
    return false;
  }
  // The Redis store and journal already turn a broken connection into storeUnavailable.
  if (isStoreUnavailable(error)) {
    return true;
  }
  if (REDIS_CONNECTION_ERRORS.some((type) => error instanceof type)) {
    return true;
  }
  // A restarted Redis replies LOADING until it has read its data files back into memory.
  if (error instanceof ErrorReply) {
    return error.message.startsWith("LOADING");
  }
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined && (NETWORK_ERROR_CODES.has(code) || SQLITE_BUSY_CODES.has(code))) {
    return true;
  }
  return error.message.startsWith(KEYV_REDIS_NOT_CONNECTED);
}
