import { expect } from "chai";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";
import { JobTracker } from "../job-tracker.js";

function handlerPids(server: TestServer, type: string): number[] {
  return server.logs.filter((entry) => entry.msg === "handler process started" && entry.type === type).map((entry) => entry.pid as number);
}

describe("handler crashes", function () {
  this.timeout(60_000);
  let server: TestServer;

  before(async () => {
    server = await startServer({
      registration: true,
      handlers: {
        flaky: fixtureHandler("unreliable", { connections: 2, retries: 1, timeoutMs: 1500 }),
        single: fixtureHandler("unreliable", { connections: 1, timeoutMs: 1000 }),
        echo: fixtureHandler("delay-echo", { connections: 4, retries: 20, env: { DELAY_MS: "2" } }),
      },
    });
  });

  after(async () => {
    await server.stop();
  });

  it("retries a broken connection, then fails with handlerFailed", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "crasher");

    const submitted = await client.request({ request: "newJob", job: { payload: { type: "flaky", data: { exit: true } } } });
    const jobID = (submitted.submission as { jobID: string }).jobID;
    const notification = await client.nextReply("jobNotification", 20_000);

    expect(notification.job).to.deep.include({ status: "failed", jobID });
    expect((notification.job as { error: { code: string } }).error.code, JSON.stringify(notification.job)).to.equal("handlerFailed");
    const retries = server.logs.filter((entry) => entry.msg === "handler connection failed mid-job; retrying on another connection" && entry.jobId === jobID);
    expect(retries).to.have.length(1);
    const exitLogs = () => server.logs.filter((entry) => entry.msg === "handler process exited; restarting" && entry.type === "flaky");
    // The connection can report the break before the supervisor sees the second exit.
    for (let waited = 0; exitLogs().length < 2 && waited < 5000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const exits = exitLogs();
    expect(exits.map((entry) => entry.crashes)).to.deep.equal([1, 2]);
    client.close();
  });

  it("fails a slow job with handlerTimeout and discards the connection", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "waiter");

    await client.request({ request: "newJob", job: { payload: { type: "flaky", data: { sleepMs: 3000 } } } });
    const timedOut = await client.nextReply("jobNotification", 20_000);
    await client.request({ request: "newJob", job: { payload: { type: "flaky", data: "after" } } });
    const output = await client.nextReply("jobOutput", 20_000);

    expect((timedOut.job as { error: { code: string } }).error.code).to.equal("handlerTimeout");
    expect((output.job as { payload: { data: unknown } }).payload.data).to.equal("after");
    client.close();
  });

  it("next job runs beside a timed-out one", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "overrun");

    // The handler keeps working on the first job for 5 s. Its only connection is replaced at the
    // 1 s timeout, and the next job runs on the new one while the first still works.
    await client.request({ request: "newJob", job: { payload: { type: "single", data: { sleepMs: 5000 } } } });
    const timedOut = await client.nextReply("jobNotification", 20_000);
    const timedOutAt = Date.now();
    await client.request({ request: "newJob", job: { payload: { type: "single", data: "beside" } } });
    const output = await client.nextReply("jobOutput", 20_000);
    const waitedMs = Date.now() - timedOutAt;

    expect((timedOut.job as { error: { code: string } }).error.code).to.equal("handlerTimeout");
    expect((output.job as { payload: { data: unknown } }).payload.data).to.equal("beside");
    expect(waitedMs, "time from the timeout to the next job's output").to.be.below(3000);
    client.close();
  });

  it("ends every job once while handlers are killed", async () => {
    const tracker = new JobTracker();
    await tracker.connect(server.port);
    await tracker.login("survivor", "secret-pass", true);

    const submitting = tracker.submit("echo", 400);
    for (let kill = 0; kill < 4; kill += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.floor(Math.random() * 150)));
      const pids = handlerPids(server, "echo");
      try {
        process.kill(pids[pids.length - 1]!, "SIGKILL");
      } catch {
        // The process may be between a crash and its restart.
      }
    }
    const ids = await submitting;
    await tracker.waitFor(() => tracker.finishedCount() === ids.length, 40_000, "every notification");
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect(ids).to.have.length(400);
    const counts = ids.map((id) => tracker.notifications.get(id)!.length);
    expect(counts.every((count) => count === 1), "each job has one notification").to.equal(true);
    const failed = ids.filter((id) => tracker.notifications.get(id)![0]!.status !== "completed");
    expect(failed, "failed jobs").to.deep.equal([]);
    expect(handlerPids(server, "echo").length).to.be.above(1);
    tracker.close();
  });
});
