// One group-commit writer per server, shared by the job journal and the offline message store so
// that a job's removal and its offline notification can commit in one transaction.

import type { Logger } from "pino";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import { MemoryJournalBackend, type JournalBackend } from "./backend.js";
import { GroupCommitWriter, type GroupCommitOptions } from "./group-commit.js";
import { RedisJournalBackend } from "./redis-backend.js";
import { SqliteJournalBackend } from "./sqlite-backend.js";

const LOG_NAME = "journal";

interface SharedLog {
  writer: GroupCommitWriter;
  opened: Promise<void>;
}

const logs = new WeakMap<Bester, SharedLog>();

/**
 * Creates the backend for a store URL; the journal lives next to the keyv data. With `claim`, its
 * open() claims the store for this process, and close() releases the claim. A second server on the
 * same store then stops with storeInUse instead of running the first one's jobs again.
 */
export function createJournalBackend(storeUrl: string, log?: Logger, options: { claim?: boolean } = {}): JournalBackend {
  if (storeUrl.startsWith("sqlite://")) {
    return new SqliteJournalBackend(storeUrl.slice("sqlite://".length), options);
  }
  if (storeUrl.startsWith("redis://") || storeUrl.startsWith("rediss://")) {
    return new RedisJournalBackend(storeUrl, log, options);
  }
  return new MemoryJournalBackend();
}

/**
 * Returns the server's shared writer, opening its backend on first use. Call it from an
 * `initialize` tap or later; the first caller also closes it in the `close` hook.
 */
export async function openDurableLog(bester: Bester, options: GroupCommitOptions = {}): Promise<GroupCommitWriter> {
  let shared = logs.get(bester);
  if (!shared) {
    const log = bester.logFor(LOG_NAME);
    const backend = createJournalBackend(bester.config.store, log, { claim: true });
    const writer = new GroupCommitWriter(backend, log, options);
    const opened = backend
      .open()
      .catch((error: unknown) => {
        // These already name the store and what to do, as for a Redis database that does not exist.
        if (error instanceof BesterError && (error.code === "storeInUse" || error.code === "storeFailed")) {
          throw error;
        }
        throw new BesterError("storeFailed", `Opening the journal at ${backend.description} failed: ${(error as Error).message}. Check that the path or URL in "store" is right and, for Redis, that redis-server is running there.`, { cause: error });
      });
    shared = { writer, opened };
    logs.set(bester, shared);

    // Stage 50: after every `stop` tap and before the store plugin closes the keyv store at 100.
    bester.hooks.close.tapPromise({ name: LOG_NAME, stage: 50 }, async () => {
      await opened.catch(() => undefined);
      await writer.close();
    });
  }
  await shared.opened;
  return shared.writer;
}
