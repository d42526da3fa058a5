// Offline delivery: outputs, notifications and progress for a user with no live connection are
// stored and sent, in order, to the next connection that authenticates as that user. Each user's
// stored outputs from other users' jobs and progress reports are bounded, and on overflow the oldest
// is dropped with a warning. Notifications and outputs of the user's own jobs are always kept.

import type { Bester } from "../../core/bester.js";
import { createJobId, parseOutputId } from "../../core/jobs/job.js";
import type { BesterPlugin } from "../../core/plugin.js";
import type { Connection } from "../../core/sessions.js";
import { openDurableLog } from "../journal/durable-log.js";
import type { GroupCommitWriter } from "../journal/group-commit.js";

export const PLUGIN_NAME = "offline";

const PREFIX = "offline/";
/**
 * Ends the key of a message about one of the user's own jobs: its notification, or an output of a
 * job the user submitted here. The backlog bound never drops those, because once the journal
 * removed the job they are all that is left of it, and the user's own accepted jobs bound their
 * number. Outputs that other users' jobs send this user stay bounded.
 */
const KEPT_MARK = ":kept";

export interface OfflineOptions {
  /** Stored progress reports and outputs of other users' jobs per user; beyond it the oldest is dropped. Default 1000. */
  maxMessages?: number;
}

export const DEFAULT_MAX_OFFLINE_MESSAGES = 1000;

