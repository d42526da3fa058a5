// One server per data folder. The folder contains the journal, the handler sockets and the server
// key, and a second server started on it would resume the first one's stored jobs (running them
// twice) and replace its handler sockets before failing on the taken port. So the first server
// writes its process id to `bester.pid` in the folder, and a server that finds the file naming a
// live process stops before anything else starts.

import path from "node:path";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import { claimPidFile, releasePidFile } from "../../core/pid-file.js";
import type { BesterPlugin } from "../../core/plugin.js";

export const PLUGIN_NAME = "data-dir-lock";

export const LOCK_FILE = "bester.pid";

export function dataDirLock(): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const file = path.resolve(bester.config.dataDir, LOCK_FILE);
      const folder = path.dirname(file);
      // Per server: another server in this process that failed to claim the folder must not remove this one's file.
      let claimed = false;

      // Stage -200: before the store (-100) opens the journal and before any handler starts.
      bester.hooks.initialize.tap({ name: PLUGIN_NAME, stage: -200 }, () => {
        claimPidFile(file, {
          inUse: (owner) =>
            new BesterError("dataDirInUse", `Another server (process ${owner}) uses the data folder ${folder}. Stop it first, or give this server its own dataDir. If process ${owner} is not a Bester NG server, delete ${file}.`),
          raced: () => new BesterError("dataDirInUse", `Another server started on the data folder ${folder} at the same time. Start one server per dataDir.`),
        }, "dataDir");
        claimed = true;
      });

      // Stage 1000: after every other close tap, so the folder stays ours until the store closed.
      bester.hooks.close.tap({ name: PLUGIN_NAME, stage: 1000 }, () => {
        if (!claimed) {
          return;
        }
        claimed = false;
        const failure = releasePidFile(file);
        if (failure) {
          log.warn({ err: failure, file }, "removing the data folder's pid file failed; the next start replaces it");
        }
      });
    },
  };
}
