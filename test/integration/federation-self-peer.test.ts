import { expect } from "chai";
import { BesterError } from "../../core/errors.js";
import { assertNoSelfPeer } from "../../plugins/federation/self-peer.js";
import type { TestServer } from "../helper.js";
import { planServers, startPlanned, type Plan, type PlannedServer } from "../federation-helper.js";

describe("federation peer list naming the server itself", function () {
  this.timeout(30_000);

  let plan: Plan;
  let planA: PlannedServer;
  let planB: PlannedServer;
  const started: TestServer[] = [];

  beforeEach(async () => {
    plan = await planServers(2);
    [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((server) => server.stop()));
    await plan.cleanup();
  });

  /** Starts a server that should not start, and returns the error it failed with. */
  async function startError(start: () => Promise<TestServer>): Promise<BesterError> {
    try {
      started.push(await start());
    } catch (error) {
      expect(error).to.be.instanceOf(BesterError);
      return error as BesterError;
    }
    throw new Error("The server started with itself in federation.peers.");
  }

  it("own name is rejected at start", async () => {
    const error = await startError(() => startPlanned(planA, [planB, planA]));

    expect(error.code).to.equal("invalidConfig");
    expect(error.message).to.include(`federation.peers[1] ("${planA.name}")`);
    expect(error.message).to.include(`server.name ${planA.name}`);
  });

  it("own listen address is rejected at start", async () => {
    // The entry has another name, but its address is A's own listener.
    const error = await startError(() => startPlanned(planA, [], {
      federation: { peers: [{ name: planB.name, address: planA.name, publicKey: planB.key.publicKeyText }] },
    }));

    expect(error.code).to.equal("invalidConfig");
    expect(error.message).to.include(`federation.peers[0] ("${planB.name}") dials ${planA.name}`);
    expect(error.message).to.include("own listen");
  });

  it("loopback address of a wildcard listener is rejected", () => {
    // Checked without a server, so no test binds a wildcard address.
    const peers = [{ name: "10.0.0.9:2222", address: "127.0.0.1:2222", publicKey: planB.key.publicKeyText }];
    const listeners = [{ host: "0.0.0.0", port: 2222, setting: "listen" }];

    expect(() => assertNoSelfPeer(peers, "10.0.0.1:2222", listeners)).to.throw(BesterError, /federation\.peers\[0\] \("10\.0\.0\.9:2222"\) dials 127\.0\.0\.1:2222/);
    expect(() => assertNoSelfPeer(peers, "10.0.0.1:2222", [{ ...listeners[0]!, port: 2223 }])).to.not.throw();
  });

  it("other peers start normally", async () => {
    started.push(await startPlanned(planA, [planB]));

    expect(started[0]!.bester.state).to.equal("running");
  });
});
