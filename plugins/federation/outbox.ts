// The store-and-forward outbox of one peer: messages are written to the store before the sender
// hears they were accepted, and removed only once the peer acknowledged them. Sequence numbers keep
// per-peer order across restarts.

import { randomUUID } from "node:crypto";
import type Keyv from "keyv";
import type { OutboxRetry } from "./outbox-retry.js";

export interface OutboxEntry {
  seq: number;
  /** Unique message id; the receiver drops a second copy with the same id. */
  id: string;
  /** The frame to send, with `id` already set. */
  message: Record<string, unknown>;
  /** The job that produced the message, for log lines. It is stored with the entry but never sent. */
  job?: OutboxJob;
  /** When the entry was stored, in milliseconds since the epoch. Entries stored before this field existed lack it. */
  storedAt?: number;
}

/** The ids that tie an outbox entry to the job and user it came from. */
export interface OutboxJob {
  id: string;
  user: string;
}

interface OutboxMeta {
  /** Lowest sequence number that may still be stored. */
  head: number;
  /** Sequence number the next message gets. */
  next: number;
}

/** The keyv namespace that contains every peer's outbox. */
export const OUTBOX_NAMESPACE = "federation-outbox";

/** A stored message's key, `<peer>#<seq>` with a 12-digit sequence number. */
const ENTRY_KEY = /^(.+)#(\d{12})$/;
/** The key of a peer's sequence numbers, `<peer>#meta`. */
const META_KEY = /^(.+)#meta$/;

/** A key of the outbox namespace, split into its peer and its kind. */
export type OutboxKey = { peer: string; kind: "entry"; seq: number } | { peer: string; kind: "meta" };

/** Splits a key of the outbox namespace, as the store's iterator returns it. Returns undefined for any other key. */
export function parseOutboxKey(key: string): OutboxKey | undefined {
  const entry = ENTRY_KEY.exec(key);
  if (entry) {
    return { peer: entry[1]!, kind: "entry", seq: Number(entry[2]) };
  }
  const meta = META_KEY.exec(key);
  return meta ? { peer: meta[1]!, kind: "meta" } : undefined;
}

export class Outbox {
  private entries: OutboxEntry[] = [];
  private meta: OutboxMeta = { head: 0, next: 0 };
  /** Sequence number after the last entry whose write finished. */
  private writtenNext = 0;
  /** Store writes run one after another so entries land in sequence order. */
  private writes: Promise<unknown> = Promise.resolve();

  /** With `retry`, a write that finds the store unreachable is retried. Without it, append() rejects at once. */
  constructor(
    private readonly store: Keyv<unknown>,
    readonly peer: string,
    private readonly retry?: OutboxRetry,
  ) {}

  /** Loads the messages a previous run left unacknowledged. */
  async load(): Promise<number> {
    const meta = (await this.store.get(this.metaKey())) as OutboxMeta | undefined;
    if (meta) {
      this.meta = meta;
    }
    this.writtenNext = this.meta.next;
    const seqs: number[] = [];
    for (let seq = this.meta.head; seq < this.meta.next; seq += 1) {
      seqs.push(seq);
    }
    const stored = seqs.length > 0 ? await this.store.getMany(seqs.map((seq) => this.entryKey(seq))) : [];
    this.entries = stored.filter((entry): entry is OutboxEntry => entry !== undefined && entry !== null);
    return this.entries.length;
  }

  /**
   * Writes a message to the store and resolves once it is durable; the entry is then ready to send.
   * Writes run in call order, so a write that waits for the store holds back the later ones.
   */
  append(message: Record<string, unknown>, id: string = randomUUID(), job?: OutboxJob): Promise<OutboxEntry> {
    const entry: OutboxEntry = { seq: this.meta.next, id, message: { ...message, id }, job, storedAt: Date.now() };
    this.meta.next += 1;
    const meta = { ...this.meta };
    const write = async () => {
      await this.store.set(this.entryKey(entry.seq), entry);
      await this.store.set(this.metaKey(), meta);
    };

    const written = this.writes.then(async () => {
      if (this.retry) {
        await this.retry.run(write, { peer: this.peer, jobId: job?.id, requestedAt: entry.storedAt! });
      } else {
        await write();
      }
      this.entries.push(entry);
      this.writtenNext = entry.seq + 1;
      return entry;
    });
    this.writes = written.catch(() => undefined);
    return written;
  }

  /** Messages not yet acknowledged, oldest first. */
  pending(): readonly OutboxEntry[] {
    return this.entries;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Removes an acknowledged message from memory and the store. */
  remove(id: string): Promise<void> {
    const index = this.entries.findIndex((entry) => entry.id === id);
    if (index === -1) {
      return Promise.resolve();
    }
    const [entry] = this.entries.splice(index, 1);

    const removed = this.writes.then(async () => {
      await this.store.delete(this.entryKey(entry!.seq));
      // Entries still being appended have seq >= writtenNext, so the head never skips one.
      const head = this.entries[0]?.seq ?? this.writtenNext;
      this.meta.head = Math.max(this.meta.head, head);
      await this.store.set(this.metaKey(), { ...this.meta });
    });
    this.writes = removed.catch(() => undefined);
    return removed;
  }

  private entryKey(seq: number): string {
    return `${this.peer}#${String(seq).padStart(12, "0")}`;
  }

  private metaKey(): string {
    return `${this.peer}#meta`;
  }
}
