import { expect } from "chai";
import type { Job } from "../../core/jobs/job.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { FederationPlugin } from "../../plugins/federation/index.js";
import type { TestServer } from "../helper.js";
import { planServers, sleep, startPlanned, waitForLinkUp, type Plan, type PlannedServer } from "../federation-helper.js";

type Message = Record<string, unknown>;

const PLUGIN = "test-peer-ping";

/** A third-party plugin that stamps outgoing peer messages and replies to `peerPing` from peers. */
function peerPing(received: Array<{ peer: string; message: Message }>, seen: Message[]): BesterPlugin {
  return {
    name: PLUGIN,
    apply(bester) {
      const federation = FederationPlugin.getHooks(bester);
      federation.beforeSend.tap(PLUGIN, (message) => ({ ...message, stamp: "stamped" }));
      federation.onReceive.tap(PLUGIN, (message) => {
        seen.push(message);
        return message;
      });
      bester.hooks.onPeerMessage.for("peerPing").tap(PLUGIN, ({ message, peer }) => {
        received.push({ peer, message });
        return { pong: true };
      });
    },
  };
}

describe("federation extension hooks", function () {
  this.timeout(30_000);

  let plan: Plan;
  let a: TestServer;
  let b: TestServer;
  const receivedOnB: Array<{ peer: string; message: Message }> = [];
  const seenOnB: Message[] = [];

  before(async () => {
    plan = await planServers(2);
    const [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    a = await startPlanned(planA, [planB], { plugins: [peerPing([], [])] });
    b = await startPlanned(planB, [planA], { plugins: [peerPing(receivedOnB, seenOnB)] });
    await waitForLinkUp(a, planB.name);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await plan.cleanup();
  });

  it("plugin message type crosses the link", async () => {
    const job: Job = { id: "ping-job", type: "ping", data: null, priority: 0, user: "alice", origin: a.bester.serverName, notify: false, chainLength: 0, attempts: 0, acceptedAt: Date.now() };

    const accepted = await a.bester.hooks.onPeerSend.promise({ peer: b.bester.serverName, message: { request: "peerPing", text: "hello" }, job });
    for (let waited = 0; waited < 5000 && receivedOnB.length === 0; waited += 20) {
      await sleep(20);
    }

    expect(accepted).to.equal(true);
    expect(receivedOnB).to.have.length(1);
    expect(receivedOnB[0]!.peer).to.equal(a.bester.serverName);
    expect(receivedOnB[0]!.message).to.deep.include({ request: "peerPing", text: "hello", stamp: "stamped" });
    expect(seenOnB.map((message) => message.request)).to.deep.equal(["peerPing"]);
  });
});
