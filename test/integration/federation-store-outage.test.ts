// Redis outages on the sending server while jobs carry outputs to a peer's user. The outbox write
// is retried until Redis is back, and the job fails only after federation.outboxRetryMs. A
// shutdown during the retries leaves the job stored for the next start.

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import type { BesterConfig } from "../../core/config/types.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { fixtureHandler, login, RawClient, waitUntil, type TestServer } from "../helper.js";
import { planServers, RunningServers, sleep, waitForLinkUp, type Plan, type PlannedServer } from "../federation-helper.js";
import { startRedis, type RedisServer } from "../redis-server.js";

type Message = Record<string, unknown>;

const RETRY_WARNING = "storing a peer message failed because the store is unreachable, so it is retried until the store is back";
const RETRY_SUCCESS = "stored the peer message in the outbox after the store came back";
const HELD_AT_STOP = "server stopping while a peer message waits for the store, so its job stays stored and runs again after the next start";

/** Holds every handler output before its director runs until open() is called, so the test can stop Redis first. */
function outputGate(): { plugin: BesterPlugin; heldCount: () => number; open: () => void } {
  let held = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const plugin: BesterPlugin = {
    name: "test-output-gate",
    apply(bester) {
      bester.hooks.onHandlerOutput.tapPromise("test-output-gate", async (output) => {
        held += 1;
        await opened;
        return output;
      });
    },
  };
  return { plugin, heldCount: () => held, open };
}

