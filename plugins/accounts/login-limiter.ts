// Failed-login counting for the accounts plugin. After too many failed logins for one username, or
// from one remote host, within a time window, further logins get `rateLimited` without a password
// check, which slows down password guessing and spares the scrypt work.

export interface LoginLimiterOptions {
  /** Failed logins per username within the window before that username is limited; default 10. */
  maxFailuresPerUser?: number;
  /** Failed logins per remote host within the window before that host is limited; default 100. */
  maxFailuresPerHost?: number;
  /** Window length in milliseconds; default 60000. */
  windowMs?: number;
}

/** Keys tracked before a sweep drops the ones with no recent failure. */
const SWEEP_THRESHOLD = 10_000;

export class LoginLimiter {
  private readonly maxFailuresPerUser: number;
  private readonly maxFailuresPerHost: number;
  readonly windowMs: number;
  /** Failure times in milliseconds, oldest first, keyed by `user:<name>` or `host:<address>`. */
  private failures = new Map<string, number[]>();

  constructor(options: LoginLimiterOptions = {}) {
    this.maxFailuresPerUser = options.maxFailuresPerUser ?? 10;
    this.maxFailuresPerHost = options.maxFailuresPerHost ?? 100;
    this.windowMs = options.windowMs ?? 60_000;
  }

  /** Returns whether a login for `username` from `remoteAddress` must be rejected now. */
  isLimited(username: string, remoteAddress: string, now = Date.now()): boolean {
    return this.recent(userKey(username), now) >= this.maxFailuresPerUser || this.recent(hostKey(remoteAddress), now) >= this.maxFailuresPerHost;
  }

  recordFailure(username: string, remoteAddress: string, now = Date.now()): void {
    if (this.failures.size >= SWEEP_THRESHOLD) {
      this.sweep(now);
    }
    for (const key of [userKey(username), hostKey(remoteAddress)]) {
      const times = this.failures.get(key) ?? [];
      times.push(now);
      this.failures.set(key, times);
    }
  }

  /** Forgets a username's failures after a successful login; the host's count stays. */
  recordSuccess(username: string): void {
    this.failures.delete(userKey(username));
  }

  /** Forgets a username's failures at or before `time` (milliseconds since the epoch); the host's count stays. */
  forgetUserFailuresBefore(username: string, time: number): void {
    const key = userKey(username);
    const times = this.failures.get(key);
    if (!times) {
      return;
    }
    // Oldest first, so the failures to forget are a prefix.
    const firstLater = times.findIndex((failedAt) => failedAt > time);
    if (firstLater === -1) {
      this.failures.delete(key);
    } else {
      times.splice(0, firstLater);
    }
  }

  /** Counts the failures of `key` inside the window, dropping older ones. */
  private recent(key: string, now: number): number {
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

  private sweep(now: number): void {
    for (const key of [...this.failures.keys()]) {
      this.recent(key, now);
    }
  }
}

function userKey(username: string): string {
  return `user:${username}`;
}

/**
 * Drops the transport name and the port, so every connection from one host shares a count:
 * `10.0.0.5:50312` and `ws 10.0.0.5:50313` → `10.0.0.5`. The TCP transport leaves out its name,
 * and other transports put theirs first, as the Connection interface describes. A listener on
 * `::` reports an IPv4 client as `::ffff:10.0.0.5`, which is reduced to `10.0.0.5`, so listeners
 * of both address families count it once.
 */
function hostKey(remoteAddress: string): string {
  const host = remoteAddress.replace(/^\S+ /, "").replace(/:\d+$/, "");
  return `host:${host.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "")}`;
}
