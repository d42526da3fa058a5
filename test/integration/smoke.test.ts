import { expect } from "chai";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

describe("daemon smoke", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") } });
  });

  after(async () => {
    await server.stop();
  });

  it("runs an echo job end to end", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "alice");

    const submission = await client.request({ request: "newJob", job: { payload: { type: "echo", data: { n: 1 } } } });
    const jobID = (submission.submission as { jobID: string }).jobID;
    const output = await client.nextReply("jobOutput");
    const notification = await client.nextReply("jobNotification");

    expect(submission.submission).to.deep.include({ status: "accepted" });
    expect(output.job).to.deep.equal({ jobID: `${jobID}:alice@${server.bester.serverName}`, payload: { type: "echo", data: { n: 1 } } });
    expect(notification.job).to.deep.equal({ status: "completed", jobID });
    client.close();
  });
});
