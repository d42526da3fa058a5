import { expect } from "chai";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

describe("job progress forwarding", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, handlers: { progress: fixtureHandler("progress"), echo: fixtureHandler("echo") } });
  });

  after(async () => {
    await server.stop();
  });

  /** Collects every message of one job until its notification, in arrival order. */
  async function runAndCollect(client: RawClient, type: string, data: unknown): Promise<{ jobID: string; messages: Array<Record<string, unknown>> }> {
    const submission = await client.request({ request: "newJob", job: { payload: { type, data } } });
    const jobID = (submission.submission as { jobID: string }).jobID;
    const messages: Array<Record<string, unknown>> = [];
    for (;;) {
      const message = await client.next((candidate) => ["jobProgress", "jobOutput", "jobNotification"].includes(String(candidate.reply)));
      messages.push(message);
      if (message.reply === "jobNotification") {
        return { jobID, messages };
      }
    }
  }

  it("forwards progress frames before the output", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "alice");

    const { jobID, messages } = await runAndCollect(client, "progress", { steps: 3 });

    expect(messages.map((message) => message.reply)).to.deep.equal(["jobProgress", "jobProgress", "jobProgress", "jobOutput", "jobNotification"]);
    expect(messages[0]!.job).to.deep.equal({ jobID, progress: { step: 1, of: 3 } });
    expect(messages[1]!.job).to.deep.equal({ jobID, progress: { step: 2, of: 3 } });
    expect(messages[2]!.job).to.deep.equal({ jobID, progress: { step: 3, of: 3 } });
    expect((messages[3]!.job as { payload: unknown }).payload).to.deep.equal({ type: "progress", data: "done after 3 steps" });
    expect(messages[4]!.job).to.deep.equal({ status: "completed", jobID });
    client.close();
  });

  it("leaves a job without progress unaffected", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "bob");

    const { jobID, messages } = await runAndCollect(client, "progress", {});

    expect(messages.map((message) => message.reply)).to.deep.equal(["jobOutput", "jobNotification"]);
    expect(messages[1]!.job).to.deep.equal({ status: "completed", jobID });
    client.close();
  });

  it("sends progress only to the submitter", async () => {
    const submitter = await RawClient.connect(server.port);
    await login(submitter, "carol");
    const other = await RawClient.connect(server.port);
    await login(other, "dave");

    await runAndCollect(submitter, "progress", { steps: 2 });
    const echo = await runAndCollect(other, "echo", "marker");

    expect(echo.messages.map((message) => message.reply)).to.deep.equal(["jobOutput", "jobNotification"]);
    submitter.close();
    other.close();
  });

  it("runs onJobProgress taps with the job", async () => {
    const reports: unknown[] = [];
    server.bester.hooks.onJobProgress.tap("test-progress-tap", (report) => {
      reports.push({ type: report.job.type, progress: report.progress });
    });
    const client = await RawClient.connect(server.port);
    await login(client, "erin");

    await runAndCollect(client, "progress", { steps: 2 });

    expect(reports).to.deep.equal([
      { type: "progress", progress: { step: 1, of: 2 } },
      { type: "progress", progress: { step: 2, of: 2 } },
    ]);
    client.close();
  });
});
