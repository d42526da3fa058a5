// `bester outbox list|drop`: list the federation messages stored for each peer, and delete those of
// one peer, such as a peer removed from federation.peers whose messages would otherwise stay in the
// store. Like `bester user`, they open the configured store directly, so they work whether or not
// the server runs. A running server keeps the messages of the peers it links to in memory, so a
// drop of such a peer is rejected (see outbox-drop-guard.ts).

import type { Command } from "commander";
import type { ResolvedConfig } from "../config/types.js";
import { BesterError } from "../errors.js";
import type { StoredOutbox } from "../../plugins/federation/stored-outboxes.js";
import { BesterClientError } from "../../plugins/transport-tcp/client-error.js";
import { confirm } from "./confirm-prompt.js";
import { configuredPeers, holdOutboxForDrop, type OpenOutboxStore } from "./outbox-drop-guard.js";
import { formatDuration, formatTable } from "./table.js";

interface OutboxOptions {
  config?: string;
}

/** One row of `bester outbox list --json`. */
interface OutboxRow {
  peer: string;
  messages: number;
  /** ISO 8601 time of the oldest message, or null when there is none or its time is unknown. */
  oldestStoredAt: string | null;
  oldestAgeSeconds: number | null;
  /** Messages stored before entries carried a store time. */
  undatedMessages: number;
  configured: boolean;
}

export function registerOutboxCommands(program: Command): void {
  const outbox = program.command("outbox").description("List or drop the messages stored for federation peers in the configured store.");

  outbox
    .command("list", { isDefault: true })
    .description("List each peer that has stored messages, and each peer in federation.peers: message count, age of the oldest message, and whether federation.peers lists it. The default of bester outbox.")
    .option("-c, --config <file>", "config file whose store and federation.peers to use")
    .option("--json", "print a JSON array instead of a table")
    .action(async (options: OutboxOptions & { json?: boolean }) => {
      const rows = await withOutboxStore(options, async ({ config, outboxes }) => {
        const { listStoredOutboxes } = await import("../../plugins/federation/stored-outboxes.js");
        return outboxRows(await listStoredOutboxes(outboxes), config, Date.now());
      });
      process.stdout.write(options.json ? `${JSON.stringify(rows, null, 2)}\n` : formatOutboxTable(rows));
    });

  outbox
    .command("drop <peer>")
    .description("Delete every stored message for one peer (host:port), so none of them is sent. Rejected while a running server on the store links to that peer.")
    .option("-c, --config <file>", "config file whose store and federation.peers to use")
    .option("-y, --yes", "drop without asking; required when stdin is not a terminal")
    .action(async (peer: string, options: OutboxOptions & { yes?: boolean }) => {
      const { parseServerAddress } = await import("../../plugins/federation/peers.js");
      if (!parseServerAddress(peer)) {
        throw new BesterClientError("invalidArgument", `"${peer}" is not a host:port peer name. Give the name as \`bester outbox\` lists it.`);
      }
      await withOutboxStore(options, (store) => dropOutbox(store, peer, options.yes === true));
    });
}

/** Deletes the stored messages of `peer` once the guard allows it and, without --yes, the operator confirmed. */
async function dropOutbox(store: OpenOutboxStore, peer: string, confirmed: boolean): Promise<void> {
  const { deleteStoredOutbox, listStoredOutboxes } = await import("../../plugins/federation/stored-outboxes.js");
  const { config, outboxes, description } = store;

  const stored = (await listStoredOutboxes(outboxes)).find((outbox) => outbox.peer === peer);
  if (!stored) {
    const memory = config.store === "memory" ? " The memory store keeps a server's outbox only inside that server's process." : "";
    throw new BesterError("outboxEmpty", `No messages are stored for peer ${peer} in ${description}. Run \`bester outbox\` to list the peers that have some.${memory}`);
  }

  if (!confirmed) {
    // Checked before the prompt too, so a drop that would be rejected fails before the prompt. The
    // claim is released during the prompt, so a server may start meanwhile, and is taken again below.
    const releaseCheck = await holdOutboxForDrop(store, peer);
    await releaseCheck();
    if (!process.stdin.isTTY) {
      throw new BesterClientError("invalidArgument", "Dropping stored messages needs a confirmation. Pass --yes, or run the command in a terminal to answer its prompt.");
    }
    const age = describeOldest(stored, Date.now());
    if (!(await confirm(`Drop ${countMessages(stored.messages)} for peer ${peer} (${age}) from ${description}? They are deleted without being sent. [y/N] `))) {
      process.stderr.write("nothing dropped\n");
      return;
    }
  }

  const release = await holdOutboxForDrop(store, peer);
  let dropped: number;
  try {
    dropped = await deleteStoredOutbox(outboxes, peer);
  } finally {
    await release();
  }
  process.stderr.write(`dropped ${countMessages(dropped)} for peer ${peer} from ${description}\n`);
  if (configuredPeers(config).has(peer)) {
    process.stderr.write(`${peer} is still in federation.peers of ${config.file ?? "the config"}, so the next server start links to it and stores new messages for it\n`);
  }
}

