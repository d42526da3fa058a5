// Decides whether `bester outbox drop` may delete a peer's stored messages. A running server keeps
// the messages of each peer it links to in memory, sends them and writes their sequence numbers
// back, so deleting them from the store would neither stop them nor stay deleted. The guard takes
// the claim that a server's job journal takes on its store at start:
// - When it gets the claim, no server runs, so any peer's messages may go, and a server started
//   before the claim is released stops with storeInUse.
// - When a running server has the claim, the drop is rejected with outboxInUse if the peer is in
//   the config's federation.peers or in the record of the peers that server links to. The record
//   covers a config file edited since the server started.
//
// NOTE: a server run with the journal left out (omitBuiltins) takes no claim, so the guard does not
// see it. A record left by a killed server is taken for the running server's, which may reject a
// drop that would be safe.

import type Keyv from "keyv";
import type { ResolvedConfig } from "../config/types.js";
import { BesterError } from "../errors.js";

/** The configured store's outbox namespace, open for one command. */
export interface OpenOutboxStore {
  config: ResolvedConfig;
  outboxes: Keyv<unknown>;
  /** The store's location for messages, without credentials. */
  description: string;
}

/** Returns the peer names in the config's federation.peers. */
export function configuredPeers(config: ResolvedConfig): Set<string> {
  return new Set((config.federation?.peers ?? []).map((peer) => peer.name));
}

/**
 * Throws outboxInUse when a running server may link to `peer`. Otherwise returns the function
 * that ends the hold: it releases the store's claim, or does nothing when a server that does not
 * link to `peer` runs.
 */
export async function holdOutboxForDrop(store: OpenOutboxStore, peer: string): Promise<() => Promise<void>> {
  const { createJournalBackend } = await import("../../plugins/journal/durable-log.js");
  // Opened with its claim, the journal does what it does at a server's start: it creates its table
  // when missing and removes value files that no entry refers to, which the claim makes safe.
  const journal = createJournalBackend(store.config.store, undefined, { claim: true });
  try {
    await journal.open();
  } catch (error) {
    await journal.close().catch(() => undefined);
    if (error instanceof BesterError && error.code === "storeInUse") {
      await rejectIfLinked(store, peer);
      return async () => undefined;
    }
    if (error instanceof BesterError) {
      throw error;
    }
    throw new BesterError("storeFailed", `Claiming the store ${store.description} for the drop failed: ${(error as Error).message}. Check that the path or URL in "store" is right and writable.`, { cause: error });
  }
  return () => journal.close();
}

/** Throws outboxInUse when the running server's record or the config file lists `peer`. */
async function rejectIfLinked({ config, outboxes, description }: OpenOutboxStore, peer: string): Promise<void> {
  const { readLinkedPeers } = await import("../../plugins/federation/stored-outboxes.js");
  const reason = "It keeps the peer's messages in memory and sends them, so deleting them from the store would not stop them.";
  const remedy = `Remove ${peer} from federation.peers and restart the server, or stop the server, then run this command again.`;

  const record = await readLinkedPeers(outboxes);
  if (record?.peers.includes(peer)) {
    const server = `process ${record.pid} on ${record.host}, started ${new Date(record.startedAt).toISOString()}`;
    throw new BesterError("outboxInUse", `A running server on ${description} (${server}) links to peer ${peer}. ${reason} ${remedy}`);
  }
  if (configuredPeers(config).has(peer)) {
    throw new BesterError("outboxInUse", `A server runs on ${description}, and ${peer} is in federation.peers of ${config.file ?? "the config"}, so that server may link to it. ${reason} ${remedy}`);
  }
}
