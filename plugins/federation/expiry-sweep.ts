// Removes expired entries from keyv namespaces on a timer. keyv keeps a TTL inside each value and
// drops an expired entry only when it is read, and neither the memory nor the SQLite adapter deletes
// on its own. Ids of received peer messages are written once and rarely read again, so without a
// sweep they would pile up for the life of the store. keyv's iterator deletes every expired entry it
// passes, so one pass over a namespace is the sweep.

import type Keyv from "keyv";
import type { Logger } from "pino";

/** How often the namespaces are swept; an entry outlives its TTL by at most this long. */
export const SWEEP_INTERVAL_MS = 60 * 60 * 1000;

/** Reads every entry of `namespace` once, which deletes the expired ones; returns how many are left. */
export async function sweepExpired(namespace: Keyv<unknown>): Promise<number> {
  if (!namespace.iterator) {
    return 0;
  }
  let left = 0;
  for await (const [key] of namespace.iterator(undefined)) {
    left += key === undefined ? 0 : 1;
  }
  return left;
}

/** Sweeps `namespaces()` every `intervalMs` until the returned function is called. */
export function startExpirySweep(namespaces: () => Array<Keyv<unknown>>, log: Logger, intervalMs = SWEEP_INTERVAL_MS): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) {
      return;
    }
    running = true;
    Promise.all(namespaces().map((namespace) => sweepExpired(namespace)))
      .catch((error: unknown) => log.warn({ err: error }, "removing expired federation entries failed; the next sweep tries again"))
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
