import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import type { BesterPlugin } from "../../core/plugin.js";
import { fixtureHandler, login, loginAndLeave, RawClient, sendOutput, slowSessionStart, startServer, waitUntil, type TestServer } from "../helper.js";

describe("offline delivery", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({
      registration: true,
      offline: { maxMessages: 3 },
      handlers: { echo: fixtureHandler("echo"), slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "200" } }) },
    });
    await loginAndLeave(server, "bob");
  });

  after(async () => {
    await server.stop();
  });

  it("keeps the newest messages in order", async () => {
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");
    for (let index = 1; index <= 5; index += 1) {
      await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: ["bob"], value: index } } } });
      await alice.nextReply("jobNotification");
    }

    const bob = await RawClient.connect(server.port);
    await login(bob, "bob", "secret", false);
    const values = [];
    for (let index = 0; index < 3; index += 1) {
      const output = await bob.nextReply("jobOutput");
      values.push((output.job as { payload: { data: unknown } }).payload.data);
    }

    expect(values).to.deep.equal([3, 4, 5]);
    const warning = server.logs.find((entry) => entry.msg === "offline backlog full; dropped the oldest stored messages (offline.maxMessages)");
    expect(warning?.user).to.equal("bob");
    expect(warning?.level).to.equal(40);
    alice.close();
    bob.close();
  });

  it("keeps a user's own jobs beyond the bound", async () => {
    const dora = await RawClient.connect(server.port);
    await login(dora, "dora");
    const jobIDs: string[] = [];
    for (let index = 1; index <= 5; index += 1) {
      const reply = await dora.request({ request: "newJob", job: { payload: { type: "slow", data: index } } });
      jobIDs.push((reply.submission as { jobID: string }).jobID);
    }
    // The jobs end after dora left, so their five outputs and five notifications are stored.
    dora.close();
    await waitUntil(() => server.bester.scheduler.stats().some((entry) => entry.type === "slow" && entry.completed >= 5), "dora's five jobs completed");

    const again = await RawClient.connect(server.port);
    await login(again, "dora", "secret", false);
    const notified: string[] = [];
    for (let index = 0; index < 5; index += 1) {
      const notification = await again.nextReply("jobNotification");
      notified.push((notification.job as { jobID: string }).jobID);
    }
    const outputs = again.history.filter((message) => message.reply === "jobOutput").map((message) => (message.job as { payload: { data: unknown } }).payload.data);

    // Jobs run on several handler connections at once, so they may end in another order.
    expect([...notified].sort()).to.deep.equal([...jobIDs].sort());
    expect([...outputs].sort()).to.deep.equal([1, 2, 3, 4, 5]);
    again.close();
  });

  it("sends the backlog only once", async () => {
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice", "secret", false);
    await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: ["bob"], value: "once" } } } });
    await alice.nextReply("jobNotification");

    const first = await RawClient.connect(server.port);
    await login(first, "bob", "secret", false);
    const output = await first.nextReply("jobOutput");
    const second = await RawClient.connect(server.port);
    await login(second, "bob", "secret", false);
    const again = await second.nextReply("jobOutput", 300).then(() => "received", () => "none");

    expect((output.job as { payload: { data: unknown } }).payload.data).to.equal("once");
    expect(again).to.equal("none");
    for (const client of [alice, first, second]) {
      client.close();
    }
  });
});

describe("offline delivery during a slow login", () => {
  let server: TestServer;
  let alice: RawClient;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") }, plugins: [slowSessionStart(300)] });
    alice = await RawClient.connect(server.port);
    await login(alice, "alice");
  });

  after(async () => {
    alice.close();
    await server.stop();
  });

  it("keeps messages when the client leaves", async () => {
    await loginAndLeave(server, "bob");
    await sendOutput(alice, "bob", "kept");
    await loginAndLeave(server, "bob", false);
    await waitUntil(() => server.logs.some((entry) => entry.msg === "connection closed before its stored offline messages were sent; keeping them"), "the stored messages were kept");

    const bob = await RawClient.connect(server.port);
    await login(bob, "bob", "secret", false);
    const output = await bob.nextReply("jobOutput");

    expect((output.job as { payload: { data: unknown } }).payload.data).to.equal("kept");
    const kept = server.logs.find((entry) => entry.msg === "connection closed before its stored offline messages were sent; keeping them");
    expect(kept?.user).to.equal("bob");
    expect(kept?.messages).to.equal(1);
    bob.close();
  });

  it("sends stored outputs before live ones", async () => {
    await loginAndLeave(server, "carol");
    await sendOutput(alice, "carol", "stored");

    const carol = await RawClient.connect(server.port);
    await login(carol, "carol", "secret", false);
    // Carol is online again, so this output is live, and it arrives while her login still sends the stored one.
    await sendOutput(alice, "carol", "live");
    const first = await carol.nextReply("jobOutput");
    const second = await carol.nextReply("jobOutput");

    expect((first.job as { payload: { data: unknown } }).payload.data).to.equal("stored");
    expect((second.job as { payload: { data: unknown } }).payload.data).to.equal("live");
    carol.close();
  });
});

