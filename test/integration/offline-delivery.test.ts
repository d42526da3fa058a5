import { expect } from "chai";
import type { BesterPlugin } from "../../core/plugin.js";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

describe("offline delivery", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({
      registration: true,
      offline: { maxMessages: 3 },
      handlers: { echo: fixtureHandler("echo"), slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "200" } }) },
    });
    const bob = await RawClient.connect(server.port);
    await login(bob, "bob");
    bob.close();
    while (server.bester.sessions.isOnline("bob")) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
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
    while (!server.bester.scheduler.stats().some((entry) => entry.type === "slow" && entry.completed >= 5)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

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
  // Holds every login's stored-message delivery open for 300 ms, as a slow store would.
  const slowSessionStart: BesterPlugin = {
    name: "slow-session-start",
    apply(bester) {
      bester.hooks.onSessionStart.tapPromise({ name: "slow-session-start", stage: -10 }, () => new Promise((resolve) => setTimeout(resolve, 300)));
    },
  };
  let server: TestServer;
  let alice: RawClient;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") }, plugins: [slowSessionStart] });
    alice = await RawClient.connect(server.port);
    await login(alice, "alice");
  });

  after(async () => {
    alice.close();
    await server.stop();
  });

  /** Logs `user` in and closes the connection at once, before its stored messages are sent. */
  async function loginAndLeave(user: string, register: boolean): Promise<void> {
    const client = await RawClient.connect(server.port);
    await login(client, user, "secret", register);
    client.close();
    while (server.bester.sessions.isOnline(user)) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async function sendTo(user: string, value: string): Promise<void> {
    await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [user], value } } } });
    await alice.nextReply("jobNotification");
  }

  it("keeps messages when the client leaves", async () => {
    await loginAndLeave("bob", true);
    await sendTo("bob", "kept");
    await loginAndLeave("bob", false);
    while (!server.logs.some((entry) => entry.msg === "connection closed before its stored offline messages were sent; keeping them")) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

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
    await loginAndLeave("carol", true);
    await sendTo("carol", "stored");

    const carol = await RawClient.connect(server.port);
    await login(carol, "carol", "secret", false);
    // Carol is online again, so this output is live, and it arrives while her login still sends the stored one.
    await sendTo("carol", "live");
    const first = await carol.nextReply("jobOutput");
    const second = await carol.nextReply("jobOutput");

    expect((first.job as { payload: { data: unknown } }).payload.data).to.equal("stored");
    expect((second.job as { payload: { data: unknown } }).payload.data).to.equal("live");
    carol.close();
  });
});
