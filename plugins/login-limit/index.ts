// Login rate limiting: after too many failed logins within a window, further attempts for that
// username, or from that address, are rejected with `rateLimited` before any password check runs.

import type { Bester } from "../../core/bester.js";
import type { BesterPlugin } from "../../core/plugin.js";

export const PLUGIN_NAME = "login-limit";

export interface LoginLimitOptions {
  /** Failed logins per username within the window before that username is limited; default 5. */
  maxFailuresPerUser?: number;
  /** Failed logins per remote address within the window before that address is limited; default 20. */
  maxFailuresPerAddress?: number;
  /** Length of the window in milliseconds; default 60000. */
  windowMs?: number;
}

/** Counters kept at most; the oldest is evicted beyond it, which bounds memory under a flood of names. */
const MAX_TRACKED = 100_000;

/** Failure times per key, oldest first; a Map keeps insertion order for eviction. */
class FailureWindow {
  private failures = new Map<string, number[]>();

  constructor(private readonly windowMs: number) {}

  count(key: string, now: number): number {
    const times = this.failures.get(key);
    if (!times) {
      return 0;
    }
    while (times.length > 0 && times[0]! <= now - this.windowMs) {
      times.shift();
    }
    if (times.length === 0) {
      this.failures.delete(key);
    }
    return times.length;
  }

  add(key: string, now: number): void {
    const times = this.failures.get(key) ?? [];
    times.push(now);
    this.failures.delete(key);
    this.failures.set(key, times);
    if (this.failures.size > MAX_TRACKED) {
      this.failures.delete(this.failures.keys().next().value!);
    }
  }

  clear(key: string): void {
    this.failures.delete(key);
  }
}

/** The IP part of a connection's remote address, so every port of one host shares a limit. */
export function addressOf(remoteAddress: string): string {
  return remoteAddress.replace(/^tcp /, "").replace(/:\d+$/, "");
}

export function loginLimitPlugin(options: LoginLimitOptions = {}): BesterPlugin {
  const maxPerUser = options.maxFailuresPerUser ?? 5;
  const maxPerAddress = options.maxFailuresPerAddress ?? 20;
  const windowMs = options.windowMs ?? 60_000;

  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const byUser = new FailureWindow(windowMs);
      const byAddress = new FailureWindow(windowMs);

      // Stage -100 runs this tap before the accounts plugin checks the password.
      bester.hooks.onAuth.tap({ name: PLUGIN_NAME, stage: -100 }, ({ username, connection }) => {
        const now = Date.now();
        const address = addressOf(connection.remoteAddress);
        const userFailures = byUser.count(username, now);
        const addressFailures = byAddress.count(address, now);
        if (userFailures < maxPerUser && addressFailures < maxPerAddress) {
          return undefined;
        }

        const limited = userFailures >= maxPerUser ? `username ${username}` : `address ${address}`;
        log.warn({ username, remote: address, userFailures, addressFailures }, "login rejected: too many failed logins");
        return {
          ok: false,
          error: { code: "rateLimited", message: `Too many failed logins for ${limited}. Wait ${Math.ceil(windowMs / 1000)} s and try again.` },
        };
      });

      // Rejections by this plugin are not counted, so a limit ends one window after the last real failure.
      bester.hooks.onAuthResult.tap(PLUGIN_NAME, (username, connection, decision) => {
        if (decision.ok || decision.error.code === "rateLimited") {
          return;
        }
        const now = Date.now();
        byUser.add(username, now);
        byAddress.add(addressOf(connection.remoteAddress), now);
      });

      bester.hooks.onSessionStart.tap(PLUGIN_NAME, (user) => {
        byUser.clear(user);
      });
    },
  };
}
