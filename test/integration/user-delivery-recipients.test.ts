import { expect } from "chai";
import { BesterError } from "../../core/errors.js";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

describe("userDelivery recipient checks", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") } });
  });

  after(async () => {
    await server.stop();
  });

  async function run(client: RawClient, data: unknown): Promise<{ jobID: string; notification: Record<string, unknown> }> {
    const submission = await client.request({ request: "newJob", job: { payload: { type: "echo", data } } });
    const jobID = (submission.submission as { jobID: string }).jobID;
    const notification = await client.next((message) => message.reply === "jobNotification" && (message.job as { jobID: string }).jobID === jobID);
    return { jobID, notification: notification.job as Record<string, unknown> };
  }

  it("delivers to an online user without a store lookup failing it", async () => {
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");

    const { jobID, notification } = await run(alice, { deliverTo: ["alice"], value: "hi" });
    const output = await alice.nextReply("jobOutput");

    expect(notification).to.deep.equal({ status: "completed", jobID });
    expect(output.job).to.deep.equal({ jobID: `${jobID}:alice@${server.bester.serverName}`, payload: { type: "echo", data: "hi" } });
    alice.close();
  });

  it("fails the job with unknownUser for a recipient that has no account", async () => {
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice2");

    const { jobID, notification } = await run(alice, { deliverTo: ["ghost"], value: "hi" });

    expect(notification).to.include({ status: "failed", jobID });
    expect(notification.error).to.include({ code: "unknownUser" });
    alice.close();
  });

  it("accepts an existing offline recipient", async () => {
    const bob = await RawClient.connect(server.port);
    await login(bob, "bob");
    bob.close();
    const carol = await RawClient.connect(server.port);
    await login(carol, "carol");

    const { jobID, notification } = await run(carol, { deliverTo: ["bob"], value: "later" });

    expect(notification).to.deep.equal({ status: "completed", jobID });
    carol.close();
  });
});

describe("userDelivery partial delivery message", () => {
  let server: TestServer;

  before(async () => {
    // A transport plugin's peer tap that rejects every remote message with a message of its own.
    const noRoute = {
      name: "no-route",
      apply(bester: TestServer["bester"]) {
        bester.hooks.onPeerSend.tapPromise("no-route", async () => {
          throw new BesterError("directorFailed", "No route to the peer");
        });
      },
    };
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") }, plugins: [noRoute] });
  });

  after(async () => {
    await server.stop();
  });

  it("ends the tap's message before naming recipients", async () => {
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");

    const submission = await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: ["alice", "bob@127.0.0.1:9"], value: 1 } } } });
    const jobID = (submission.submission as { jobID: string }).jobID;
    const notification = await alice.next((message) => message.reply === "jobNotification" && (message.job as { jobID: string }).jobID === jobID);
    alice.close();

    expect((notification.job as { error: { message: string } }).error.message).to.equal(`No route to the peer. The output was already delivered, or queued for a peer server, to alice.`);
  });
});
