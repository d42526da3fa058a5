// Large journal values in files of their own. SQLite writes a 1 MiB row as a chain of overflow
// pages, one write per page into the write-ahead log. In a standalone test that commit took about
// 4 ms, against 1.2 ms to write and fsync the same megabyte to a file. The table keeps a short
// reference to the file, so its commit stays as small as any other.

import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { open, readFile, unlink } from "node:fs/promises";
import path from "node:path";

/** Values at least this long go to a file. Smaller ones cost less as a row than a file and its fsyncs. */
export const FILE_VALUE_CHARS = 256 * 1024;

/**
 * Start of a reference in the table. Stored values are JSON text, which never begins with a
 * control character, so a reference cannot be mistaken for a value. Not NUL, because the inline
 * SQL script, a C string, would end there.
 */
const REFERENCE_PREFIX = "\u0001file:";

/** Bounds of every reference in the table's ordering, for a range query: `>=` the first, `<` the second. */
export const REFERENCE_RANGE: readonly [string, string] = [REFERENCE_PREFIX, "\u0001file;"];

/** Returns whether a stored value is a reference to a value file. */
export function isFileReference(stored: string): boolean {
  return stored.startsWith(REFERENCE_PREFIX);
}

/** The files of one journal, in one folder, each written once and never changed. */
export class ValueFiles {
  constructor(readonly folder: string) {}

  /** Creates the folder when missing. */
  open(): void {
    mkdirSync(this.folder, { recursive: true });
  }

  /**
   * Writes `value` to a new file and returns the reference to store in its place. The file's
   * contents and its name in the folder are both on disk when the promise resolves, so a commit
   * that stores the reference afterwards never points at a missing file.
   */
  async write(value: string): Promise<string> {
    const name = `${Date.now().toString(36)}-${randomBytes(8).toString("hex")}`;
    const target = path.join(this.folder, name);
    const file = await open(target, "wx");
    try {
      try {
        await file.writeFile(value, "utf8");
        await file.datasync();
      } finally {
        await file.close();
      }
      await this.syncFolder();
    } catch (error) {
      // A full disk or a file size limit leaves part of the value behind; nothing refers to it.
      await unlink(target).catch(() => undefined);
      throw error;
    }
    return REFERENCE_PREFIX + name;
  }

  /** Reads the value a reference points at. */
  read(reference: string): Promise<string> {
    return readFile(this.pathOf(reference), "utf8");
  }

  /** Removes the files of references that are no longer stored. A file that is already missing is skipped. */
  async remove(references: Iterable<string>): Promise<void> {
    const removals: Array<Promise<void>> = [];
    for (const reference of references) {
      removals.push(unlink(this.pathOf(reference)).catch(ignoreMissing));
    }
    await Promise.all(removals);
  }

  /**
   * Removes every file that no stored reference points at: left by a crash between writing a
   * file and committing its reference, or between a commit and the removal of the file it
   * replaced.
   */
  sweep(stored: ReadonlySet<string>): void {
    for (const name of readdirSync(this.folder)) {
      if (!stored.has(REFERENCE_PREFIX + name)) {
        rmSync(path.join(this.folder, name), { force: true });
      }
    }
  }

  private pathOf(reference: string): string {
    const name = reference.slice(REFERENCE_PREFIX.length);
    if (name.length === 0 || name.includes("/") || name.includes("\\") || name.startsWith(".")) {
      throw new Error(`Invalid value file reference "${name}" in the journal.`);
    }
    return path.join(this.folder, name);
  }

  /** Makes the new file's name durable: fsync of a file does not cover its entry in the folder. */
  private async syncFolder(): Promise<void> {
    const folder = await open(this.folder, "r");
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  }
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== "ENOENT") {
    throw error;
  }
}
