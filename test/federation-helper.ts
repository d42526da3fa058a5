// Helpers for federation tests: plan servers with known ports and keys so each one's config can
// name the others, and speak the peer handshake from a raw test client with a known key.

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { BesterConfig } from "../core/config/types.js";
import { channelBinding, createNonce, transcriptText } from "../plugins/federation/handshake.js";
import { loadOrCreateServerKey, signText, type ServerKey } from "../plugins/federation/keys.js";
import { freePort, RawClient, startServer, type TestServer } from "./helper.js";

export interface PlannedServer {
  /** Server name, `127.0.0.1:<port>`. */
  name: string;
  port: number;
  keyFile: string;
  key: ServerKey;
}

export interface Plan {
  dir: string;
  servers: PlannedServer[];
  cleanup(): Promise<void>;
}

/** Picks a free port and creates a key for each of `count` servers. */
export async function planServers(count: number): Promise<Plan> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "bester-federation-"));
  const servers: PlannedServer[] = [];
  for (let index = 0; index < count; index += 1) {
    const port = await freePort();
    const keyFile = path.join(dir, `server-${index}.key`);
    servers.push({ name: `127.0.0.1:${port}`, port, keyFile, key: await loadOrCreateServerKey(keyFile) });
  }
  return { dir, servers, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A config for `self` that lists `peers`, with registration on and fast reconnects. */
export function federatedConfig(self: PlannedServer, peers: PlannedServer[], extra: BesterConfig = {}): BesterConfig {
  return {
    server: { name: self.name },
    listen: { host: "127.0.0.1", port: self.port },
    registration: true,
    ...extra,
    federation: {
      keyFile: self.keyFile,
      peers: peers.map((peer) => ({ name: peer.name, publicKey: peer.key.publicKeyText })),
      reconnect: { minDelayMs: 50, maxDelayMs: 400 },
      ...extra.federation,
    },
  };
}

export function startPlanned(self: PlannedServer, peers: PlannedServer[], extra: BesterConfig = {}): Promise<TestServer> {
  return startServer(federatedConfig(self, peers, extra));
}

/**
 * The servers a test has running, so it can stop and start them again and its after hook stops
 * whichever still run.
 */
export class RunningServers {
  private readonly servers = new Set<TestServer>();

  async start(self: PlannedServer, peers: PlannedServer[], extra: BesterConfig = {}): Promise<TestServer> {
    const server = await startPlanned(self, peers, extra);
    this.servers.add(server);
    return server;
  }

  async stop(server: TestServer): Promise<void> {
    this.servers.delete(server);
    await server.stop();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.servers].map((server) => this.stop(server)));
  }
}

/** Resolves once `server` logged an outgoing link to `peer` as up. */
export async function waitForLinkUp(server: TestServer, peer: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!server.logs.some((line) => line.msg === "peer link up" && line.peer === peer)) {
    if (Date.now() > deadline) {
      throw new Error(`No link from ${server.bester.serverName} to ${peer} came up within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The frames a raw peer sent during its handshake, for replay tests. */
export interface RecordedHandshake {
  hello: Record<string, unknown>;
  auth: Record<string, unknown>;
}

/**
 * Runs the initiator side of the handshake on a raw client as server `name` with `key`, and
 * returns the server's final reply together with the frames sent.
 */
export async function peerHandshake(client: RawClient, name: string, key: ServerKey, target: string): Promise<{ reply: Record<string, unknown>; recorded: RecordedHandshake }> {
  const nonce = createNonce();
  const hello = { request: "peerHello", peerHello: { version: 1, from: name, to: target, nonce } };
  const challenge = await client.request(hello);
  if (challenge.reply !== "peerHello") {
    return { reply: challenge, recorded: { hello, auth: {} } };
  }

  const peerHello = challenge.peerHello as { nonce: string };
  const transcript = { initiator: name, responder: target, initiatorNonce: nonce, responderNonce: peerHello.nonce, channel: channelBinding(undefined) };
  const auth = { request: "peerAuth", peerAuth: { signature: signText(key.privateKey, transcriptText(transcript, "initiator")) } };
  const reply = await client.request(auth);
  return { reply, recorded: { hello, auth } };
}
