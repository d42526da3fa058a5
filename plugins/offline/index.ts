// Offline delivery: outputs, notifications and progress for a user with no live connection are
// stored and sent, in order, to the next connection that authenticates as that user. Each user's
// stored outputs from other users' jobs and progress reports are bounded, and on overflow the oldest
// is dropped with a warning. Notifications and outputs of the user's own jobs are always kept.
// Each stored message keeps the creation time of the recipient's account, so an account removed
// and created again under the same name does not receive the messages of the removed one.

import type { Bester } from "../../core/bester.js";
import { createJobId, parseOutputId } from "../../core/jobs/job.js";
import { logRequestFailure } from "../../core/log.js";
import type { BesterPlugin } from "../../core/plugin.js";
import type { Connection } from "../../core/sessions.js";
import { openDurableLog } from "../journal/durable-log.js";
import type { GroupCommitWriter } from "../journal/group-commit.js";
import { offlineHooksOf } from "./offline-hooks.js";
import { decodeStoredMessage, encodeStoredMessage, isForAccount } from "./stored-message.js";

export { offlineHooksOf, type OfflineHooks } from "./offline-hooks.js";

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
      const hooks = offlineHooksOf(bester);
      let writer: GroupCommitWriter | undefined;
      /** Stored message keys per user, oldest first; keys sort by creation time. */
      const backlog = new Map<string, string[]>();
      /** Per-user delivery chain, so two sessions starting together do not both send the backlog. */
      const deliveries = new Map<string, Promise<void>>();
      const dropped = new Map<string, number>();
      /**
       * The account that the last read for each user with stored messages returned. A new message is
       * stored with it at once, and stored again only when the read after it returns another.
       */
      const lastAccount = new Map<string, number | null>();
      /** Running reads of each user's account, which the delivery at the user's next login waits for. */
      const binding = new Map<string, Set<Promise<void>>>();
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
        // The account is read after the put for that reason, and the message stored again if needed.
        const ownJob = isAboutOwnJob(user, message);
        const key = `${PREFIX}${user}/${createJobId()}${ownJob ? KEPT_MARK : ""}`;
        const keys = backlog.get(user) ?? [];
        keys.push(key);
        const messageJson = JSON.stringify(message);
        const account = lastAccount.get(user);
        const stored = journal.put(key, encodeStoredMessage(messageJson, account));
        backlog.set(user, ownJob ? keys : dropOverBound(user, keys, journal));
        const bound = trackBinding(user, bindToAccount(user, key, messageJson, account, journal));
        await stored;
        await bound;
        return true;
      });

      bester.hooks.onSessionStart.tapPromise(PLUGIN_NAME, (user, connection) => {
        const previous = deliveries.get(user) ?? Promise.resolve();
        const next = previous.then(() => deliverBacklog(user, connection));
        deliveries.set(user, next.catch(() => undefined));
        return next;
      });

      /**
       * Reads the account that `user` names now and stores the message under `key` again with it,
       * unless it was stored with that account already. When the read fails, the message keeps the
       * account it was stored with (the last one read for the user, or none), and the log has the error.
       */
      async function bindToAccount(user: string, key: string, messageJson: string, storedAccount: number | null | undefined, journal: GroupCommitWriter): Promise<void> {
        let account: number | null | undefined;
        try {
          account = await hooks.accountCreatedAt.promise(user);
        } catch (error) {
          logRequestFailure(log, error, { user }, "reading the account of an offline message's recipient failed, so the message keeps the account last read for the user, or none");
          return;
        }
        // Undefined: no plugin binds this user to an account, so the user name alone decides.
        // NOTE: a job of a removed account that ends once a new account has the name stores its
        // output and notification for the new account, because the job records no account.
        if (account === undefined || account === storedAccount) {
          return;
        }
        // Only while the key is still in the backlog: a delivered or dropped message must stay deleted.
        if (!backlog.get(user)?.includes(key)) {
          return;
        }
        lastAccount.set(user, account);
        try {
          await journal.put(key, encodeStoredMessage(messageJson, account));
        } catch (error) {
          logRequestFailure(log, error, { user }, "storing an offline message again with its account failed, so it keeps the account it was stored with, or none");
        }
      }

      /** Adds `bound` to the user's running account reads until it settles, and returns it. */
      function trackBinding(user: string, bound: Promise<void>): Promise<void> {
        const running = binding.get(user) ?? new Set();
        binding.set(user, running);
        running.add(bound);
        const settled = () => {
          running.delete(bound);
          if (running.size === 0 && binding.get(user) === running) {
            binding.delete(user);
          }
        };
        // Both ways, so no derived promise can reject unhandled; the caller awaits `bound` itself.
        bound.then(settled, settled);
        return bound;
      }

      /** Resolves once no account read of the user's stored messages is running. */
      async function bindingSettled(user: string): Promise<void> {
        for (let running = binding.get(user); running !== undefined; running = binding.get(user)) {
          await Promise.all(running);
        }
      }

      /**
       * Sends the user's stored messages to `connection` in order and removes the ones sent. Messages
       * not sent, because the connection closed first, stay stored for the next login. Messages
       * stored for another account of the same name, one that was removed, are deleted unsent.
       */
      async function deliverBacklog(user: string, connection: Connection): Promise<void> {
        // Before the backlog is read, so every message has the account read after it was stored.
        await bindingSettled(user);
        const keys = backlog.get(user);
        if (!writer || !keys || keys.length === 0) {
          return;
        }
        backlog.delete(user);
        lastAccount.delete(user);
        const expectedKeys = new Set(keys);
        const scanned = (await writer.scan(`${PREFIX}${user}/`)).filter((entry) => expectedKeys.has(entry.key));
        const loginAccount = hooks.connectionAccountCreatedAt.call(connection);
        const entries: Array<{ key: string; message: object; chars: number }> = [];
        let foreign = 0;
        for (const entry of scanned) {
          const stored = decodeStoredMessage(entry.value);
          if (isForAccount(stored, idOf(user, entry.key), loginAccount)) {
            entries.push({ key: entry.key, message: stored.message, chars: entry.value.length });
          } else {
            foreign += 1;
          }
        }
        if (foreign > 0) {
          log.info({ user, connection: connection.id, messages: foreign }, "deleting stored offline messages that belong to a removed account of the same name, unsent");
        }

        const sent: string[] = [];
        let unflushedChars = 0;
        // Sending stops at a connection the registry dropped, and the rest stays stored. The registry
        // drops it in the socket's close event, which can only run while this function waits.
        let live = isLive(user, connection);
        for (const entry of entries) {
          if (!live) {
            break;
          }
          connection.send(entry.message);
          sent.push(entry.key);
          unflushedChars += entry.chars;
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

      /** Returns the id part of a stored message's key, which createJobId made when the message was stored. */
      function idOf(user: string, key: string): string {
        return key.slice(`${PREFIX}${user}/`.length);
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