describe("engine delivery to offline users", () => {
  let server: TestServer;
  /** The user of each message that reached onUndelivered, in the order they arrived. */
  const undelivered: string[] = [];

  before(async () => {
    const recorder: BesterPlugin = {
      name: "undelivered-recorder",
      apply(bester) {
        // Runs before the offline plugin's tap, as soon as the engine hands a message on.
        bester.hooks.onUndelivered.tap({ name: "undelivered-recorder", stage: -100 }, (user) => {
          undelivered.push(user);
          return undefined;
        });
      },
    };
    server = await startServer({ registration: true, plugins: [recorder] });
    await loginAndLeave(server, "dora");
  });

  after(async () => {
    await server.stop();
  });

  it("hands a known user's message on in the same turn", async () => {
    undelivered.length = 0;
    const delivered = server.bester.engine.deliverToKnownUser("dora", { reply: "jobOutput", job: { jobID: "x:dora@here", payload: { type: "t", data: 1 } } });
    // The journal removes an ended job in this same turn, so both writes commit together.
    const seenAtOnce = [...undelivered];
    await delivered;

    expect(seenAtOnce).to.deep.equal(["dora"]);
  });

  it("checks the account before handing an unchecked name on", async () => {
    undelivered.length = 0;
    const delivered = server.bester.engine.deliverToUser("dora", { reply: "jobOutput", job: { jobID: "y:dora@here", payload: { type: "t", data: 2 } } });
    const seenAtOnce = [...undelivered];
    await delivered;

    expect(seenAtOnce).to.deep.equal([]);
    expect(undelivered).to.deep.equal(["dora"]);
  });
});

describe("offline delivery order across jobs", () => {
  let folder: string;
  let server: TestServer;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-offline-order-"));
    // Account lookups that take 300 ms, as on a loaded store, so a lookup before the first job's
    // output would let the second job's progress reach the backlog first. It runs before the
    // accounts plugin's tap and leaves the decision to it.
    const slowLookup: BesterPlugin = {
      name: "slow-lookup",
      apply(bester) {
        bester.hooks.onUserLookup.tapPromise({ name: "slow-lookup", stage: -10 }, async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          return undefined;
        });
      },
    };
    server = await startServer({
      store: `sqlite://${path.join(folder, "bester.sqlite")}`,
      registration: true,
      handlers: { scripted: fixtureHandler("scripted", { connections: 1 }) },
      plugins: [slowLookup],
    });
  });

  after(async () => {
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it("stores own output before later progress", async () => {
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");
    // The handler has one connection, so "second" starts only after "first" replied.
    const first = await alice.request({ request: "newJob", job: { payload: { type: "scripted", data: { sleepMs: 300 } } } });
    const second = await alice.request({ request: "newJob", job: { payload: { type: "scripted", data: { progress: 2, label: "second" } } } });
    alice.close();
    const ids = [first, second].map((reply) => (reply.submission as { jobID: string }).jobID);
    await waitUntil(() => ids.every((id) => server.logs.some((line) => line.msg === "job completed" && line.jobId === id)), "both jobs to complete");

    const again = await RawClient.connect(server.port);
    await login(again, "alice", "secret", false);
    const received: string[] = [];
    while (received.length < 6) {
      const message = await again.next();
      const job = message.job as { jobID: string };
      const id = job.jobID.split(":")[0];
      received.push(`${id === ids[0] ? "first" : "second"} ${message.reply as string}`);
    }
    again.close();

    expect(received.filter((entry) => entry.startsWith("first"))).to.deep.equal(["first jobOutput", "first jobNotification"]);
    expect(received.filter((entry) => entry.startsWith("second"))).to.deep.equal(["second jobProgress", "second jobProgress", "second jobOutput", "second jobNotification"]);
    expect(received.indexOf("first jobOutput")).to.be.below(received.indexOf("second jobProgress"));
  });
});