describe("federation outbox during a store outage", function () {
  this.timeout(60_000);

  let plan: Plan;
  let planA: PlannedServer;
  let planB: PlannedServer;
  let redis: RedisServer | undefined;
  let redisDir: string;
  const running = new RunningServers();
  const clients: RawClient[] = [];

  const start = (self: PlannedServer, peer: PlannedServer, extra: BesterConfig) => running.start(self, [peer], extra);
  const stop = (server: TestServer) => running.stop(server);

  async function connect(server: TestServer, user: string): Promise<RawClient> {
    const client = await RawClient.connect(server.port);
    clients.push(client);
    await login(client, user);
    return client;
  }

  /** Starts redis-server with its append-only file in redisDir, so a restart keeps the data. */
  function startPersistentRedis(port?: number): Promise<RedisServer> {
    return startRedis({ port, args: ["--appendonly", "yes", "--dir", redisDir] });
  }

  function submit(client: RawClient, value: string): void {
    client.send({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: ["alice", `bob@${planB.name}`], value } } } });
  }

  function outputsOf(client: RawClient): Message[] {
    return client.history.filter((message) => message.reply === "jobOutput");
  }

  beforeEach(async () => {
    plan = await planServers(2);
    [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    redisDir = await mkdtemp(path.join(os.tmpdir(), "bester-redis-aof-"));
    redis = await startPersistentRedis();
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) {
      client.close();
    }
    await running.stopAll();
    await redis?.stop();
    redis = undefined;
    await rm(redisDir, { recursive: true, force: true });
    await plan.cleanup();
  });

  /** Starts A on Redis and B on SQLite, logs bob in on B and alice on A, and waits for A's link to B. */
  async function startPair(extra: BesterConfig, gate: ReturnType<typeof outputGate>): Promise<{ a: TestServer; alice: RawClient; bob: RawClient }> {
    const a = await start(planA, planB, { store: redis!.url, handlers: { echo: fixtureHandler("echo") }, plugins: [gate.plugin], ...extra });
    const b = await start(planB, planA, { store: `sqlite://${path.join(plan.dir, "b.sqlite")}` });
    const bob = await connect(b, "bob");
    const alice = await connect(a, "alice");
    await waitForLinkUp(a, planB.name);
    return { a, alice, bob };
  }

  /** Stops Redis and waits until A noticed, so the next store call fails at once. */
  async function stopRedis(a: TestServer): Promise<void> {
    await redis!.stop();
    await waitUntil(() => a.logs.some((line) => line.msg === "Redis connection lost; commands fail until it is back"), "A noticed the lost Redis connection");
  }

  it("bob gets every output once across a Redis restart", async () => {
    const gate = outputGate();
    const { a, alice, bob } = await startPair({}, gate);
    const values = ["first", "second", "third"];
    for (const value of values) {
      submit(alice, value);
    }
    await waitUntil(() => gate.heldCount() === values.length, "every job's output is held");

    const port = redis!.port;
    await stopRedis(a);
    gate.open();
    await waitUntil(() => a.logs.some((line) => line.msg === RETRY_WARNING), "the retry warning", 10_000);
    // Long enough for several retries; short of the 60 s default limit.
    await sleep(1500);
    redis = await startPersistentRedis(port);

    const notifications: Message[] = [];
    for (const _ of values) {
      notifications.push(await alice.nextReply("jobNotification", 20_000));
    }
    await waitUntil(() => outputsOf(bob).length >= values.length, "bob received every output", 10_000);
    // Time for a duplicate to arrive, if the outbox sent one.
    await sleep(500);

    expect(notifications.map((message) => (message.job as { status: string }).status)).to.deep.equal(["completed", "completed", "completed"]);
    const bobValues = outputsOf(bob).map((message) => (message.job as { payload: { data: string } }).payload.data);
    expect(bobValues).to.have.members(values);
    expect(bobValues).to.have.length(values.length);
    expect(outputsOf(alice)).to.have.length(values.length);

    const warning = a.logs.find((line) => line.msg === RETRY_WARNING)!;
    expect(warning.peer).to.equal(planB.name);
    expect(warning.store).to.equal(`redis://127.0.0.1:${port}`);
    expect(warning.jobId).to.be.a("string");
    const successes = a.logs.filter((line) => line.msg === RETRY_SUCCESS);
    expect(successes.map((line) => line.jobId)).to.include(warning.jobId);
    expect(successes.every((line) => line.peer === planB.name)).to.equal(true);
    expect(a.logs.filter((line) => line.msg === "job failed")).to.deep.equal([]);
  });

  it("job fails once the retry limit is up", async () => {
    const gate = outputGate();
    const { a, alice, bob } = await startPair({ federation: { outboxRetryMs: 1500 } }, gate);
    submit(alice, "lost");
    const accepted = await alice.nextReply("jobSubmission");
    const jobID = (accepted.submission as { jobID: string }).jobID;
    await waitUntil(() => gate.heldCount() === 1, "the job's output is held");

    await stopRedis(a);
    const startedAt = Date.now();
    gate.open();
    const notification = await alice.nextReply("jobNotification", 10_000);
    const elapsedMs = Date.now() - startedAt;
    await sleep(300);

    const job = notification.job as { status: string; jobID: string; error: { code: string; message: string } };
    expect(job.status).to.equal("failed");
    expect(job.jobID).to.equal(jobID);
    expect(job.error.code).to.equal("directorFailed");
    expect(job.error.message).to.match(
      new RegExp(`^Storing the message for peer ${planB.name.replace(/\./g, "\\.")} in the outbox failed because the server's store was unreachable for 1\\.[5-9] s, the limit set by federation\\.outboxRetryMs\\. Submit the job again once the store is back\\. The output was already delivered, or queued for a peer server, to alice\\.$`),
    );
    expect(elapsedMs).to.be.within(1400, 5000);
    expect(outputsOf(alice)).to.have.length(1);
    expect(outputsOf(bob)).to.deep.equal([]);
    expect(a.logs.filter((line) => line.msg === RETRY_WARNING)).to.have.length(1);
  });

  it("shutdown during retries keeps the job stored", async () => {
    const gate = outputGate();
    const extra: BesterConfig = { shutdown: { drainTimeoutMs: 500 } };
    const { a, alice, bob } = await startPair(extra, gate);
    submit(alice, "kept");
    await waitUntil(() => gate.heldCount() === 1, "the job's output is held");

    const port = redis!.port;
    await stopRedis(a);
    gate.open();
    await waitUntil(() => a.logs.some((line) => line.msg === RETRY_WARNING), "the retry warning", 10_000);
    await stop(a);

    expect(a.logs.some((line) => line.msg === HELD_AT_STOP)).to.equal(true);
    expect(a.logs.filter((line) => line.msg === "job failed")).to.deep.equal([]);
    expect(alice.history.filter((message) => message.reply === "jobNotification")).to.deep.equal([]);
    expect(outputsOf(bob)).to.deep.equal([]);

    // The append-only file brings the journal back, so the next start runs the job again.
    redis = await startPersistentRedis(port);
    const restarted = await start(planA, planB, { store: redis.url, handlers: { echo: fixtureHandler("echo") }, ...extra });
    await waitUntil(() => outputsOf(bob).length >= 1, "bob received the output after the restart", 15_000);
    await sleep(500);

    expect(outputsOf(bob).map((message) => (message.job as { payload: { data: string } }).payload.data)).to.deep.equal(["kept"]);
    expect(restarted.logs.filter((line) => line.msg === "job failed")).to.deep.equal([]);
  });
});
