// Throttles repeated handshake failure warnings. A peer with a wrong key fails on every reconnect,
// two to four times a minute per side at the 30 s backoff cap (jittered to 15-30 s), and would fill
// the log with the same warning. As for "peer link retry scheduled", the first three failures and then every tenth are
// logged at warn and the others at debug.

import type { Logger } from "pino";

/** Keys tracked at once; the oldest is dropped beyond this, so unknown senders cannot grow the map. */
const MAX_KEYS = 1000;

interface Count {
  failures: number;
  /** Failures logged at debug only since the last warning. */
  suppressed: number;
}

export class FailureThrottle {
  private readonly counts = new Map<string, Count>();

  constructor(private readonly maxKeys = MAX_KEYS) {}

  /**
   * Logs one failure of `key` (a peer name, or a remote host for a sender with no valid name). The
   * warning carries `failures`, the count since the last success, and `suppressed`, how many
   * failures since the previous warning went to debug only.
   */
  log(log: Logger, key: string, fields: Record<string, unknown>, message: string): void {
    let count = this.counts.get(key);
    if (!count) {
      count = { failures: 0, suppressed: 0 };
      this.counts.set(key, count);
      if (this.counts.size > this.maxKeys) {
        this.counts.delete(this.counts.keys().next().value!);
      }
    }
    count.failures += 1;

    if (count.failures <= 3 || count.failures % 10 === 0) {
      log.warn({ ...fields, failures: count.failures, suppressed: count.suppressed }, message);
      count.suppressed = 0;
      return;
    }
    count.suppressed += 1;
    log.debug({ ...fields, failures: count.failures }, message);
  }

  /** Starts counting `key` from zero again, after a handshake with it succeeded. */
  reset(key: string): void {
    this.counts.delete(key);
  }
}
