// Claims of a folder or a file for one server process. The claim is an exclusive lock that SQLite
// takes on a small lock file. The kernel releases it when the process ends, however it ends, so a
// server killed with kill -9 leaves nothing to clean up, and the lock is seen across processes and
// pid namespaces on the same kernel. A pid file next to it names the owner in messages.

import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import sqlite3 from "sqlite3";
import { BesterError } from "./errors.js";
import { createFolder } from "./folders.js";

export interface ServerClaim {
  /** File that the owner's process id is written to, for messages. */
  pidFile: string;
  /** File that SQLite locks; it stays in place after the claim ends. */
  lockFile: string;
  /** Creates the error for a claim that another server has; `owner` is its process id when the pid file names one. */
  inUse: (owner: number | undefined) => BesterError;
  /** Config key that chose the folder, named when the folder cannot be created. */
  setting: string;
}

/** Open lock connections by pid file, for release. */
const lockConnections = new Map<string, sqlite3.Database>();

/** Takes the claim, or throws `inUse` when another server, in this process or another, has it. */
export async function takeServerClaim(claim: ServerClaim): Promise<void> {
  // Both files usually share a folder, which then is created once.
  for (const folder of new Set([path.dirname(claim.pidFile), path.dirname(claim.lockFile)])) {
    createFolder(folder, claim.setting);
  }

  const lock = await lockExclusively(claim.lockFile);
  if (!lock) {
    throw claim.inUse(readOwner(claim.pidFile));
  }
  lockConnections.set(claim.pidFile, lock);
  try {
    writeFileSync(claim.pidFile, `${process.pid}\n`);
  } catch (error) {
    await releaseServerClaim(claim.pidFile);
    throw new BesterError("storeFailed", `Creating ${claim.pidFile} failed: ${(error as Error).message}. Check ${claim.setting} in the config.`, { cause: error });
  }
}

/** Ends a claim this process holds: removes the pid file, then drops the lock. Returns a failure for the caller to log. */
export async function releaseServerClaim(pidFile: string): Promise<Error | undefined> {
  const lock = lockConnections.get(pidFile);
  if (!lock) {
    return undefined;
  }
  lockConnections.delete(pidFile);

  let failure: Error | undefined;
  try {
    rmSync(pidFile, { force: true });
  } catch (error) {
    failure = error as Error;
  }
  await new Promise<void>((resolve) => lock.close(() => resolve()));
  return failure;
}

/**
 * Opens `file` as a SQLite database and takes an exclusive lock that the connection keeps until it
 * closes. Resolves with the connection, or undefined when another connection has the lock.
 */
async function lockExclusively(file: string): Promise<sqlite3.Database | undefined> {
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const opened = new sqlite3.Database(file, (error) => (error ? reject(error) : resolve(opened)));
  });
  try {
    // In EXCLUSIVE locking mode a connection keeps the locks it took; the write makes the lock an exclusive one.
    await new Promise<void>((resolve, reject) => db.exec(`PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; PRAGMA user_version=${process.pid}; COMMIT;`, (error) => (error ? reject(error) : resolve())));
    return db;
  } catch (error) {
    await new Promise<void>((resolve) => db.close(() => resolve()));
    if ((error as { code?: string }).code === "SQLITE_BUSY") {
      return undefined;
    }
    throw new BesterError("storeFailed", `Locking ${file} failed: ${(error as Error).message}.`, { cause: error });
  }
}

function readOwner(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
