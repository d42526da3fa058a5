// The claim of one server on a Redis journal. Two servers on one Redis database would both resume
// the stored jobs, run them twice and send contradictory notifications, so a server claims the
// database with a key that expires unless its owner renews it. A file lock cannot do this, because
// the servers may run on different hosts.

import { randomUUID } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";
import os from "node:os";
import type { Logger } from "pino";
import { BesterError } from "../../core/errors.js";
import { isProcessRunning } from "../../core/process-state.js";
import type { RedisClient } from "../store/redis-client.js";

export const LEASE_KEY = "bester:journal-owner";
/** How long a claim outlives its owner's last renewal: the wait after a crash on another host. */
export const LEASE_MS = 15_000;
const RENEW_EVERY_MS = LEASE_MS / 3;

/** Extends the key's expiry only while its value is still this owner's. */
const RENEW_SCRIPT = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;
/** Replaces or deletes the key only while its value is still the expected one. */
const REPLACE_SCRIPT = `if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) return 1 else return 0 end`;
const RELEASE_SCRIPT = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

interface Owner {
  host: string;
  pid: number;
  token: string;
  /** Kernel boot and pid namespace, so a pid is only checked where it means the same process. */
  boot?: string;
  pidNamespace?: string;
}

/** Reads a /proc entry of Linux; undefined elsewhere, where the owner's process cannot be checked. */
function readProc(read: () => string): string | undefined {
  try {
    return read().trim();
  } catch {
    return undefined;
  }
}

const BOOT_ID = readProc(() => readFileSync("/proc/sys/kernel/random/boot_id", "utf8"));
const PID_NAMESPACE = readProc(() => readlinkSync("/proc/self/ns/pid"));

/** Tokens of the leases held by servers in this process, so a lease naming this process is stale only if absent. */
const heldHere = new Set<string>();

export class RedisLease {
  private readonly owner: Owner = { host: os.hostname(), pid: process.pid, token: randomUUID(), boot: BOOT_ID, pidNamespace: PID_NAMESPACE };
  /** The other owner last reported as holding the claim, so the error is logged once per owner. */
  private reportedHolder: string | null | undefined;
  private readonly value = JSON.stringify(this.owner);
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: RedisClient,
    private readonly description: string,
    private readonly log?: Logger,
  ) {}

  /** Claims the database, or throws storeInUse when another running server has claimed it. */
  async claim(): Promise<void> {
    const created = await this.client.set(LEASE_KEY, this.value, { NX: true, PX: LEASE_MS });
    if (created !== "OK") {
      await this.takeOverStale();
    }
    heldHere.add(this.owner.token);
    this.timer = setInterval(() => void this.renew(), RENEW_EVERY_MS);
    this.timer.unref();
  }

  /** Gives the database up, so the next server can claim it at once. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    if (!heldHere.delete(this.owner.token)) {
      return;
    }
    await this.client.eval(RELEASE_SCRIPT, { keys: [LEASE_KEY], arguments: [this.value] });
  }

  /**
   * Takes over a lease whose owner ran on this host and is gone, as after kill -9 and a quick
   * restart. "This host" means the same host name, boot and pid namespace: a container with the
   * host's name but its own process ids cannot see the owner, so like another host it can only wait
   * for the lease to expire.
   */
  private async takeOverStale(): Promise<void> {
    const current = await this.client.get(LEASE_KEY);
    if (current === null) {
      // Expired between the two commands.
      if ((await this.client.set(LEASE_KEY, this.value, { NX: true, PX: LEASE_MS })) === "OK") {
        return;
      }
      throw this.inUse(undefined);
    }

    const holder = parseOwner(current);
    const sameHost =
      holder !== undefined &&
      holder.host === this.owner.host &&
      holder.boot !== undefined &&
      holder.boot === this.owner.boot &&
      holder.pidNamespace !== undefined &&
      holder.pidNamespace === this.owner.pidNamespace;
    const alive = holder !== undefined && isProcessRunning(holder.pid) && (holder.pid !== process.pid || heldHere.has(holder.token));
    if (!sameHost || alive) {
      throw this.inUse(holder);
    }

    const replaced = await this.client.eval(REPLACE_SCRIPT, { keys: [LEASE_KEY], arguments: [current, this.value, String(LEASE_MS)] });
    if (replaced !== 1) {
      throw this.inUse(undefined);
    }
    this.log?.info({ journal: this.description, previousPid: holder!.pid }, "took over the journal from a server on this host that is no longer running");
  }

  private async renew(): Promise<void> {
    try {
      const renewed = await this.client.eval(RENEW_SCRIPT, { keys: [LEASE_KEY], arguments: [this.value, String(LEASE_MS)] });
      if (renewed === 1) {
        this.reportedHolder = undefined;
        return;
      }
      // The claim expired, as after a Redis outage longer than LEASE_MS. Claim it again unless another server did.
      if ((await this.client.set(LEASE_KEY, this.value, { NX: true, PX: LEASE_MS })) === "OK") {
        this.log?.warn({ journal: this.description }, `claimed the Redis journal again: the claim expired, as it can when Redis is unreachable or restarts for more than ${(LEASE_MS - RENEW_EVERY_MS) / 1000} s and always does after ${LEASE_MS / 1000} s, and no other server had taken it`);
        return;
      }
      const holder = await this.client.get(LEASE_KEY);
      if (holder !== this.reportedHolder) {
        this.reportedHolder = holder;
        this.log?.error({ journal: this.description, key: LEASE_KEY, holder }, "another server took over the Redis journal; both may now run the same jobs, so stop one of them");
      }
    } catch (error) {
      // While Redis is unreachable the connection logs the outage once; the next renewal retries.
      this.log?.debug({ err: error, journal: this.description }, "renewing the claim on the Redis journal failed");
    }
  }

  private inUse(holder: Owner | undefined): BesterError {
    const claimant = holder ? `Another server (process ${holder.pid} on host ${holder.host})` : "Another server";
    return new BesterError(
      "storeInUse",
      `${claimant} uses the journal in ${this.description}. Give each server its own Redis database, such as another database number at the end of the store URL, or stop the other server. A server that stopped without releasing it holds it for up to ${LEASE_MS / 1000} s after its last renewal, unless it ran on this host.`,
    );
  }
}

function parseOwner(value: string): Owner | undefined {
  try {
    const parsed = JSON.parse(value) as Partial<Owner>;
    if (typeof parsed.host === "string" && Number.isInteger(parsed.pid) && typeof parsed.token === "string") {
      return parsed as Owner;
    }
  } catch {
    // Not written by this module; treated as held by an unknown server.
  }
  return undefined;
}
