// One server per data folder. The folder contains the journal, the handler sockets and the server
// key, and a second server started on it would resume the first one's stored jobs (running them
// twice) and replace its handler sockets before failing on the taken port. So the first server
// writes its process id to `bester.pid` in the folder, and a server that finds the file naming a
// live process stops before anything else starts.

import { mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import { isProcessRunning } from "../../core/process-state.js";
import type { BesterPlugin } from "../../core/plugin.js";

export const PLUGIN_NAME = "data-dir-lock";

export const LOCK_FILE = "bester.pid";

/** Lock files held by servers in this process: a pid file naming this process is stale only if it is not listed. */
const heldHere = new Set<string>();

export function dataDirLock(): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const file = path.resolve(bester.config.dataDir, LOCK_FILE);
      let ownsLock = false;

      // Stage -200: before the store (-100) opens the journal and before any handler starts.
      bester.hooks.initialize.tap({ name: PLUGIN_NAME, stage: -200 }, () => {
        acquire(file);
        ownsLock = true;
        heldHere.add(file);
      });

      // Stage 1000: after every other close tap, so the folder stays ours until the store closed.
      bester.hooks.close.tap({ name: PLUGIN_NAME, stage: 1000 }, () => {
        if (!ownsLock) {
          return;
        }
        ownsLock = false;
        heldHere.delete(file);
        try {
          unlinkSync(file);
        } catch (error) {
          log.warn({ err: error, file }, "removing the data folder's pid file failed; the next start replaces it");
        }
      });
    },
  };
}

/** Creates the pid file, replacing one left by a process that no longer runs. */
function acquire(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true });

  // Two attempts: the second follows the removal of a stale file, so it fails only when another
  // server created the file in between.
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new BesterError("storeFailed", `Creating ${file} failed: ${(error as Error).message}. Check that dataDir is writable.`, { cause: error });
      }
    }

    const owner = readOwner(file);
    if (owner !== undefined && isProcessRunning(owner) && (owner !== process.pid || heldHere.has(file))) {
      throw new BesterError(
        "dataDirInUse",
        `Another server (process ${owner}) uses the data folder ${path.dirname(file)}. Stop it first, or give this server its own dataDir. If process ${owner} is not a Bester NG server, delete ${file}.`,
      );
    }
    // Left by a server that stopped without removing it, such as after a crash. Another server
    // starting at the same moment may have removed it already.
    rmSync(file, { force: true });
  }
  throw new BesterError("dataDirInUse", `Another server started on the data folder ${path.dirname(file)} at the same time. Start one server per dataDir.`);
}

function readOwner(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
