import { generateKeyPairSync } from "node:crypto";
import { expect } from "chai";
import { createNonce } from "../../plugins/federation/handshake.js";
import { formatPublicKey, type ServerKey } from "../../plugins/federation/keys.js";
import { RawClient, waitUntil, type TestServer } from "../helper.js";
import { planServers, startPlanned, type Plan, type PlannedServer } from "../federation-helper.js";

type LogLine = Record<string, unknown>;

/** Creates a key pair that no planned server uses, to configure a peer with the wrong public key. */
function strayKey(): ServerKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privateKey, publicKey, publicKeyText: formatPublicKey(publicKey), created: true };
}

/** Returns the handshake failures that `server` logged for links that `peer` dialed. */
function incomingFailures(server: TestServer, peer: string): LogLine[] {
  return server.logs.filter((line) => line.msg === "peer handshake failed" && line.peer === peer && line.remote !== undefined);
}

/** Returns the handshake failures that `server` logged for its own links to `peer`. */
function outgoingFailures(server: TestServer, peer: string): LogLine[] {
  return server.logs.filter((line) => line.msg === "peer handshake failed" && line.peer === peer && line.remote === undefined);
}

/** Checks that a reason names servers by name and never as "this server" or "there". */
function expectNamedServers(reason: string): void {
  expect(reason).to.not.match(/this server/i);
  expect(reason).to.not.match(/\bthere\b/);
}

describe("federation handshake failure logs", function () {
  this.timeout(30_000);

  let plan: Plan;
  let planA: PlannedServer;
  let planB: PlannedServer;
  const servers: TestServer[] = [];
  const clients: RawClient[] = [];

  beforeEach(async () => {
    plan = await planServers(2);
    [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) {
      client.close();
    }
    await Promise.all(servers.splice(0).map((server) => server.stop()));
    await plan.cleanup();
  });

  it("rejected reply is logged by the responder at once", async () => {
    // A has a wrong key for B, so A rejects B's reply to every hello that A sends.
    const a = await startPlanned(planA, [{ ...planB, key: strayKey() }]);
    servers.push(a);
    const b = await startPlanned(planB, [planA]);
    servers.push(b);

    // The handshake timeout is 10 s, and the rejection must show well before it.
    await waitUntil(() => incomingFailures(b, planA.name).length > 0, "B logged the failed incoming handshake", 3000);

    const line = incomingFailures(b, planA.name)[0]!;
    expect(line.code).to.equal("peerAuthFailed");
    expect(String(line.reason)).to.include("rejected the handshake");
    expect(String(line.reason)).to.not.include("timeout");
  });

  it("peer closing mid-handshake is logged at once", async () => {
    const b = await startPlanned(planB, [planA]);
    servers.push(b);
    const client = await RawClient.connect(b.port);
    clients.push(client);

    const challenge = await client.request({ request: "peerHello", peerHello: { version: 1, from: planA.name, to: planB.name, nonce: createNonce() } });
    expect(challenge.reply).to.equal("peerHello");
    client.close();

    await waitUntil(() => incomingFailures(b, planA.name).length > 0, "B logged the closed handshake", 3000);
    const line = incomingFailures(b, planA.name)[0]!;
    expect(String(line.reason)).to.include("closed the connection");
  });

  it("key rejection names both servers", async () => {
    const a = await startPlanned(planA, [{ ...planB, key: strayKey() }]);
    servers.push(a);
    const b = await startPlanned(planB, [planA]);
    servers.push(b);

    await waitUntil(() => outgoingFailures(b, planA.name).length > 0 && incomingFailures(b, planA.name).length > 0 && incomingFailures(a, planB.name).length > 0, "both servers logged the failed handshakes", 3000);

    // B dialed A, and A rejected B's proof: both sides log A's message.
    const keyAdvice = `Check the publicKey of ${planB.name} in federation.peers on ${planA.name} against \`bester keys\` on ${planB.name}.`;
    const dialed = String(outgoingFailures(b, planA.name)[0]!.reason);
    expect(dialed).to.include(`${planA.name} rejected the proof of ${planB.name} with peerAuthFailed: "`);
    expect(dialed).to.include(`does not verify with the key configured for it on ${planA.name}.`);
    expect(dialed).to.include(keyAdvice);
    expectNamedServers(dialed);
    const rejected = String(incomingFailures(a, planB.name)[0]!.reason);
    expect(rejected).to.include(keyAdvice);
    expectNamedServers(rejected);

    // A dialed B, and A rejected B's reply: B logs A's message.
    const replied = String(incomingFailures(b, planA.name)[0]!.reason);
    expect(replied).to.include(`${planA.name} rejected the handshake reply of ${planB.name} with peerAuthFailed: "`);
    expect(replied).to.include(`The peerHello signature of ${planB.name} does not verify with the key configured for it on ${planA.name}.`);
    expectNamedServers(replied);
  });

  it("unknown peer names both servers", async () => {
    // B lists no peers, so it rejects the hello of A.
    const a = await startPlanned(planA, [planB]);
    servers.push(a);
    const b = await startPlanned(planB, []);
    servers.push(b);

    await waitUntil(() => outgoingFailures(a, planB.name).length > 0, "A logged the rejected handshake", 3000);

    const reason = String(outgoingFailures(a, planB.name)[0]!.reason);
    expect(reason).to.include(`${planB.name} rejected the handshake with unknownPeer: "`);
    expect(reason).to.include(`Server ${planA.name} is not a configured peer of ${planB.name}. Add ${planA.name} under federation.peers in the config of ${planB.name}.`);
    expectNamedServers(reason);
  });

  it("repeated failures are throttled", async () => {
    const a = await startPlanned(planA, [{ ...planB, key: strayKey() }]);
    servers.push(a);
    const b = await startPlanned(planB, [planA]);
    servers.push(b);

    // The helper's fast backoff (50-400 ms) makes ten failed attempts take a few seconds.
    await waitUntil(() => outgoingFailures(b, planA.name).length >= 11 && incomingFailures(b, planA.name).length >= 11, "B failed eleven handshakes each way", 15_000);

    for (const lines of [outgoingFailures(b, planA.name), incomingFailures(b, planA.name)]) {
      const firstEleven = lines.slice(0, 11);
      const warned = firstEleven.filter((line) => line.level === 40);
      const debugged = firstEleven.filter((line) => line.level === 20);
      expect(warned.map((line) => line.failures)).to.deep.equal([1, 2, 3, 10]);
      expect(warned.map((line) => line.suppressed)).to.deep.equal([0, 0, 0, 6]);
      expect(debugged.map((line) => line.failures)).to.deep.equal([4, 5, 6, 7, 8, 9, 11]);
    }
  });
});
