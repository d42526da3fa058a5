import path from "node:path";
import { expect } from "chai";
import { deliverTo } from "../../plugins/handler-bridge/serve-handler.js";
import { acceptedJob, connectAs, fixtureHandler, notificationFor, serveInProcess, waitUntil, type InProcessHandler, type RawClient, type TestServer } from "../helper.js";
import { planServers, startPlanned, waitForLinkUp, type Plan, type PlannedServer } from "../federation-helper.js";

type LogLine = Record<string, unknown>;

function findLine(server: TestServer, msg: string, match: (line: LogLine) => boolean = () => true): LogLine | undefined {
  return server.logs.find((line) => line.msg === msg && match(line));
}

async function waitForLine(server: TestServer, msg: string, match: (line: LogLine) => boolean = () => true): Promise<LogLine> {
  await waitUntil(() => findLine(server, msg, match) !== undefined, `${server.bester.serverName} logged "${msg}"`);
  return findLine(server, msg, match)!;
}

describe("federation job tracing logs", function () {
  this.timeout(30_000);

  let plan: Plan;
  let planA: PlannedServer;
  let planB: PlannedServer;
  let a: TestServer;
  let b: TestServer;
  let handler: InProcessHandler;
  let alice: RawClient;

  before(async () => {
    plan = await planServers(2);
    [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    // B's handler runs in this process and replies at once. B's SQLite store makes B journal each
    // job and store its handoff grant, so a job can end while B still accepts its handoff.
    const socket = path.join(plan.dir, "quick.sock");
    handler = await serveInProcess(socket, "quick", () => ({ payload: "done", director: deliverTo([]) }));
    a = await startPlanned(planA, [planB], { handlers: { forward: fixtureHandler("forward") } });
    b = await startPlanned(planB, [planA], { store: `sqlite://${path.join(plan.dir, "b.sqlite")}`, handlers: { quick: { socket }, echo: fixtureHandler("echo") } });
    await waitForLinkUp(a, planB.name);
    alice = await connectAs(a.port, "alice");
  });

  after(async () => {
    alice.close();
    await Promise.all([a, b].map((server) => server.stop()));
    await handler.stop();
    await plan.cleanup();
  });

  it("handoff lines link both servers", async () => {
    const jobID = await acceptedJob(alice, "forward", { handoff: `quick@${planB.name}`, value: 1 });
    expect((await notificationFor(alice, jobID)).status).to.equal("completed");

    const queued = await waitForLine(a, "queued a handoff for a peer", (line) => line.jobId === jobID);
    expect(queued.user).to.equal("alice");
    expect(queued.peer).to.equal(planB.name);
    expect(queued.target).to.equal(`quick@${planB.name}`);
    expect(queued.id).to.be.a("string");

    const accepted = await waitForLine(b, "accepted a handoff from a peer", (line) => line.id === queued.id);
    const newJobID = accepted.jobId as string;
    expect(newJobID).to.be.a("string");
    const completed = await waitForLine(b, "job completed", (line) => line.jobId === newJobID);
    expect(b.logs.indexOf(accepted)).to.be.below(b.logs.indexOf(completed));
  });

  it("remote delivery line names the job", async () => {
    const jobID = await acceptedJob(alice, "forward", { deliverTo: [`bob@${planB.name}`], value: 2 });
    await notificationFor(alice, jobID);

    const queued = await waitForLine(a, "queued an output for a peer", (line) => line.jobId === jobID);
    expect(queued.user).to.equal("alice");
    expect(queued.peer).to.equal(planB.name);
    expect(queued.target).to.deep.equal([`bob@${planB.name}`]);
    expect(queued.id).to.be.a("string");
  });

  it("unknown remote users line names the job", async () => {
    const jobID = await acceptedJob(alice, "forward", { deliverTo: [`nobody@${planB.name}`], value: 3 });
    await notificationFor(alice, jobID);

    const line = await waitForLine(a, "peer has no such users; their output was not delivered", (entry) => entry.jobId === jobID);
    expect(line.user).to.equal("alice");
    expect(line.unknownUsers).to.deep.equal(["nobody"]);
    expect(line.id).to.be.a("string");
    const received = await waitForLine(b, "peer delivered output to users that do not exist here", (entry) => entry.id === line.id);
    expect(received.jobID).to.equal(`${jobID}:alice@${planA.name}`);
  });

  it("rejected message line names the job", async () => {
    const jobID = await acceptedJob(alice, "forward", { handoff: `missing@${planB.name}`, value: 4 });
    await notificationFor(alice, jobID);

    const line = await waitForLine(a, "peer rejected a message; dropped it", (entry) => entry.jobId === jobID);
    expect(line.user).to.equal("alice");
    expect(line.code).to.equal("noHandler");
    expect(line.id).to.be.a("string");
    const rejected = await waitForLine(b, "rejected a peer message", (entry) => entry.id === line.id);
    expect(rejected.code).to.equal("noHandler");
  });
});
