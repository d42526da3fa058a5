import path from "node:path";
import { expect } from "chai";
import type { BesterPlugin } from "../../core/plugin.js";
import { fixtureHandler, login, RawClient, type TestServer } from "../helper.js";
import { peerHandshake, planServers, RunningServers, sleep, startPlanned, waitForLinkUp, type Plan, type PlannedServer } from "../federation-helper.js";

type Message = Record<string, unknown>;

describe("federation outbox across restarts", function () {
  this.timeout(60_000);

  let plan: Plan;
  let planA: PlannedServer;
  let planB: PlannedServer;
  let storeA: string;
  let storeB: string;
  const running = new RunningServers();
  const handlers = { echo: fixtureHandler("echo") };

  /** Keeps messages for offline users, as an offline-message store would. */
  function captureUndelivered(into: Array<{ user: string; message: Message }>): BesterPlugin {
    return {
      name: "test-capture-undelivered",
      apply(bester) {
        // Stage -100 runs before the built-in offline store, which would otherwise keep the message.
        bester.hooks.onUndelivered.tap({ name: "test-capture-undelivered", stage: -100 }, (user, message) => {
          into.push({ user, message });
          return true;
        });
      },
    };
  }

  const start = (self: PlannedServer, peer: PlannedServer, extra: Parameters<typeof startPlanned>[2]) => running.start(self, [peer], extra);
  const stop = (server: TestServer) => running.stop(server);

  beforeEach(async () => {
    plan = await planServers(2);
    [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    storeA = `sqlite://${path.join(plan.dir, "a.sqlite")}`;
    storeB = `sqlite://${path.join(plan.dir, "b.sqlite")}`;
  });

  afterEach(async () => {
    await running.stopAll();
    await plan.cleanup();
  });

  it("output for a stopped peer arrives once", async () => {
    let a = await start(planA, planB, { store: storeA, handlers });
    let b = await start(planB, planA, { store: storeB });
    const bob = await RawClient.connect(b.port);
    await login(bob, "bob");
    bob.close();
    await stop(b);

    const alice = await RawClient.connect(a.port);
    await login(alice, "alice");
    const submission = await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [`bob@${planB.name}`], value: "stored" } } } });
    const jobID = (submission.submission as { jobID: string }).jobID;
    const notification = await alice.nextReply("jobNotification");
    alice.close();

    // Restarting A as well shows that the message was in the store, not only in memory.
    await stop(a);
    a = await start(planA, planB, { store: storeA, handlers });
    const undelivered: Array<{ user: string; message: Message }> = [];
    b = await start(planB, planA, { store: storeB, plugins: [captureUndelivered(undelivered)] });
    for (let waited = 0; waited < 10_000 && undelivered.length === 0; waited += 50) {
      await sleep(50);
    }
    await sleep(500);

    expect(notification.job).to.deep.equal({ status: "completed", jobID });
    expect(a.logs.some((line) => line.msg === "loaded unacknowledged peer messages from the store" && line.pending === 1)).to.equal(true);
    expect(undelivered).to.have.length(1);
    expect(undelivered[0]!.user).to.equal("bob");
    expect(undelivered[0]!.message).to.deep.equal({ reply: "jobOutput", job: { jobID: `${jobID}:alice@${planA.name}`, payload: { type: "echo", data: "stored" } } });
    await waitForLinkUp(a, planB.name);
  });

  it("receiver remembers message ids across restarts", async () => {
    let b = await start(planB, planA, { store: storeB });
    const bob = await RawClient.connect(b.port);
    await login(bob, "bob");
    const message = { request: "jobOutputDelivery", id: "restart-1", job: { jobID: `job1:alice@${planA.name}`, payload: { type: "echo", data: 1 } }, users: ["bob"] };

    const first = await RawClient.connect(b.port);
    await peerHandshake(first, planA.name, planA.key, planB.name);
    const ack = await first.request(message);
    await bob.nextReply("jobOutput");
    first.close();
    bob.close();
    await stop(b);

    b = await start(planB, planA, { store: storeB });
    const second = await RawClient.connect(b.port);
    await peerHandshake(second, planA.name, planA.key, planB.name);
    const repeated = await second.request(message);
    second.close();

    expect(ack).to.deep.include({ reply: "ack", id: "restart-1" });
    expect(repeated).to.deep.equal({ reply: "ack", id: "restart-1", duplicate: true });
  });
});
