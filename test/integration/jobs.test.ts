import { writeFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "chai";
import type { Bester } from "../../core/bester.js";
import { encodeFrame } from "../../core/protocol/frame-codec.js";
import {
  acceptedJob,
  connectAs,
  fixtureHandler,
  login,
  notificationFor,
  outputFor,
  RawClient,
  startServer,
  submitJob,
  type TestServer,
} from "../helper.js";

describe("jobs", () => {
  let server: TestServer;
  let holdCount = 0;

  before(async () => {
    server = await startServer({
      registration: true,
      handlers: {
        echo: fixtureHandler("echo"),
        // first → second → the submitter, one notification at the end.
        first: fixtureHandler("pipe", { env: { PIPE_TO: "second" } }),
        second: fixtureHandler("pipe"),
        gate: fixtureHandler("gate", { connections: 1 }),
        small: fixtureHandler("gate", { connections: 1, maxQueued: 2 }),
      },
    });
  });

  after(async () => {
    await server.stop();
  });

  /** Submits a job that keeps the type's only connection busy until release() is called. */
  async function hold(client: RawClient, type: string): Promise<{ jobID: string; release: () => Promise<void> }> {
    holdCount += 1;
    const file = path.join(server.dataDir, `release-${holdCount}`);
    const jobID = await acceptedJob(client, type, { holdUntil: file });
    await client.next((message) => message.reply === "jobProgress" && (message.job as { jobID: string }).jobID === jobID);
    return { jobID, release: () => writeFile(file, "go") };
  }

  it("delivers output and a notification to the submitter", async () => {
    const alice = await connectAs(server.port, "alice");
    const jobID = await acceptedJob(alice, "echo", { text: "hello" });
    const output = await outputFor(alice, jobID);
    const notification = await notificationFor(alice, jobID);

    expect(output).to.deep.equal({ jobID: `${jobID}:alice@${server.bester.serverName}`, payload: { type: "echo", data: { text: "hello" } } });
    expect(notification).to.deep.equal({ status: "completed", jobID });
    alice.close();
  });

  it("logs a completed job at debug level", async () => {
    const alice = await connectAs(server.port, "alice");
    const jobID = await acceptedJob(alice, "echo", "traced");
    await notificationFor(alice, jobID);
    const line = server.logs.find((entry) => entry.msg === "job completed" && entry.jobId === jobID);

    expect(line).to.include({ level: 20, type: "echo", user: "alice" });
    expect(line!.ms).to.be.a("number");
    alice.close();
  });

  it("jobID has no ':' or '@' and the output id splits at its first ':'", async () => {
    const alice = await connectAs(server.port, "alice");
    const jobID = await acceptedJob(alice, "echo", 1);
    const output = await outputFor(alice, jobID);

    expect(jobID).to.not.match(/[:@]/);
    const colon = output.jobID.indexOf(":");
    expect(output.jobID.slice(0, colon)).to.equal(jobID);
    expect(output.jobID.slice(colon + 1)).to.equal(`alice@${server.bester.serverName}`);
    alice.close();
  });

  it("gives every job a different jobID", async () => {
    const alice = await connectAs(server.port, "alice");
    const ids = await Promise.all(Array.from({ length: 20 }, (_, index) => acceptedJob(alice, "echo", index)));

    expect(new Set(ids).size).to.equal(20);
    alice.close();
  });

  it("delivers output to other local users", async () => {
    const alice = await connectAs(server.port, "alice");
    const bob = await connectAs(server.port, "bob");
    const carol = await connectAs(server.port, "carol");
    const jobID = await acceptedJob(alice, "echo", { deliverTo: ["bob", `carol@${server.bester.serverName}`], value: "for you" });

    const bobOutput = await outputFor(bob, jobID);
    const carolOutput = await outputFor(carol, jobID);
    const notification = await notificationFor(alice, jobID);

    const expected = { jobID: `${jobID}:alice@${server.bester.serverName}`, payload: { type: "echo", data: "for you" } };
    expect(bobOutput).to.deep.equal(expected);
    expect(carolOutput).to.deep.equal(expected);
    expect(notification.status).to.equal("completed");
    // The notification goes to the submitter only, and alice was not a recipient.
    const stray = [bob, carol].map((client) => client.next((message) => message.reply === "jobNotification", 200).then(() => "received", () => "none"));
    expect(await Promise.all(stray)).to.deep.equal(["none", "none"]);
    // Outputs of earlier tests' jobs may arrive from the offline store, so match this job only.
    await alice.next((message) => message.reply === "jobOutput" && String((message.job as { jobID?: unknown }).jobID).startsWith(`${jobID}:`), 200).then(
      () => expect.fail("alice received an output she was not a recipient of"),
      () => undefined,
    );
    for (const client of [alice, bob, carol]) {
      client.close();
    }
  });

  it("delivers to every connection of a user", async () => {
    const alice = await connectAs(server.port, "alice");
    const bobPhone = await connectAs(server.port, "bob");
    const bobLaptop = await connectAs(server.port, "bob");
    const jobID = await acceptedJob(alice, "echo", { deliverTo: ["bob"], value: 42 });

    const outputs = await Promise.all([outputFor(bobPhone, jobID), outputFor(bobLaptop, jobID)]);

    expect(outputs[0].payload.data).to.equal(42);
    expect(outputs[1].payload.data).to.equal(42);
    for (const client of [alice, bobPhone, bobLaptop]) {
      client.close();
    }
  });

  it("sends the submitter's notification to all of its connections", async () => {
    const first = await connectAs(server.port, "dave");
    const second = await connectAs(server.port, "dave");
    const jobID = await acceptedJob(first, "echo", "x");

    const notifications = await Promise.all([notificationFor(first, jobID), notificationFor(second, jobID)]);

    expect(notifications.map((notification) => notification.status)).to.deep.equal(["completed", "completed"]);
    first.close();
    second.close();
  });

  it("fails a job for an unregistered recipient with unknownUser", async () => {
    const alice = await connectAs(server.port, "alice");
    const jobID = await acceptedJob(alice, "echo", { deliverTo: ["ghost"], value: 1 });
    const notification = await notificationFor(alice, jobID);

    expect(notification.status).to.equal("failed");
    expect(notification.error?.code).to.equal("unknownUser");
    alice.close();
  });

  it("runs a chain of two handlers with one notification", async () => {
    const alice = await connectAs(server.port, "alice");
    const jobID = await acceptedJob(alice, "first", { path: [] });
    const output = await outputFor(alice, jobID);
    const notification = await notificationFor(alice, jobID);

    expect(output).to.deep.equal({ jobID: `${jobID}:alice@${server.bester.serverName}`, payload: { type: "second", data: { path: ["first", "second"] } } });
    expect(notification).to.deep.equal({ status: "completed", jobID });
    await alice.next((message) => message.reply === "jobNotification" || message.reply === "jobOutput", 300).then(
      () => expect.fail("the chain sent more than one output or notification"),
      () => undefined,
    );
    alice.close();
  });

  it("rejects an unknown type with noHandler", async () => {
    const alice = await connectAs(server.port, "alice");
    const submission = await submitJob(alice, "teleport", {});

    expect(submission.status).to.equal("rejected");
    expect(submission.error?.code).to.equal("noHandler");
    expect(submission.error?.message).to.include("teleport");
    alice.close();
  });

  it("rejects a job beyond maxQueued with queueFull", async () => {
    const alice = await connectAs(server.port, "alice");
    const { release } = await hold(alice, "small");

    const queued = [await submitJob(alice, "small", "q1"), await submitJob(alice, "small", "q2")];
    const third = await submitJob(alice, "small", "q3");
    await release();

    expect(queued.map((submission) => submission.status)).to.deep.equal(["accepted", "accepted"]);
    expect(third.status).to.equal("rejected");
    expect(third.error?.code).to.equal("queueFull");
    for (const submission of queued) {
      expect((await notificationFor(alice, submission.jobID!)).status).to.equal("completed");
    }
    expect((await submitJob(alice, "small", "after")).status).to.equal("accepted");
    alice.close();
  });

  it("keeps maxQueued for jobs pipelined in one write", async () => {
    const alice = await connectAs(server.port, "alice");
    const { release } = await hold(alice, "small");
    const frames = Array.from({ length: 10 }, (_, index) => encodeFrame({ request: "newJob", job: { payload: { type: "small", data: index } } }));
    alice.writeRaw(Buffer.concat(frames));

    const statuses: string[] = [];
    for (let index = 0; index < 10; index += 1) {
      const reply = await alice.nextReply("jobSubmission");
      const submission = reply.submission as { status: string; error?: { code: string } };
      statuses.push(submission.status === "accepted" ? "accepted" : submission.error!.code);
    }
    await release();

    expect(statuses).to.deep.equal(["accepted", "accepted", ...Array.from({ length: 8 }, () => "queueFull")]);
    alice.close();
  });

  it("runs higher priority first and equal priorities in order", async () => {
    const alice = await connectAs(server.port, "alice");
    const { jobID: heldID, release } = await hold(alice, "gate");
    const priorities = [0, 5, 0, 10, 5, -1, 10, 0, -1, 5];
    const ids: string[] = [];
    for (const [index, priority] of priorities.entries()) {
      ids.push(await acceptedJob(alice, "gate", { label: `p${priority}#${index}` }, { priority }));
    }
    await release();

    await outputFor(alice, heldID);
    const order: string[] = [];
    for (let index = 0; index < priorities.length; index += 1) {
      // Outputs of earlier tests' jobs may arrive from the offline store, so match this test's jobs only.
      const output = await alice.next((message) => message.reply === "jobOutput" && ids.some((id) => String((message.job as { jobID?: unknown }).jobID).startsWith(`${id}:`)));
      order.push((output.job as { payload: { data: { label: string } } }).payload.data.label);
    }

    expect(order).to.deep.equal(["p10#3", "p10#6", "p5#1", "p5#4", "p5#9", "p0#0", "p0#2", "p0#7", "p-1#5", "p-1#8"]);
    alice.close();
  });

  it("answers 500 pipelined jobs, each with one notification", async () => {
    const count = 500;
    const client = await RawClient.connect(server.port);
    await login(client, "bulk");
    const frames = Array.from({ length: count }, (_, index) => encodeFrame({ request: "newJob", tag: String(index), job: { payload: { type: "echo", data: index } } }));
    client.writeRaw(Buffer.concat(frames));

    const jobIDs: string[] = [];
    for (let index = 0; index < count; index += 1) {
      const reply = await client.nextReply("jobSubmission");
      expect(reply.tag).to.equal(String(index));
      jobIDs.push((reply.submission as { jobID: string }).jobID);
    }
    const notifications = new Map<string, number>();
    for (let index = 0; index < count; index += 1) {
      const message = await client.nextReply("jobNotification");
      const job = message.job as { jobID: string; status: string };
      expect(job.status).to.equal("completed");
      notifications.set(job.jobID, (notifications.get(job.jobID) ?? 0) + 1);
    }
    const outputs = new Map<string, unknown>();
    for (let index = 0; index < count; index += 1) {
      const message = await client.nextReply("jobOutput");
      const job = message.job as { jobID: string; payload: { data: unknown } };
      outputs.set(job.jobID.split(":")[0]!, job.payload.data);
    }

    expect(new Set(jobIDs).size).to.equal(count);
    expect([...notifications.keys()].sort()).to.deep.equal([...jobIDs].sort());
    expect([...notifications.values()].every((times) => times === 1)).to.equal(true);
    expect(jobIDs.map((jobID) => outputs.get(jobID))).to.deep.equal(Array.from({ length: count }, (_, index) => index));
    await client.next((message) => message.reply === "jobNotification", 300).then(
      () => expect.fail("a job sent a second notification"),
      () => undefined,
    );
    client.close();
  });
});

describe("jobs with a slow onJobAccepted tap", () => {
  let server: TestServer;

  /** Delays acceptance of jobs whose data asks for it, as a store that persists jobs can. */
  const slowAcceptance = {
    name: "slow-acceptance",
    apply(bester: Bester) {
      bester.hooks.onJobAccepted.tapPromise("slow-acceptance", async (job) => {
        const delayMs = (job.data as { acceptDelayMs?: number } | null)?.acceptDelayMs;
        if (delayMs) {
          await new Promise((resolve) => setTimeout(resolve, delayMs));
        }
      });
    },
  };

  before(async () => {
    server = await startServer({ registration: true, plugins: [slowAcceptance], handlers: { echo: fixtureHandler("echo") } });
  });

  after(async () => {
    await server.stop();
  });

  it("sends each submission reply before that job's events", async () => {
    const client = await connectAs(server.port, "alice");
    client.send({ request: "newJob", job: { payload: { type: "echo", data: { acceptDelayMs: 300 } } } });
    client.send({ request: "newJob", job: { payload: { type: "echo", data: { fast: true } } } });

    const slowID = (await client.nextReply("jobSubmission")).submission as { jobID: string };
    const fastID = (await client.nextReply("jobSubmission")).submission as { jobID: string };
    await notificationFor(client, slowID.jobID);
    await notificationFor(client, fastID.jobID);

    for (const jobID of [slowID.jobID, fastID.jobID]) {
      const order = client.history
        .filter((message) => JSON.stringify(message).includes(jobID))
        .map((message) => String(message.reply));
      expect(order, `events of job ${jobID}`).to.deep.equal(["jobSubmission", "jobOutput", "jobNotification"]);
    }
    client.close();
  });
});
