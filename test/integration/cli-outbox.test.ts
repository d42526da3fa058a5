import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import type Keyv from "keyv";
import { loadOrCreateServerKey } from "../../plugins/federation/keys.js";
import { Outbox, OUTBOX_NAMESPACE, type OutboxEntry } from "../../plugins/federation/outbox.js";
import { LINKED_PEERS_KEY } from "../../plugins/federation/stored-outboxes.js";
import { createStoreProvider, openStore } from "../../plugins/store/index.js";
import { CLI_ENTRY, runCli, type CliResult } from "../cli-runner.js";
import { startDaemon, stopDaemon, type DaemonProcess } from "../daemon-process.js";
import { freePort, REPO_ROOT } from "../helper.js";
import { startRedis, type RedisServer } from "../redis-server.js";

const CONFIGURED = "127.0.0.1:1001";
const REMOVED = "127.0.0.1:1002";
const UNDATED = "127.0.0.1:1003";
const IDLE = "127.0.0.1:1004";
/** Two days and thirty minutes, in milliseconds. */
const OLD_AGE_MS = (2 * 86_400 + 30 * 60) * 1000;

/** Opens `store` and runs `action` on its outbox namespace. */
async function withOutboxes<T>(store: string, action: (outboxes: Keyv<unknown>) => Promise<T>): Promise<T> {
  const provider = createStoreProvider(store);
  await openStore(provider);
  try {
    return await action(provider.namespace(OUTBOX_NAMESPACE));
  } finally {
    await provider.close();
  }
}

/**
 * Stores `count` messages for `peer` as a server does. `storedAt` replaces the store time of the
 * first one, and null removes it, as in entries written before they carried one.
 */
async function seed(store: string, peer: string, count: number, storedAt?: number | null): Promise<void> {
  await withOutboxes(store, async (outboxes) => {
    const outbox = new Outbox(outboxes, peer);
    await outbox.load();
    const entries: OutboxEntry[] = [];
    for (let n = 0; n < count; n += 1) {
      entries.push(await outbox.append({ request: "jobOutputDelivery", n }));
    }
    if (storedAt !== undefined) {
      const first = { ...entries[0]!, storedAt: storedAt ?? undefined };
      await outboxes.set(`${peer}#${String(first.seq).padStart(12, "0")}`, first);
    }
  });
}

/** Returns the keys of the outbox namespace that belong to `peer`, sorted. */
async function keysOf(store: string, peer: string): Promise<string[]> {
  return withOutboxes(store, async (outboxes) => {
    const keys: string[] = [];
    for await (const [key] of outboxes.iterator!(undefined)) {
      if (String(key).startsWith(`${peer}#`)) {
        keys.push(String(key));
      }
    }
    return keys.sort();
  });
}

/** Writes a config that uses `store` and lists `peers` in federation.peers. */
async function writeConfig(folder: string, store: string, peers: string[]): Promise<string> {
  const key = await loadOrCreateServerKey(path.join(folder, "peer.key"));
  const port = await freePort();
  const file = path.join(folder, "bester.config.json");
  const config = {
    server: { name: `127.0.0.1:${port}` },
    listen: { host: "127.0.0.1", port },
    store,
    dataDir: path.join(folder, "data"),
    federation: {
      keyFile: path.join(folder, "data", "server.key"),
      peers: peers.map((name) => ({ name, publicKey: key.publicKeyText })),
      reconnect: { minDelayMs: 1000, maxDelayMs: 5000 },
    },
  };
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}