/** Runs `action` on the outbox namespace of the configured store, then closes the store. */
async function withOutboxStore<T>(options: OutboxOptions, action: (store: OpenOutboxStore) => Promise<T>): Promise<T> {
  // Loaded here, not at the top, so other commands do not pay for the config loader and store drivers.
  const { loadConfig } = await import("../config/loader.js");
  const config = await loadConfig({ file: options.config });
  const [{ OUTBOX_NAMESPACE }, { createStoreProvider, openStore }] = await Promise.all([
    import("../../plugins/federation/outbox.js"),
    import("../../plugins/store/index.js"),
  ]);
  const provider = createStoreProvider(config.store);
  await openStore(provider);
  try {
    if (!provider.durable) {
      process.stderr.write("the store is memory: a server keeps its outbox only inside its own process, so this command sees none of it\n");
    }
    return await action({ config, outboxes: provider.namespace(OUTBOX_NAMESPACE), description: provider.description });
  } finally {
    await provider.close();
  }
}

/** Joins the stored outboxes with the configured peers, which get a row even with no messages. */
function outboxRows(stored: StoredOutbox[], config: ResolvedConfig, now: number): OutboxRow[] {
  const configured = configuredPeers(config);
  const byPeer = new Map(stored.map((outbox) => [outbox.peer, outbox]));
  const peers = [...new Set([...byPeer.keys(), ...configured])].sort((a, b) => a.localeCompare(b));

  return peers.map((peer) => {
    const outbox = byPeer.get(peer);
    const oldest = outbox && outbox.undatedMessages === 0 ? outbox.oldestStoredAt : undefined;
    return {
      peer,
      messages: outbox?.messages ?? 0,
      oldestStoredAt: oldest === undefined ? null : new Date(oldest).toISOString(),
      oldestAgeSeconds: oldest === undefined ? null : ageSeconds(oldest, now),
      undatedMessages: outbox?.undatedMessages ?? 0,
      configured: configured.has(peer),
    };
  });
}

function formatOutboxTable(rows: OutboxRow[]): string {
  return formatTable(
    ["peer", "messages", "oldest", "configured"],
    rows.map((row) => [row.peer, row.messages, oldestCell(row), row.configured ? "yes" : "no"]),
  );
}

/** Formats the age of the oldest message: "unknown" when some message has no store time, "-" for none. */
function oldestCell(row: OutboxRow): string {
  if (row.undatedMessages > 0) {
    return "unknown";
  }
  return row.oldestAgeSeconds === null ? "-" : formatDuration(row.oldestAgeSeconds);
}

function describeOldest(outbox: StoredOutbox, now: number): string {
  if (outbox.undatedMessages > 0 || outbox.oldestStoredAt === undefined) {
    return "age of the oldest unknown";
  }
  return `oldest stored ${formatDuration(ageSeconds(outbox.oldestStoredAt, now))} ago`;
}

/** Whole seconds from `storedAt` to `now`, and 0 for a time ahead of this machine's clock. */
function ageSeconds(storedAt: number, now: number): number {
  return Math.max(0, Math.floor((now - storedAt) / 1000));
}

function countMessages(count: number): string {
  return count === 1 ? "1 message" : `${count} messages`;
}
