// Pid files that claim a folder or a file for one server process. The claim lasts while the named
// process runs; a file left by a process that is gone (killed, crashed, a zombie) is replaced.

import { mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { BesterError } from "./errors.js";
import { isProcessRunning } from "./process-state.js";

/** Pid files held by servers in this process: a file naming this process is stale only if it is not listed. */
const heldHere = new Set<string>();

export interface PidFileErrors {
  /** The error for a file that names another running process. */
  inUse: (owner: number) => BesterError;
  /** The error for losing the race against another process that created the file at the same moment. */
  raced: () => BesterError;
}

/**
 * Creates `folder` and its parents, or throws storeFailed naming `setting`, the config key that
 * chose it. A file where a folder should be fails with EEXIST or ENOTDIR, which alone is unclear.
 */
export function createFolder(folder: string, setting: string): void {
  try {
    mkdirSync(folder, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const cause = code === "EEXIST" || code === "ENOTDIR" ? "a file, not a folder, is in the way" : (error as Error).message;
    throw new BesterError("storeFailed", `Creating the folder ${folder} failed: ${cause}. Check ${setting} in the config.`, { cause: error });
  }
}

/** Creates the pid file, replacing one left by a process that no longer runs. */
export function claimPidFile(file: string, errors: PidFileErrors, setting: string): void {
  createFolder(path.dirname(file), setting);

  // Two attempts: the second follows the removal of a stale file, so it fails only when another
  // server created the file in between.
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      heldHere.add(file);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new BesterError("storeFailed", `Creating ${file} failed: ${(error as Error).message}. Check that its folder is writable.`, { cause: error });
      }
    }

    const owner = readOwner(file);
    // NOTE: a pid is checked in this process's pid namespace. Two containers that share the folder
    // and both run as pid 1 each take the other's file for a stale one; a lock held on an open file
    // would not be fooled.
    if (owner !== undefined && isProcessRunning(owner) && (owner !== process.pid || heldHere.has(file))) {
      throw errors.inUse(owner);
    }
    // Left by a server that stopped without removing it, such as after a crash. Another server
    // starting at the same moment may have removed it already.
    rmSync(file, { force: true });
  }
  throw errors.raced();
}

/** Removes a pid file this process claimed; a failure is returned, for the caller to log. */
export function releasePidFile(file: string): Error | undefined {
  if (!heldHere.delete(file)) {
    return undefined;
  }
  try {
    unlinkSync(file);
    return undefined;
  } catch (error) {
    return error as Error;
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