/** Runs `bester ARGS` on a pseudo-terminal made by script(1), typing `input` into it. */
function runInTerminal(args: string[], input: string): Promise<CliResult> {
  const command = [process.execPath, "--import", "tsx", CLI_ENTRY, ...args].join(" ");
  const child = spawn("script", ["-qec", command, "/dev/null"], { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("CLI outbox commands", () => {
  let folder: string;
  let store: string;
  let config: string;
  let oldStoredAt: number;

  beforeEach(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-cli-outbox-"));
    store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    config = await writeConfig(folder, store, [CONFIGURED, IDLE]);
    await seed(store, CONFIGURED, 2);
    // Set per test, because the full suite loads this file minutes before it reaches these tests.
    oldStoredAt = Date.now() - OLD_AGE_MS;
    await seed(store, REMOVED, 3, oldStoredAt);
    await seed(store, UNDATED, 1, null);
  });

  afterEach(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("lists peers with counts and ages", async () => {
    const result = await runCli(["outbox", "-c", config]);
    const rows = result.stdout.trimEnd().split("\n").map((line) => line.split(/\s{2,}/));

    expect(result.code).to.equal(0);
    expect(rows[0]).to.deep.equal(["peer", "messages", "oldest", "configured"]);
    expect(rows.map((row) => row[0])).to.deep.equal(["peer", CONFIGURED, REMOVED, UNDATED, IDLE]);
    expect(rows.map((row) => row[1])).to.deep.equal(["messages", "2", "3", "1", "0"]);
    expect(rows[1]![2]).to.match(/^\d+s$/);
    expect(rows[2]![2]).to.match(/^2d 0h 30m \d\ds$/);
    expect(rows[3]![2]).to.equal("unknown");
    expect(rows[4]![2]).to.equal("-");
    expect(rows.map((row) => row[3])).to.deep.equal(["configured", "yes", "no", "no", "yes"]);
  });

  it("lists peers as JSON", async () => {
    const result = await runCli(["outbox", "list", "--json", "-c", config]);
    const rows = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
    const removed = rows.find((row) => row.peer === REMOVED)!;

    expect(result.code).to.equal(0);
    expect(rows.map((row) => row.peer)).to.deep.equal([CONFIGURED, REMOVED, UNDATED, IDLE]);
    expect(removed.messages).to.equal(3);
    expect(removed.oldestStoredAt).to.equal(new Date(oldStoredAt).toISOString());
    expect(removed.oldestAgeSeconds).to.be.within(2 * 86_400 + 30 * 60, 2 * 86_400 + 31 * 60);
    expect(removed.undatedMessages).to.equal(0);
    expect(removed.configured).to.equal(false);
    expect(rows.find((row) => row.peer === UNDATED)).to.deep.equal({ peer: UNDATED, messages: 1, oldestStoredAt: null, oldestAgeSeconds: null, undatedMessages: 1, configured: false });
    expect(rows.find((row) => row.peer === IDLE)).to.deep.equal({ peer: IDLE, messages: 0, oldestStoredAt: null, oldestAgeSeconds: null, undatedMessages: 0, configured: true });
  });

  it("drops one peer's messages with --yes", async () => {
    const result = await runCli(["outbox", "drop", REMOVED, "--yes", "-c", config]);

    expect(result.code).to.equal(0);
    expect(result.stderr).to.equal(`dropped 3 messages for peer ${REMOVED} from ${store}\n`);
    expect(await keysOf(store, REMOVED)).to.deep.equal([]);
    expect(await keysOf(store, CONFIGURED)).to.have.length(3);
    expect(await keysOf(store, UNDATED)).to.have.length(2);
  });

  it("drop needs --yes without a terminal", async () => {
    const result = await runCli(["outbox", "drop", REMOVED, "-c", config]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.equal("bester: Dropping stored messages needs a confirmation. Pass --yes, or run the command in a terminal to answer its prompt. [invalidArgument]\n");
    expect(await keysOf(store, REMOVED)).to.have.length(4);
  });

  it("drop of an empty outbox exits 1", async () => {
    const result = await runCli(["outbox", "drop", IDLE, "--yes", "-c", config]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.equal(`bester: No messages are stored for peer ${IDLE} in ${store}. Run \`bester outbox\` to list the peers that have some. [outboxEmpty]\n`);
  });

  it("drop rejects a name without a port", async () => {
    const result = await runCli(["outbox", "drop", "127.0.0.1", "--yes", "-c", config]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include('"127.0.0.1" is not a host:port peer name');
    expect(result.stderr).to.match(/\[invalidArgument\]\n$/);
  });

  it("drops a configured peer while stopped", async () => {
    const result = await runCli(["outbox", "drop", CONFIGURED, "--yes", "-c", config]);

    expect(result.code).to.equal(0);
    expect(result.stderr).to.include(`dropped 2 messages for peer ${CONFIGURED}`);
    expect(result.stderr).to.include(`${CONFIGURED} is still in federation.peers of ${config}, so the next server start links to it`);
    expect(await keysOf(store, CONFIGURED)).to.deep.equal([]);
  });

  it("drop asks on a terminal", async () => {
    const declined = await runInTerminal(["outbox", "drop", REMOVED, "-c", config], "n\n");
    const keysAfterDecline = await keysOf(store, REMOVED);
    const accepted = await runInTerminal(["outbox", "drop", REMOVED, "-c", config], "y\n");

    expect(declined.code).to.equal(0);
    expect(declined.stdout).to.match(/Drop 3 messages for peer 127\.0\.0\.1:1002 \(oldest stored 2d 0h 30m \d\ds ago\) from sqlite:\/\/.*\? They are deleted without being sent\. \[y\/N\]/);
    expect(declined.stdout).to.include("nothing dropped");
    expect(keysAfterDecline).to.have.length(4);
    expect(accepted.code).to.equal(0);
    expect(accepted.stdout).to.include(`dropped 3 messages for peer ${REMOVED}`);
    expect(await keysOf(store, REMOVED)).to.deep.equal([]);
  });

  it("drop declines on Ctrl-D", async () => {
    const result = await runInTerminal(["outbox", "drop", REMOVED, "-c", config], "\u0004");

    expect(result.code).to.equal(0);
    expect(result.stdout).to.include("nothing dropped");
    expect(await keysOf(store, REMOVED)).to.have.length(4);
  });
});

describe("CLI outbox drop next to a running server", function () {
  this.timeout(60_000);

  let folder: string;
  let daemon: DaemonProcess | undefined;
  let redis: RedisServer | undefined;

  beforeEach(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-cli-outbox-"));
  });

  afterEach(async () => {
    if (daemon) {
      await stopDaemon(daemon, "SIGTERM");
      daemon = undefined;
    }
    await redis?.stop();
    redis = undefined;
    await rm(folder, { recursive: true, force: true });
  });

  /** Runs the checks against a server on `store`, which links to CONFIGURED. */
  async function dropNextToServer(store: string): Promise<void> {
    const config = await writeConfig(folder, store, [CONFIGURED]);
    await seed(store, CONFIGURED, 2);
    await seed(store, REMOVED, 3);
    daemon = await startDaemon(config);
    const pid = daemon.child.pid!;

    // The server links to CONFIGURED and keeps its messages in memory.
    const linked = await runCli(["outbox", "drop", CONFIGURED, "--yes", "-c", config]);
    expect(linked.code).to.equal(1);
    expect(linked.stderr).to.include(`A running server on ${store} (process ${pid} on ${os.hostname()}, started `);
    expect(linked.stderr).to.include(`links to peer ${CONFIGURED}. It keeps the peer's messages in memory and sends them`);
    expect(linked.stderr).to.match(/\[outboxInUse\]\n$/);
    expect(await keysOf(store, CONFIGURED)).to.have.length(3);
    // Without --yes and a terminal the rejection still comes first, so the operator does not add --yes in vain.
    const unconfirmed = await runCli(["outbox", "drop", CONFIGURED, "-c", config]);
    expect(unconfirmed.stderr).to.match(/\[outboxInUse\]\n$/);

    // It does not link to REMOVED, so those messages may go while it runs.
    const removed = await runCli(["outbox", "drop", REMOVED, "--yes", "-c", config]);
    expect(removed.code).to.equal(0);
    expect(removed.stderr).to.include(`dropped 3 messages for peer ${REMOVED}`);
    expect(await keysOf(store, REMOVED)).to.deep.equal([]);

    // Taking CONFIGURED out of the config file does not change what the running server links to.
    await writeConfig(folder, store, []);
    const edited = await runCli(["outbox", "drop", CONFIGURED, "--yes", "-c", config]);
    expect(edited.code).to.equal(1);
    expect(edited.stderr).to.match(/\[outboxInUse\]\n$/);

    // A stopped server removed its record, so the drop goes ahead.
    expect(await stopDaemon(daemon, "SIGTERM")).to.equal(0);
    daemon = undefined;
    expect(await withOutboxes(store, (outboxes) => outboxes.get(LINKED_PEERS_KEY))).to.equal(undefined);
    const stopped = await runCli(["outbox", "drop", CONFIGURED, "--yes", "-c", config]);
    expect(stopped.code).to.equal(0);
    expect(stopped.stderr).to.include(`dropped 2 messages for peer ${CONFIGURED}`);
    expect(await keysOf(store, CONFIGURED)).to.deep.equal([]);
  }

  it("SQLite store guards linked peers", async () => {
    await dropNextToServer(`sqlite://${path.join(folder, "bester.sqlite")}`);
  });

  it("Redis store guards linked peers", async () => {
    redis = await startRedis();
    await dropNextToServer(`${redis.url}/1`);
  });

  it("rejects a peer the config file lists", async () => {
    const store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    const config = await writeConfig(folder, store, []);
    await seed(store, CONFIGURED, 1);
    daemon = await startDaemon(config);
    // The server started without CONFIGURED, and the file lists it now, as during a restart.
    await writeConfig(folder, store, [CONFIGURED]);

    const result = await runCli(["outbox", "drop", CONFIGURED, "--yes", "-c", config]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include(`A server runs on ${store}, and ${CONFIGURED} is in federation.peers of ${config}, so that server may link to it.`);
    expect(result.stderr).to.match(/\[outboxInUse\]\n$/);
    expect(await keysOf(store, CONFIGURED)).to.have.length(2);
  });
});
