import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fixtureHandler, login, RawClient, startServer, waitUntil, type TestServer } from "../helper.js";

// A client that closes its connection after `accepted`, as `bester submit --no-wait` does, while the
// job's output waits in the daemon. A long outputCoalesceMs keeps that output in the process, so the
// close finds it unsent.
describe("messages unsent at close", () => {
  let server: TestServer;
  let folder: string;

  beforeEach(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-unsent-"));
    server = await startServer({
      registration: true,
      store: `sqlite://${path.join(folder, "bester.sqlite")}`,
      limits: { outputCoalesceMs: 400 },
      handlers: { echo: fixtureHandler("delay-echo", { env: { DELAY_MS: "50" } }) },
    });
  });

  afterEach(async () => {
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it("keeps them for the next login and runs the job once", async () => {
    const first = await RawClient.connect(server.port);
    await login(first, "alice");
    // After a quiet period the submission reply leaves at once, and its write starts the 400 ms.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const submission = await first.request({ request: "newJob", job: { payload: { type: "echo", data: "once" } } });
    const jobID = (submission.submission as { jobID: string }).jobID;
    // The handler replies after 50 ms, inside the 400 ms that follow the reply's write.
    await new Promise((resolve) => setTimeout(resolve, 150));
    first.close();
    await waitUntil(() => !server.bester.sessions.isOnline("alice"), "alice is offline", 3000);

    const second = await RawClient.connect(server.port);
    await login(second, "alice", "secret", false);
    const output = await second.nextReply("jobOutput");
    const notification = await second.nextReply("jobNotification");
    const again = await second.nextReply("jobNotification", 600).then(() => "received", () => "none");

    expect((output.job as { jobID: string; payload: { data: unknown } }).payload.data).to.equal("once");
    expect((output.job as { jobID: string }).jobID.startsWith(`${jobID}:`)).to.equal(true);
    expect(notification.job).to.deep.equal({ status: "completed", jobID });
    expect(again).to.equal("none");
    expect(server.logs.filter((entry) => /running the job again/.test(String(entry.msg)))).to.deep.equal([]);
    const keptLine = server.logs.find((entry) => entry.msg === "connection closed with messages unsent; keeping them for the user's next login");
    expect(keptLine?.messages).to.equal(2);
    second.close();
  });
});
