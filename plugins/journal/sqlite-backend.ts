// The journal on SQLite: its own table in the store's file, on its own connection, in write-ahead
// logging mode. Each batch is one transaction, so one fsync covers every job in it.

import { mkdirSync } from "node:fs";
import path from "node:path";
import sqlite3 from "sqlite3";
import { prefixEnd, type JournalBackend, type JournalBatch, type JournalEntry } from "./backend.js";

const TABLE = "bester_journal";
const BUSY_TIMEOUT_MS = 5000;
/** Rows per INSERT or DELETE: at most 800 bound values, far below SQLite's default limit of 32 766. */
const ROWS_PER_STATEMENT = 400;

export class SqliteJournalBackend implements JournalBackend {
  readonly durable = true;
  readonly description: string;
  private db: sqlite3.Database | undefined;

  constructor(private readonly file: string) {
    this.description = `sqlite://${file}`;
  }

  async open(): Promise<void> {
    mkdirSync(path.dirname(this.file), { recursive: true });
    this.db = await new Promise<sqlite3.Database>((resolve, reject) => {
      const db = new sqlite3.Database(this.file, (error) => (error ? reject(error) : resolve(db)));
    });
    this.db.configure("busyTimeout", BUSY_TIMEOUT_MS);

    // synchronous=FULL makes each COMMIT wait for the fsync of the write-ahead log, so a batch
    // that resolved survives a power loss, not only a process crash.
    await this.exec(`
      PRAGMA journal_mode=WAL;
      PRAGMA synchronous=FULL;
      CREATE TABLE IF NOT EXISTS ${TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    `);
  }

  /**
   * Applies the batch in one transaction with one multi-row statement per 400 rows. A statement
   * per row cost a round trip to the driver's thread each, which was most of a commit's time.
   */
  async write(batch: JournalBatch): Promise<void> {
    const puts: string[] = [];
    const removals: string[] = [];
    for (const [key, value] of batch) {
      if (value === null) {
        removals.push(key);
      } else {
        puts.push(key, value);
      }
    }

    await this.run("BEGIN IMMEDIATE");
    try {
      for (let index = 0; index < puts.length; index += 2 * ROWS_PER_STATEMENT) {
        const values = puts.slice(index, index + 2 * ROWS_PER_STATEMENT);
        const rows = Array.from({ length: values.length / 2 }, () => "(?, ?)").join(", ");
        await this.run(`INSERT INTO ${TABLE} (key, value) VALUES ${rows} ON CONFLICT(key) DO UPDATE SET value = excluded.value`, values);
      }
      for (let index = 0; index < removals.length; index += ROWS_PER_STATEMENT) {
        const keys = removals.slice(index, index + ROWS_PER_STATEMENT);
        await this.run(`DELETE FROM ${TABLE} WHERE key IN (${keys.map(() => "?").join(", ")})`, keys);
      }
      await this.run("COMMIT");
    } catch (error) {
      // A failed statement or COMMIT can leave the transaction open. Rolling it back keeps none of
      // the batch and lets the next batch begin its own transaction.
      await this.run("ROLLBACK").catch(() => undefined);
      throw error;
    }
  }

  scan(prefix: string): Promise<JournalEntry[]> {
    return this.all<JournalEntry>(`SELECT key, value FROM ${TABLE} WHERE key >= ? AND key < ? ORDER BY key`, [prefix, prefixEnd(prefix)]);
  }

  async keys(prefix: string): Promise<string[]> {
    const rows = await this.all<{ key: string }>(`SELECT key FROM ${TABLE} WHERE key >= ? AND key < ? ORDER BY key`, [prefix, prefixEnd(prefix)]);
    return rows.map((row) => row.key);
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    if (db) {
      await new Promise<void>((resolve, reject) => db.close((error) => (error ? reject(error) : resolve())));
    }
  }

  private require(): sqlite3.Database {
    if (!this.db) {
      throw new Error(`The journal at ${this.description} is not open.`);
    }
    return this.db;
  }

  private run(sql: string, params: unknown[] = []): Promise<void> {
    const db = this.require();
    return new Promise((resolve, reject) => db.run(sql, params, (error) => (error ? reject(error) : resolve())));
  }

  private exec(sql: string): Promise<void> {
    const db = this.require();
    return new Promise((resolve, reject) => db.exec(sql, (error) => (error ? reject(error) : resolve())));
  }

  private all<Row>(sql: string, params: unknown[]): Promise<Row[]> {
    const db = this.require();
    return new Promise((resolve, reject) => db.all(sql, params, (error, rows) => (error ? reject(error) : resolve(rows as Row[]))));
  }
}