export function offlinePlugin(options: OfflineOptions = {}): BesterPlugin {
  const maxMessages = options.maxMessages ?? DEFAULT_MAX_OFFLINE_MESSAGES;

  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      let writer: GroupCommitWriter | undefined;
      /** Stored message keys per user, oldest first; keys sort by creation time. */
      const backlog = new Map<string, string[]>();
      /** Per-user delivery chain, so two sessions starting together do not both send the backlog. */
      const deliveries = new Map<string, Promise<void>>();
      const dropped = new Map<string, number>();
      /** Characters of stored messages sent at login before waiting for them to leave, well under maxBufferedBytes. */
      const flushEveryChars = Math.min(64 * 1024, Math.floor(bester.config.limits.maxBufferedBytes / 2));

      bester.hooks.initialize.tapPromise({ name: PLUGIN_NAME, stage: -40 }, async () => {
        writer = await openDurableLog(bester);
        for (const key of await writer.backend.keys(PREFIX)) {
          const user = key.slice(PREFIX.length, key.indexOf("/", PREFIX.length));
          backlog.set(user, [...(backlog.get(user) ?? []), key]);
        }
        if (backlog.size > 0) {
          log.info({ users: backlog.size }, "offline messages waiting from the previous run");
        }
      });

      bester.hooks.onUndelivered.tapPromise(PLUGIN_NAME, async (user, message) => {
        const journal = writer;
        if (!journal) {
          return undefined;
        }

        // Everything up to the put runs synchronously: see GroupCommitWriter on why that matters.
        const ownJob = isAboutOwnJob(user, message);
        const key = `${PREFIX}${user}/${createJobId()}${ownJob ? KEPT_MARK : ""}`;
        const keys = backlog.get(user) ?? [];
        keys.push(key);
        const stored = journal.put(key, JSON.stringify(message));
        backlog.set(user, ownJob ? keys : dropOverBound(user, keys, journal));
        await stored;
        return true;
      });

      bester.hooks.onSessionStart.tapPromise(PLUGIN_NAME, (user, connection) => {
        const previous = deliveries.get(user) ?? Promise.resolve();
        const next = previous.then(() => deliverBacklog(user, connection));
        deliveries.set(user, next.catch(() => undefined));
        return next;
      });

      /**
       * Sends the user's stored messages to `connection` in order and removes the ones sent. Messages
       * not sent, because the connection closed first, stay stored for the next login.
       */
      async function deliverBacklog(user: string, connection: Connection): Promise<void> {
        const keys = backlog.get(user);
        if (!writer || !keys || keys.length === 0) {
          return;
        }
        backlog.delete(user);
        const expectedKeys = new Set(keys);
        const entries = (await writer.scan(`${PREFIX}${user}/`)).filter((entry) => expectedKeys.has(entry.key));

        const sent: string[] = [];
        let unflushedChars = 0;
        // Sending stops at a connection the registry dropped, and the rest stays stored. The registry
        // drops it in the socket's close event, which can only run while this function waits.
        let live = isLive(user, connection);
        for (const entry of entries) {
          if (!live) {
            break;
          }
          connection.send(JSON.parse(entry.value) as object);
          sent.push(entry.key);
          unflushedChars += entry.value.length;
          if (unflushedChars >= flushEveryChars) {
            // A large backlog written at once would pass limits.maxBufferedBytes and get the client
            // cut off as one that does not read, at every login.
            unflushedChars = 0;
            await flushed(connection);
            live = isLive(user, connection);
          }
        }

        const unsent = entries.slice(sent.length).map((entry) => entry.key);
        if (unsent.length > 0) {
          backlog.set(user, [...unsent, ...(backlog.get(user) ?? [])]);
          log.info({ user, connection: connection.id, messages: unsent.length }, "connection closed before its stored offline messages were sent; keeping them");
        }
        // Keys not found by the scan were removed already. A message sent here that the transport
        // could not hand to the kernel before the close comes back as a new stored message.
        // NOTE: a message sent above and not yet removed when the daemon dies is sent again after
        // the restart, so offline delivery is at-least-once.
        const unsentKeys = new Set(unsent);
        await Promise.all(keys.filter((key) => !unsentKeys.has(key)).map((key) => writer!.delete(key)));
        if (sent.length > 0) {
          log.info({ user, messages: sent.length }, "delivered stored offline messages");
        }
      }

      /** Resolves once everything sent to `connection` left the process, or the connection closed. */
      function flushed(connection: Connection): Promise<void> {
        return new Promise((resolve) => (connection.onFlushed ? connection.onFlushed(() => resolve()) : resolve()));
      }

      /** Checks that `connection` is still one of the user's live connections, which the registry drops at close. */
      function isLive(user: string, connection: Connection): boolean {
        return bester.sessions.connectionsOf(user).some((live) => live.id === connection.id);
      }

      /** Checks whether `message` is the notification of, or an output of, a job `user` submitted on this server. */
      function isAboutOwnJob(user: string, message: object): boolean {
        const reply = (message as { reply?: unknown }).reply;
        if (reply === "jobNotification") {
          return true;
        }
        const outputId = (message as { job?: { jobID?: unknown } }).job?.jobID;
        if (reply !== "jobOutput" || typeof outputId !== "string") {
          return false;
        }
        const parsed = parseOutputId(outputId);
        return parsed !== undefined && parsed.user === user && parsed.server === bester.serverName;
      }

      /**
       * Returns `keys` without the oldest bounded messages beyond maxMessages, whose stored copies
       * are deleted. Messages about the user's own jobs stay, and do not count against the bound.
       */
      function dropOverBound(user: string, keys: string[], journal: GroupCommitWriter): string[] {
        const bounded = keys.filter((key) => !key.endsWith(KEPT_MARK));
        if (bounded.length <= maxMessages) {
          return keys;
        }
        const oldest = new Set(bounded.slice(0, bounded.length - maxMessages));
        for (const old of oldest) {
          void journal.delete(old).catch(() => undefined);
        }
        warnDropped(user, oldest.size);
        return keys.filter((key) => !oldest.has(key));
      }

      /** Logs drops once per 100 per user, so a flood of messages does not flood the log. */
      function warnDropped(user: string, count: number): void {
        const total = (dropped.get(user) ?? 0) + count;
        dropped.set(user, total);
        if (total === count || Math.floor(total / 100) !== Math.floor((total - count) / 100)) {
          log.warn({ user, dropped: total, maxMessages }, "offline backlog full; dropped the oldest stored messages (offline.maxMessages)");
        }
      }
    },
  };
}
