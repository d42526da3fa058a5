// The journal on SQLite: its own table in the store's file, on its own connection, in write-ahead
// logging mode. Each batch is one transaction, so one fsync covers every job in it.

import { realpathSync } from "node:fs";
import path from "node:path";
import sqlite3 from "sqlite3";
import { BesterError } from "../../core/errors.js";
import { createFolder } from "../../core/folders.js";
import { releaseServerClaim, takeServerClaim } from "../../core/server-claim.js";
import { prefixEnd, type JournalBackend, type JournalBatch, type JournalEntry } from "./backend.js";
import { FILE_VALUE_CHARS, isFileReference, REFERENCE_RANGE, ValueFiles } from "./value-files.js";

const TABLE = "bester_journal";
const BUSY_TIMEOUT_MS = 5000;
/** Rows per INSERT or DELETE: at most 800 bound values, far below SQLite's default limit of 32 766. */
const ROWS_PER_STATEMENT = 400;
/** Largest batch, in characters of keys and values, written as one SQL script with the values inline. */
const MAX_INLINE_CHARS = 1024 * 1024;
const INSERT_ROWS = `INSERT INTO ${TABLE} (key, value) VALUES`;
const ON_CONFLICT = "ON CONFLICT(key) DO UPDATE SET value = excluded.value";
const DELETE_KEYS = `DELETE FROM ${TABLE} WHERE key IN`;

export class SqliteJournalBackend implements JournalBackend {
  readonly durable = true;
  readonly description: string;
  private db: sqlite3.Database | undefined;
  private readonly files: ValueFiles;
  /** Keys whose stored value is a file reference, so that file is removed once the key is replaced or deleted. */
  private fileKeys = new Map<string, string>();
  private claimed = false;

  /**
   * @param options.claim set by the server, so open() claims the file for this process first. A
   * test or tool that only reads and writes leaves it off.
   */
  constructor(
    private readonly file: string,
    private readonly options: { claim?: boolean } = {},
  ) {
    this.description = `sqlite://${file}`;
    this.files = new ValueFiles(`${file}-values`);
  }

  /** Pid file that names the server holding the store file; set by claim(). */
  private pidFile: string | undefined;

  async open(): Promise<void> {
    if (this.options.claim) {
      // Before anything else: the sweep below deletes value files the owner may have just written.
      await this.claim();
    }
    createFolder(path.dirname(this.file), "store");
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

    this.files.open();
    const references = await this.all<JournalEntry>(`SELECT key, value FROM ${TABLE} WHERE value >= ? AND value < ?`, [...REFERENCE_RANGE]);
    for (const { key, value } of references) {
      this.fileKeys.set(key, value);
    }
    this.files.sweep(new Set(this.fileKeys.values()));
  }

  /**
   * Claims the file with a lock on `<file>.lock` and the process id in `<file>.pid`, or throws
   * storeInUse. The data folder's claim does not cover a store file outside the folder, or two
   * servers whose configs name one file with different data folders.
   */
  private async claim(): Promise<void> {
    // Next to the real file, so a symbolic link to the store file leads to the same claim.
    const real = realFileOf(this.file);
    this.pidFile = `${real}.pid`;
    await takeServerClaim({
      pidFile: this.pidFile,
      lockFile: `${real}.lock`,
      setting: "store",
      inUse: (owner) =>
        new BesterError("storeInUse", `Another server${owner === undefined ? "" : ` (process ${owner})`} uses the store ${this.description}. Give each server its own store file, or stop the other server.`),
    });
    this.claimed = true;
  }

  /**
   * Applies the batch in one transaction: one SQL script when the batch allows it, otherwise one
   * multi-row statement per 400 rows with bound values. Values of FILE_VALUE_CHARS or more are
   * written to their own files first, and the transaction stores references to them.
   */
  async write(batch: JournalBatch): Promise<void> {
    const created: string[] = [];
    const replaced: string[] = [];
    const puts: string[] = [];
    const removals: string[] = [];
    for (const [key, value] of batch) {
      const previous = this.fileKeys.get(key);
      if (previous !== undefined) {
        replaced.push(previous);
      }
      if (value === null) {
        removals.push(key);
      } else {
        puts.push(key, value);
      }
    }

    try {
      await this.moveLargeValuesToFiles(puts, created);
      const script = inlineScript(puts, removals);
      if (script !== undefined) {
        // One exec is one round trip to the driver's thread instead of four (BEGIN, INSERT,
        // DELETE, COMMIT), which halved the CPU time of a 10-row commit in a standalone test.
        await this.exec(script);
      } else {
        await this.writeBound(puts, removals);
      }
    } catch (error) {
      // A failed statement or COMMIT can leave the transaction open. Rolling it back keeps none of
      // the batch and lets the next batch begin its own transaction.
      await this.run("ROLLBACK").catch(() => undefined);
      await this.files.remove(created).catch(() => undefined);
      throw error;
    }

    for (const key of removals) {
      this.fileKeys.delete(key);
    }
    for (let index = 0; index < puts.length; index += 2) {
      const value = puts[index + 1]!;
      if (isFileReference(value)) {
        this.fileKeys.set(puts[index]!, value);
      } else {
        this.fileKeys.delete(puts[index]!);
      }
    }
    // Not awaited: the batch is durable already, and a file left by a crash here is swept at the next open.
    this.files.remove(replaced).catch(() => undefined);
  }

