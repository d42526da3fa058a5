import { expect } from "chai";
import type { BesterPlugin } from "../../core/plugin.js";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

describe("handler connection release", () => {
  let server: TestServer;
  let releaseFirst!: () => void;
  const doneOrder: string[] = [];

  /** Holds the first job's onJobDone until the test releases it, as a slow journal commit would. */
  const slowDone: BesterPlugin = {
    name: "test-slow-done",
    apply(bester) {
      const gate = new Promise<void>((resolve) => (releaseFirst = resolve));
      bester.hooks.onJobDone.tapPromise("test-slow-done", async (job) => {
        if (doneOrder.length === 0) {
          doneOrder.push(`waiting ${job.id}`);
          await gate;
        }
        doneOrder.push(`done ${job.id}`);
      });
    },
  };

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo", { connections: 1 }) }, plugins: [slowDone] });
  });

  after(async () => {
    releaseFirst();
    await server.stop();
  });

  it("runs the next job while the previous one finishes", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "alice");

    const first = await client.request({ request: "newJob", job: { payload: { type: "echo", data: "one" } } });
    const firstId = (first.submission as { jobID: string }).jobID;
    await client.next((message) => message.reply === "jobNotification" && (message.job as { jobID: string }).jobID === firstId);
    const second = await client.request({ request: "newJob", job: { payload: { type: "echo", data: "two" } } });
    const secondId = (second.submission as { jobID: string }).jobID;
    const secondOutput = await client.next((message) => message.reply === "jobOutput" && (message.job as { jobID: string }).jobID.startsWith(`${secondId}:`));
    const secondNotification = await client.next((message) => message.reply === "jobNotification" && (message.job as { jobID: string }).jobID === secondId);

    expect(doneOrder[0]).to.equal(`waiting ${firstId}`);
    expect(doneOrder).not.to.include(`done ${firstId}`);
    expect((secondOutput.job as { payload: unknown }).payload).to.deep.equal({ type: "echo", data: "two" });
    expect(secondNotification.job).to.deep.equal({ status: "completed", jobID: secondId });

    releaseFirst();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(doneOrder).to.have.members([`waiting ${firstId}`, `done ${firstId}`, `done ${secondId}`]);
    client.close();
  });
});
