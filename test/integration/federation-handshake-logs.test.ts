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
});
