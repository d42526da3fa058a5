// The job journal: every accepted job is stored before the submitter hears `accepted`, chain steps
// rewrite it, and its end removes it. After a crash, the next start runs every stored job again in
// id order, which is arrival order. Delivery is at-least-once: a job whose handler had already
// replied when the daemon died runs again, so handlers should tolerate a repeated job.

import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import type { Job } from "../../core/jobs/job.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { openDurableLog } from "./durable-log.js";
import type { GroupCommitOptions, GroupCommitWriter } from "./group-commit.js";

export const PLUGIN_NAME = "journal";

const JOB_PREFIX = "job/";

export type JournalOptions = GroupCommitOptions;

export function journalPlugin(options: JournalOptions = {}): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      let writer: GroupCommitWriter | undefined;

      // Stage -50: after the store plugin opened the store (-100), before accounts and handlers.
      bester.hooks.initialize.tapPromise({ name: PLUGIN_NAME, stage: -50 }, async () => {
        const shared = await openDurableLog(bester, options);
        if (!shared.durable) {
          // With the memory store nothing survives a restart, so jobs are not written anywhere.
          log.debug("store is not durable; jobs are not journaled");
          return;
        }
        writer = shared;
        tapJobEvents(writer);
      });

      // Stage 100: after the handler bridge started its pools, before transports listen.
      bester.hooks.start.tapPromise({ name: PLUGIN_NAME, stage: 100 }, async () => {
        if (writer) {
          await resumeStoredJobs(writer);
        }
      });

      function tapJobEvents(journal: GroupCommitWriter): void {
        bester.hooks.onJobAccepted.tapPromise(PLUGIN_NAME, async (job) => {
          try {
            await journal.put(JOB_PREFIX + job.id, JSON.stringify(job));
          } catch (error) {
            throw new BesterError("storeFailed", `Storing job ${job.id} failed: ${(error as Error).message}. Check that the store at ${journal.backend.description} is writable.`, { cause: error });
          }
        });

        bester.hooks.onJobUpdated.tapPromise(PLUGIN_NAME, (job) => journal.put(JOB_PREFIX + job.id, JSON.stringify(job)));

        bester.hooks.onJobEnd.tapPromise(PLUGIN_NAME, async (job) => {
          const removed = journal.delete(JOB_PREFIX + job.id);
          // A live submitter gets the notification on its socket, so the removal must commit first or
          // a crash in between would run the job again. An offline submitter's notification is
          // stored by a write made in this same turn, which commits in the same transaction.
          if (!job.notify || bester.sessions.isOnline(job.user)) {
            await removed;
          } else {
            removed.catch(() => undefined);
          }
        });
      }

      async function resumeStoredJobs(journal: GroupCommitWriter): Promise<void> {
        const entries = await journal.scan(JOB_PREFIX);
        let resumed = 0;

        for (const entry of entries) {
          let job: Job;
          try {
            job = JSON.parse(entry.value) as Job;
          } catch (error) {
            log.error({ err: error, key: entry.key }, "stored job is not valid JSON; removing it");
            await journal.delete(entry.key);
            continue;
          }

          try {
            bester.engine.resume(job);
            resumed += 1;
          } catch (error) {
            // The job's type is no longer configured: it fails with the coded error, which notifies.
            const wire = error instanceof BesterError ? error.toWire() : { code: "internalError", message: String(error) };
            void bester.engine.finish(job, { status: "failed", error: wire });
          }
        }

        if (entries.length > 0) {
          log.info({ resumed, stored: entries.length, journal: journal.backend.description }, "resumed jobs left unfinished by the previous run");
        }
      }
    },
  };
}