  /**
   * Writes each large value in `puts` (key, value pairs) to a file and puts the file's reference in
   * its place. Every write settles before a failure is raised, so `created` lists every file made.
   */
  private async moveLargeValuesToFiles(puts: string[], created: string[]): Promise<void> {
    const writes: Array<Promise<void>> = [];
    for (let index = 1; index < puts.length; index += 2) {
      const value = puts[index]!;
      if (typeof value === "string" && value.length >= FILE_VALUE_CHARS) {
        writes.push(
          this.files.write(value).then((reference) => {
            created.push(reference);
            puts[index] = reference;
          }),
        );
      }
    }
    const failed = (await Promise.allSettled(writes)).find((result) => result.status === "rejected");
    if (failed) {
      throw failed.reason;
    }
  }

  /**
   * Writes the batch with bound values, one multi-row statement per 400 rows. A statement per row
   * cost a round trip to the driver's thread each, which was most of a commit's time.
   */
  private async writeBound(puts: string[], removals: string[]): Promise<void> {
    await this.run("BEGIN IMMEDIATE");
    for (let index = 0; index < puts.length; index += 2 * ROWS_PER_STATEMENT) {
      const values = puts.slice(index, index + 2 * ROWS_PER_STATEMENT);
      const rows = Array.from({ length: values.length / 2 }, () => "(?, ?)").join(", ");
      await this.run(`${INSERT_ROWS} ${rows} ${ON_CONFLICT}`, values);
    }
    for (let index = 0; index < removals.length; index += ROWS_PER_STATEMENT) {
      const keys = removals.slice(index, index + ROWS_PER_STATEMENT);
      await this.run(`${DELETE_KEYS} (${keys.map(() => "?").join(", ")})`, keys);
    }
    await this.run("COMMIT");
  }

  async scan(prefix: string): Promise<JournalEntry[]> {
    const rows = await this.all<JournalEntry>(`SELECT key, value FROM ${TABLE} WHERE key >= ? AND key < ? ORDER BY key`, [prefix, prefixEnd(prefix)]);
    for (const row of rows) {
      if (isFileReference(row.value)) {
        row.value = await this.readValueFile(row.key, row.value);
      }
    }
    return rows;
  }

  private async readValueFile(key: string, reference: string): Promise<string> {
    try {
      return await this.files.read(reference);
    } catch (error) {
      throw new Error(`Reading the value of journal key "${key}" from its file in ${this.files.folder} failed: ${(error as Error).message}. Restore the file, or delete the key from table ${TABLE} to start without it.`, { cause: error });
    }
  }

  async keys(prefix: string): Promise<string[]> {
    const rows = await this.all<{ key: string }>(`SELECT key FROM ${TABLE} WHERE key >= ? AND key < ? ORDER BY key`, [prefix, prefixEnd(prefix)]);
    return rows.map((row) => row.key);
  }

  async close(): Promise<void> {
    if (this.claimed && this.pidFile) {
      this.claimed = false;
      await releaseServerClaim(this.pidFile);
    }
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

/**
 * Builds the batch's whole transaction as one SQL script with the keys and values as string
 * literals. Returns undefined, for the bound path, when the batch is over MAX_INLINE_CHARS or
 * contains a value that is not a string. A NUL character also returns undefined, because
 * sqlite3_exec reads the script as a C string and would stop at it.
 */
function inlineScript(puts: string[], removals: string[]): string | undefined {
  let chars = 0;
  for (const list of [puts, removals]) {
    for (const text of list) {
      // A caller in plain JavaScript can pass other values, and the bound path rejects those.
      if (typeof text !== "string" || text.includes("\0")) {
        return undefined;
      }
      chars += text.length;
    }
  }
  if (chars > MAX_INLINE_CHARS) {
    return undefined;
  }

  const statements = ["BEGIN IMMEDIATE;"];
  if (puts.length > 0) {
    const rows: string[] = [];
    for (let index = 0; index < puts.length; index += 2) {
      rows.push(`(${literal(puts[index]!)}, ${literal(puts[index + 1]!)})`);
    }
    statements.push(`${INSERT_ROWS} ${rows.join(", ")} ${ON_CONFLICT};`);
  }
  if (removals.length > 0) {
    statements.push(`${DELETE_KEYS} (${removals.map(literal).join(", ")});`);
  }
  statements.push("COMMIT;");
  return statements.join("\n");
}

/** Quotes text as an SQL string literal, in which the only escape is a doubled single quote. */
function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** Resolves symbolic links in `file`, or in its folder while the file does not exist yet. */
function realFileOf(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    try {
      return path.join(realpathSync(path.dirname(file)), path.basename(file));
    } catch {
      return file;
    }
  }
}
