import { expect } from "chai";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

describe("offline delivery", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, offline: { maxMessages: 3 }, handlers: { echo: fixtureHandler("echo") } });
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
