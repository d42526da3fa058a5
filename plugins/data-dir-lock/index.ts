// One server per data folder. The folder contains the journal, the handler sockets and the server
// key, and a second server started on it would resume the first one's stored jobs (running them
// twice) and replace its handler sockets before failing on the taken port. So the first server
// claims the folder, with a lock on `bester.lock` and its process id in `bester.pid`, and a server
// that finds the claim taken stops before anything else starts.

import path from "node:path";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { releaseServerClaim, takeServerClaim } from "../../core/server-claim.js";

export const PLUGIN_NAME = "data-dir-lock";

/** Pid file that names the server process that claimed the folder. */
export const PID_FILE = "bester.pid";
/** Locked while a server holds the folder; it stays in place after the server stops. */
export const LOCK_FILE = "bester.lock";

export function dataDirLock(): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const folder = path.resolve(bester.config.dataDir);
      const pidFile = path.join(folder, PID_FILE);
      // Per server: another server in this process that failed to claim the folder must not release this one's claim.
      let claimed = false;

      // Stage -200: before the store (-100) opens the journal and before any handler starts.
      bester.hooks.initialize.tapPromise({ name: PLUGIN_NAME, stage: -200 }, async () => {
        await takeServerClaim({
          pidFile,
          lockFile: path.join(folder, LOCK_FILE),
          setting: "dataDir",
          inUse: (owner) =>
            new BesterError(
              "dataDirInUse",
              owner === undefined
                ? `Another server uses the data folder ${folder}. Stop it first, or give this server its own dataDir.`
                : `Another server (process ${owner}) uses the data folder ${folder}. Stop it first, or give this server its own dataDir.`,
            ),
        });
        claimed = true;
      });

      // Stage 1000: after every other close tap, so the folder stays ours until the store closed.
      bester.hooks.close.tapPromise({ name: PLUGIN_NAME, stage: 1000 }, async () => {
        if (!claimed) {
          return;
        }
        claimed = false;
        const failure = await releaseServerClaim(pidFile);
        if (failure) {
          log.warn({ err: failure, file: pidFile }, "removing the data folder's pid file failed; the next start replaces it");
        }
      });
    },
  };
}
