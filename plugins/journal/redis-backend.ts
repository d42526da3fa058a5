// The journal on Redis: each entry is a string key, and a sorted set with score 0 indexes the keys
// so a prefix scan is a lexicographic range query. Each batch runs as one MULTI/EXEC transaction.

import type { Logger } from "pino";
import { closeRedisClient, describeRedisUrl, openRedisClient, runCommand, type RedisClient } from "../store/redis-client.js";
import type { JournalBackend, JournalBatch, JournalEntry } from "./backend.js";
import { RedisLease } from "./redis-lease.js";

const KEY_PREFIX = "bester:journal:";
const INDEX_KEY = "bester:journal-index";
/** Keys fetched per MGET during a scan. */
const SCAN_PAGE = 500;
/** The connection's name in logs and errors; the keyv store has its own, named "store". */
const ROLE = "journal";

export class RedisJournalBackend implements JournalBackend {
  readonly durable = true;
  readonly description: string;
  private client: RedisClient | undefined;
  private lease: RedisLease | undefined;

  /** `options.claim`: set by the server, so open() claims the database for this process; see RedisLease. */
  constructor(
    private readonly url: string,
    private readonly log?: Logger,
    private readonly options: { claim?: boolean } = {},
  ) {
    this.description = describeRedisUrl(url);
  }

  /** Connects, or rejects when Redis is not reachable within REDIS_CONNECT_TIMEOUT_MS. */
  async open(): Promise<void> {
    this.client = await openRedisClient(this.url, this.log, ROLE);
    if (this.options.claim) {
      const lease = new RedisLease(this.client, this.description, this.log);
      await lease.claim();
      this.lease = lease;
    }
  }

  /** Commits `batch` as one transaction; fails at once with `storeUnavailable` while Redis is unreachable. */
  async write(batch: JournalBatch): Promise<void> {
    const client = this.require();
    const transaction = client.multi();
    for (const [key, value] of batch) {
      if (value === null) {
        transaction.del(KEY_PREFIX + key);
        transaction.zRem(INDEX_KEY, key);
      } else {
        transaction.set(KEY_PREFIX + key, value);
        transaction.zAdd(INDEX_KEY, { score: 0, value: key });
      }
    }
    await runCommand(client, this.description, ROLE, () => transaction.exec());
  }

  async scan(prefix: string): Promise<JournalEntry[]> {
    const keys = await this.keys(prefix);
    const entries: JournalEntry[] = [];
    for (let start = 0; start < keys.length; start += SCAN_PAGE) {
      const page = keys.slice(start, start + SCAN_PAGE);
      const client = this.require();
      const values = await runCommand(client, this.description, ROLE, () => client.mGet(page.map((key) => KEY_PREFIX + key)));
      page.forEach((key, index) => {
        const value = values[index];
        if (typeof value === "string") {
          entries.push({ key, value });
        }
      });
    }
    return entries;
  }

  async keys(prefix: string): Promise<string[]> {
    // With equal scores, ZRANGE BYLEX orders members by their bytes, the same order SQLite uses.
    const client = this.require();
    return runCommand(client, this.description, ROLE, () => client.zRange(INDEX_KEY, `[${prefix}`, `(${prefix}\xff`, { BY: "LEX" }));
  }

  async close(): Promise<void> {
    await this.lease?.release().catch((error: unknown) => this.log?.warn({ err: error, journal: this.description }, "releasing the claim on the Redis journal failed; it expires on its own"));
    this.lease = undefined;
    const client = this.client;
    this.client = undefined;
    await closeRedisClient(client);
  }

  /** Whether the connection to Redis is up, for the status report. */
  get reachable(): boolean {
    return this.client?.isReady === true;
  }

  private require(): RedisClient {
    if (!this.client) {
      throw new Error(`The journal at ${this.description} is not open.`);
    }
    return this.client;
  }
}
