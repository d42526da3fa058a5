// The journal on SQLite: its own table in the store's file, on its own connection, in write-ahead
// logging mode. Each batch is one transaction, so one fsync covers every job in it.

import { mkdirSync } from "node:fs";
import path from "node:path";
import sqlite3 from "sqlite3";
import { prefixEnd, type JournalBackend, type JournalBatch, type JournalEntry } from "./backend.js";

const TABLE = "bester_journal";
const BUSY_TIMEOUT_MS = 5000;

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

  write(batch: JournalBatch): Promise<void> {
    const db = this.require();
    return new Promise((resolve, reject) => {
      let failure: Error | null = null;
      const remember = (error: Error | null) => {
        failure ??= error;
      };

      // serialize() queues the statements in order on this connection. The COMMIT callback runs
      // after every one of them, so a single promise covers the whole transaction.
      db.serialize(() => {
        db.run("BEGIN IMMEDIATE", remember);
        const upsert = db.prepare(`INSERT INTO ${TABLE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`);
        const remove = db.prepare(`DELETE FROM ${TABLE} WHERE key = ?`);
        for (const [key, value] of batch) {
          if (value === null) {
            remove.run(key, remember);
          } else {
            upsert.run(key, value, remember);
          }
        }
        upsert.finalize();
        remove.finalize();
        db.run("COMMIT", (error) => {
          const problem = failure ?? error;
          if (!problem) {
            resolve();
            return;
          }
          db.run("ROLLBACK", () => reject(problem));
        });
      });
    });
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

  private exec(sql: string): Promise<void> {
    const db = this.require();
    return new Promise((resolve, reject) => db.exec(sql, (error) => (error ? reject(error) : resolve())));
  }

  private all<Row>(sql: string, params: unknown[]): Promise<Row[]> {
    const db = this.require();
    return new Promise((resolve, reject) => db.all(sql, params, (error, rows) => (error ? reject(error) : resolve(rows as Row[]))));
  }
}
