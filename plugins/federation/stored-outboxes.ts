// The outboxes in the store seen from outside the peer links: the start-up report of peers that are
// no longer configured, and `bester outbox`, which lists and drops them from another process. A
// running server keeps each linked peer's messages in memory as well, so it also records which peers
// it links to, and a drop leaves those peers alone.
//
// NOTE: listing reads the whole outbox namespace with keyv's iterator. @keyv/sqlite pages that
// iterator with LIMIT/OFFSET (100 rows a page, see the store plugin), so the time still grows with
// the square of the number of stored messages. 10 000 messages of 300 bytes took 0.3 s on a 2-vCPU
// test machine.

import os from "node:os";
import type Keyv from "keyv";
import type { Logger } from "pino";
import { BesterError } from "../../core/errors.js";
import { parseOutboxKey, type OutboxEntry } from "./outbox.js";
import type { PeerDirectory } from "./peers.js";

/** The key of the running server's record of linked peers. It has no `#`, so it never parses as a peer's key. */
export const LINKED_PEERS_KEY = "linked-peers";

/** Keys deleted per deleteMany call when a peer's outbox is dropped. */
const DELETE_BATCH = 500;

/** One peer's stored messages. */
export interface StoredOutbox {
  peer: string;
  /** Messages stored for the peer and not yet acknowledged by it. */
  messages: number;
  /** When the oldest dated message was stored, in milliseconds since the epoch. */
  oldestStoredAt: number | undefined;
  /** Messages without a store time, written by a version that did not record one, so older than the dated ones. */
  undatedMessages: number;
}

/** The peers a running server links to, written at its start and deleted at its stop. */
export interface LinkedPeersRecord {
  peers: string[];
  pid: number;
  host: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
}

/**
 * Counts the stored messages per peer for peers not in `configured`, such as a peer removed from
 * the config. They stay in the store and are sent once the peer is configured again. Returns an
 * empty map when the store cannot list its keys.
 */
export async function countUnconfiguredOutboxes(store: Keyv<unknown>, configured: ReadonlySet<string>): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (!store.iterator) {
    return counts;
  }
  for await (const [key] of store.iterator(undefined)) {
    const parsed = parseOutboxKey(String(key));
    if (parsed?.kind === "entry" && !configured.has(parsed.peer)) {
      counts.set(parsed.peer, (counts.get(parsed.peer) ?? 0) + 1);
    }
  }
  return counts;
}

/** Logs one line per peer that is no longer configured but still has messages in the outbox. */
export async function logUnconfiguredOutboxes(store: Keyv<unknown>, directory: PeerDirectory, log: Logger): Promise<void> {
  const configured = new Set(directory.list().map((peer) => peer.name));
  try {
    for (const [peer, pending] of await countUnconfiguredOutboxes(store, configured)) {
      log.warn({ peer, pending }, "peer messages wait in the outbox for a server that is not a configured peer. Add it to federation.peers again to send them, or delete them with `bester outbox drop <peer>`");
    }
  } catch (error) {
    // Only this report is lost: the messages stay stored either way.
    log.warn({ err: error }, "listing the outbox for peers that are not configured failed");
  }
}

/** Lists every peer that has stored messages, sorted by peer name. */
export async function listStoredOutboxes(store: Keyv<unknown>): Promise<StoredOutbox[]> {
  const outboxes = new Map<string, StoredOutbox>();
  for await (const [key, value] of iterate(store)) {
    const parsed = parseOutboxKey(key);
    if (parsed?.kind !== "entry") {
      continue;
    }
    let outbox = outboxes.get(parsed.peer);
    if (!outbox) {
      outbox = { peer: parsed.peer, messages: 0, oldestStoredAt: undefined, undatedMessages: 0 };
      outboxes.set(parsed.peer, outbox);
    }
    outbox.messages += 1;
    const storedAt = (value as OutboxEntry | undefined)?.storedAt;
    if (typeof storedAt !== "number") {
      outbox.undatedMessages += 1;
    } else if (outbox.oldestStoredAt === undefined || storedAt < outbox.oldestStoredAt) {
      outbox.oldestStoredAt = storedAt;
    }
  }
  return [...outboxes.values()].sort((a, b) => a.peer.localeCompare(b.peer));
}

/**
 * Deletes every stored message of `peer` and its sequence numbers, and returns how many messages
 * were deleted. The caller makes sure that no running server links to `peer`, because such a
 * server keeps the messages in memory and writes the sequence numbers back.
 */
export async function deleteStoredOutbox(store: Keyv<unknown>, peer: string): Promise<number> {
  let messages = 0;
  // The SQLite iterator pages with OFFSET, so a running server that deletes other peers' messages
  // between two pages makes a pass skip keys. Passes repeat until one finds none of the peer's keys.
  for (;;) {
    const keys: string[] = [];
    for await (const [key] of iterate(store)) {
      const parsed = parseOutboxKey(key);
      if (parsed?.peer !== peer) {
        continue;
      }
      keys.push(key);
      messages += parsed.kind === "entry" ? 1 : 0;
    }
    if (keys.length === 0) {
      return messages;
    }

    // Collected first and deleted after the pass, because deleting while paging would skip keys too.
    for (let start = 0; start < keys.length; start += DELETE_BATCH) {
      await store.deleteMany(keys.slice(start, start + DELETE_BATCH));
    }
  }
}

/** Records `peers` as the peers this server links to, with this process's id and host. */
export async function recordLinkedPeers(store: Keyv<unknown>, peers: string[]): Promise<void> {
  const record: LinkedPeersRecord = { peers, pid: process.pid, host: os.hostname(), startedAt: Date.now() };
  await store.set(LINKED_PEERS_KEY, record);
}

/**
 * Reads the record of the server that started last on this store. A server that was killed
 * leaves its record behind, so the caller checks first that a server runs.
 */
export async function readLinkedPeers(store: Keyv<unknown>): Promise<LinkedPeersRecord | undefined> {
  const record = (await store.get(LINKED_PEERS_KEY)) as LinkedPeersRecord | undefined;
  return record && Array.isArray(record.peers) ? record : undefined;
}

export async function clearLinkedPeers(store: Keyv<unknown>): Promise<void> {
  await store.delete(LINKED_PEERS_KEY);
}

async function* iterate(store: Keyv<unknown>): AsyncGenerator<[string, unknown]> {
  if (!store.iterator) {
    throw new BesterError("storeFailed", "The store cannot list its keys, so its outboxes cannot be read. Use a sqlite:// or redis:// store.");
  }
  for await (const [key, value] of store.iterator(undefined)) {
    yield [String(key), value];
  }
}
