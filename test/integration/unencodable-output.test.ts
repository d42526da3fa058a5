import { expect } from "chai";
import type { BesterPlugin } from "../../core/plugin.js";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

/** Turns the output of a job whose data is "bigint" into a BigInt, which JSON cannot encode. */
const bigintOutput: BesterPlugin = {
  name: "test-bigint-output",
  apply(bester) {
    bester.hooks.onHandlerOutput.tap("test-bigint-output", (output) => (output.payload === "bigint" ? { ...output, payload: 10n } : output));
  },
};

describe("outputs that cannot be encoded", () => {
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") }, plugins: [bigintOutput] });
    client = await RawClient.connect(server.port);
    await login(client, "alice");
  });

  after(async () => {
    client.close();
    await server.stop();
  });

  async function submit(data: unknown): Promise<string> {
    client.send({ request: "newJob", job: { payload: { type: "echo", data } } });
    const submission = await client.nextReply("jobSubmission");
    return (submission.submission as { jobID: string }).jobID;
  }

  it("fail the job, not the connection", async () => {
    const failedId = await submit("bigint");
    const failed = await client.next((message) => message.reply === "jobNotification" && (message.job as { jobID: string }).jobID === failedId);

    expect(failed.job).to.have.property("status", "failed");
    expect(failed.job).to.have.nested.property("error.code", "directorFailed");

    const okId = await submit("fine");
    const output = await client.next((message) => message.reply === "jobOutput" && (message.job as { jobID: string }).jobID.startsWith(`${okId}:`));
    expect(output.job).to.have.nested.property("payload.data", "fine");
  });
});
