import { expect } from "chai";
import type { ServerStatus } from "../../core/status.js";
import { fixtureHandler, login, RawClient, type TestServer } from "../helper.js";
import { planServers, sleep, startPlanned, waitForLinkUp, type Plan } from "../federation-helper.js";

type Message = Record<string, unknown>;

describe("federation between three daemons", function () {
  this.timeout(60_000);

  let plan: Plan;
  let a: TestServer;
  let b: TestServer;
  let c: TestServer;
  const clients: RawClient[] = [];

  const handlers = { echo: fixtureHandler("echo"), forward: fixtureHandler("forward"), scripted: fixtureHandler("scripted") };

  before(async () => {
    plan = await planServers(3);
    const [planA, planB, planC] = plan.servers as [typeof plan.servers[0], typeof plan.servers[0], typeof plan.servers[0]];
    a = await startPlanned(planA, [planB, planC], { handlers, maxFrameBytes: 1024 * 1024 });
    b = await startPlanned(planB, [planA, planC], { handlers });
    c = await startPlanned(planC, [planA, planB], { handlers });
    for (const [server, peers] of [[a, [b, c]], [b, [a, c]], [c, [a, b]]] as const) {
      for (const peer of peers) {
        await waitForLinkUp(server, peer.bester.serverName);
      }
    }
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    await Promise.all([a, b, c].filter(Boolean).map((server) => server.stop()));
    await plan.cleanup();
  });

  async function connect(server: TestServer, user: string): Promise<RawClient> {
    const client = await RawClient.connect(server.port);
    clients.push(client);
    await login(client, user);
    return client;
  }

  async function submit(client: RawClient, type: string, data: unknown): Promise<string> {
    const reply = await client.request({ request: "newJob", job: { payload: { type, data } } });
    const submission = reply.submission as { status: string; jobID: string };
    expect(submission.status).to.equal("accepted");
    return submission.jobID;
  }

  it("remote delivery reaches a user on the peer", async () => {
    const alice = await connect(a, "alice");
    const bob = await connect(b, "bob");

    const jobID = await submit(alice, "echo", { deliverTo: [`bob@${b.bester.serverName}`], value: { n: 1 } });
    const output = await bob.nextReply("jobOutput");
    const notification = await alice.nextReply("jobNotification");

    expect(output.job).to.deep.equal({ jobID: `${jobID}:alice@${a.bester.serverName}`, payload: { type: "echo", data: { n: 1 } } });
    expect(notification.job).to.deep.equal({ status: "completed", jobID });
  });

  it("handoff runs as a new job on the peer", async () => {
    const alice = await connect(a, "alice");
    const bob = await connect(b, "bob");
    const aliceOnB = await connect(b, "alice");
    const value = { deliverTo: [`alice@${a.bester.serverName}`, "bob"], value: "handed off" };

    const jobID = await submit(alice, "forward", { handoff: `echo@${b.bester.serverName}`, value });
    const notification = await alice.nextReply("jobNotification");
    const aliceOutput = await alice.nextReply("jobOutput");
    const bobOutput = await bob.nextReply("jobOutput");

    const outputId = (aliceOutput.job as { jobID: string }).jobID;
    const newJobID = outputId.slice(0, outputId.indexOf(":"));
    const address = outputId.slice(outputId.indexOf(":") + 1);
    expect(notification.job).to.deep.equal({ status: "completed", jobID });
    expect(address).to.equal(`alice@${a.bester.serverName}`);
    expect(newJobID).to.not.equal(jobID);
    expect(aliceOutput.job).to.deep.equal({ jobID: outputId, payload: { type: "echo", data: "handed off" } });
    expect(bobOutput.job).to.deep.equal({ jobID: outputId, payload: { type: "echo", data: "handed off" } });

    // The handoff job notifies nobody: neither alice's nor bob's connections on B hear of it.
    await sleep(300);
    const notified = (message: Message) => message.reply === "jobNotification";
    await expectNone(aliceOnB, notified);
    await expectNone(bob, notified);
  });

  it("handoff output reaches a user on a third server", async () => {
    const alice = await connect(a, "alice");
    const carol = await connect(c, "carol");
    const value = { deliverTo: [`carol@${c.bester.serverName}`], value: 7 };

    const jobID = await submit(alice, "forward", { handoff: `echo@${b.bester.serverName}`, value });
    const output = await carol.nextReply("jobOutput");
    const notification = await alice.nextReply("jobNotification");

    const outputId = (output.job as { jobID: string }).jobID;
    expect(outputId).to.match(new RegExp(`^[^:@]+:alice@${escape(a.bester.serverName)}$`));
    expect(outputId.startsWith(`${jobID}:`)).to.equal(false);
    expect(output.job).to.deep.include({ payload: { type: "echo", data: 7 } });
    expect(notification.job).to.deep.equal({ status: "completed", jobID });
  });

  it("a handed-off job can be handed on", async () => {
    const alice = await connect(a, "alice");
    const carol = await connect(c, "carol");
    const last = { deliverTo: [`alice@${a.bester.serverName}`, "carol"], value: "two hops" };

    // A hands off to forward@B, whose handler hands the inner value on to echo@C.
    const jobID = await submit(alice, "forward", { handoff: `forward@${b.bester.serverName}`, value: { handoff: `echo@${c.bester.serverName}`, value: last } });
    const notification = await alice.nextReply("jobNotification");
    const atAlice = await alice.nextReply("jobOutput");
    const atCarol = await carol.nextReply("jobOutput");

    const outputId = (atAlice.job as { jobID: string }).jobID;
    expect(notification.job).to.deep.equal({ status: "completed", jobID });
    expect(outputId).to.match(new RegExp(`^[^:@]+:alice@${escape(a.bester.serverName)}$`));
    expect(outputId.startsWith(`${jobID}:`)).to.equal(false);
    expect(atAlice.job).to.deep.equal({ jobID: outputId, payload: { type: "echo", data: "two hops" } });
    expect(atCarol.job).to.deep.equal({ jobID: outputId, payload: { type: "echo", data: "two hops" } });
    const rejected = [a, b, c].flatMap((server) => server.logs.filter((entry) => entry.level === 50));
    expect(rejected, "error log lines").to.deep.equal([]);
  });

  it("status lists the peer links", async () => {
    const status = await a.bester.hooks.onStatus.promise({ sections: {} } as unknown as ServerStatus);

    const rows = status.sections.peers!.rows;
    expect(status.sections.peers!.title).to.equal("Peer links");
    expect(rows.map((row) => row.peer)).to.deep.equal([b.bester.serverName, c.bester.serverName]);
    for (const row of rows) {
      expect(row).to.deep.include({ state: "up", tls: false });
    }
  });

  it("recipient on an unconfigured server fails the job", async () => {
    const alice = await connect(a, "alice");

    const jobID = await submit(alice, "echo", { deliverTo: ["bob@127.0.0.1:1"], value: 1 });
    const notification = await alice.nextReply("jobNotification");

    const job = notification.job as { status: string; jobID: string; error: { code: string } };
    expect(job.jobID).to.equal(jobID);
    expect(job.status).to.equal("failed");
    expect(job.error.code).to.equal("unknownPeer");
  });

  it("partial delivery names who got the output", async () => {
    const alice = await connect(a, "alice");
    const bob = await connect(b, "bob");

    const jobID = await submit(alice, "echo", { deliverTo: ["alice", `bob@${b.bester.serverName}`, "eve@127.0.0.1:1"], value: 2 });
    const notification = await alice.nextReply("jobNotification");
    const atBob = await bob.nextReply("jobOutput");

    const job = notification.job as { status: string; jobID: string; error: { code: string; message: string } };
    expect(job.jobID).to.equal(jobID);
    expect(job.status).to.equal("failed");
    expect(job.error.code).to.equal("unknownPeer");
    expect(job.error.message, job.error.message).to.include(`The output was already delivered, or queued for a peer server, to alice, bob@${b.bester.serverName}.`);
    expect((atBob.job as { payload: { data: unknown } }).payload.data).to.equal(2);
  });

  it("recipient on a malformed server name fails the job", async () => {
    const alice = await connect(a, "alice");

    const jobID = await submit(alice, "echo", { deliverTo: ["bob@no-port"], value: 1 });
    const notification = await alice.nextReply("jobNotification");

    const job = notification.job as { status: string; jobID: string; error: { code: string; message: string } };
    expect(job.jobID).to.equal(jobID);
    expect(job.status).to.equal("failed");
    expect(job.error.code).to.equal("unknownPeer");
    expect(job.error.message).to.include("not a valid host:port");
  });

  it("output over maxFrameBytes for a peer fails the job", async () => {
    // The handler reply fits the limit; the peer message, with its job id and envelope, does not.
    const alice = await connect(a, "alice");

    const jobID = await submit(alice, "scripted", { inflate: 1024 * 1024 - 120, deliverTo: [`bob@${b.bester.serverName}`] });
    const notification = await alice.nextReply("jobNotification");

    const job = notification.job as { status: string; jobID: string; error: { code: string; message: string } };
    expect(job.jobID).to.equal(jobID);
    expect(job.status).to.equal("failed");
    expect(job.error.code).to.equal("directorFailed");
    expect(job.error.message).to.include("over maxFrameBytes");
  });

  it("burst of 1000 remote deliveries arrives exactly once", async () => {
    const alice = await connect(a, "alice");
    const bob = await connect(b, "bob");
    const count = 1000;
    const recipient = `bob@${b.bester.serverName}`;

    for (let index = 0; index < count; index += 1) {
      alice.send({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [recipient], value: { burst: index } } } } });
    }
    let completed = 0;
    while (completed < count) {
      const notification = await alice.nextReply("jobNotification", 30_000);
      expect((notification.job as { status: string }).status).to.equal("completed");
      completed += 1;
    }
    const received: number[] = [];
    for (let index = 0; index < count; index += 1) {
      const output = await bob.nextReply("jobOutput", 30_000);
      received.push((output.job as { payload: { data: { burst: number } } }).payload.data.burst);
    }
    await sleep(300);

    expect(received).to.have.length(count);
    expect(new Set(received).size).to.equal(count);
    await expectNone(bob, (message) => message.reply === "jobOutput");
  });
});

/** Fails if a matching message already arrived or arrives within a short wait. */
async function expectNone(client: RawClient, match: (message: Message) => boolean): Promise<void> {
  const unexpected = await client.next(match, 100).catch(() => undefined);
  expect(unexpected, `unexpected message ${JSON.stringify(unexpected)}`).to.equal(undefined);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
