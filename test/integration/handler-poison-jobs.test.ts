import { expect } from "chai";
import { acceptedJob, connectAs, fixtureHandler, notificationFor, RawClient, startServer, type TestServer } from "../helper.js";

const RETRYING = "handler connection failed mid-job; retrying on another connection";
const ISOLATING = "handler connection failed mid-job while other jobs were in flight; retrying the job alone without counting an attempt";

describe("handler poison jobs", function () {
  // Each poison job crashes the handler four times, and every crash waits for a new process.
  this.timeout(90_000);
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    server = await startServer({
      registration: true,
      handlers: {
        shared: fixtureHandler("scripted", { connections: 4, retries: 2 }),
      },
    });
    client = await connectAs(server.port, "bystander");
  });

  after(async () => {
    client.close();
    await server.stop();
  });

  it("poison job fails and its neighbours complete", async () => {
    const normal: string[] = [];
    const poison: string[] = [];
    for (let index = 0; index < 26; index += 1) {
      if (index === 5 || index === 17) {
        poison.push(await acceptedJob(client, "shared", { exit: 1 }));
      } else {
        normal.push(await acceptedJob(client, "shared", { sleepMs: 500, index }));
      }
    }

    const normalEnds = await Promise.all(normal.map((jobID) => notificationFor(client, jobID, 80_000)));
    const poisonEnds = await Promise.all(poison.map((jobID) => notificationFor(client, jobID, 80_000)));

    expect(normalEnds.filter((end) => end.status !== "completed"), "normal jobs that did not complete").to.deep.equal([]);
    for (const end of poisonEnds) {
      expect(end.status).to.equal("failed");
      expect(end.error?.code).to.equal("handlerFailed");
      expect(end.error?.message).to.include("closed before it replied");
      expect(end.error?.message).to.include("on each of 3 attempts while running alone on the handler");
    }

    // A crash with several jobs in flight counts no attempt: only the poison jobs, alone, use retries.
    const counted = server.logs.filter((line) => line.msg === RETRYING).map((line) => line.jobId);
    expect(counted.filter((jobID) => !poison.includes(jobID as string)), "normal jobs that used a retry").to.deep.equal([]);
    expect(counted.filter((jobID) => jobID === poison[0])).to.have.length(2);
    expect(counted.filter((jobID) => jobID === poison[1])).to.have.length(2);
    const isolated = server.logs.filter((line) => line.msg === ISOLATING).map((line) => line.jobId);
    expect(isolated, "jobs run again alone").to.include.members(poison);
  });

  it("process that replied restarts without growing backoff", () => {
    const exits = server.logs.filter((line) => line.msg === "handler process exited; restarting" && line.type === "shared");
    const delays = exits.map((line) => line.restartInMs as number);

    // Four crashes per poison job, one with its neighbours and three alone.
    expect(exits.length).to.be.within(7, 8);
    // Only the crash of a process that replied to no job since it started doubles the delay. A
    // neighbour's reply resets it, so the lone crashes of one poison job double it three times at most.
    expect(Math.max(...delays), JSON.stringify(delays)).to.be.at.most(800);
  });

  it("type serves jobs in parallel again afterwards", async () => {
    const ids = await Promise.all(Array.from({ length: 4 }, (_, index) => acceptedJob(client, "shared", { sleepMs: 1000, after: index })));
    const ending = Promise.all(ids.map((jobID) => notificationFor(client, jobID)));
    let done = false;
    void ending.finally(() => (done = true));

    // The maximum number of jobs of the type seen running at once while these four ran.
    let maxRunning = 0;
    while (!done) {
      const stats = server.bester.scheduler.stats().find((entry) => entry.type === "shared");
      maxRunning = Math.max(maxRunning, stats?.running ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const ends = await ending;

    expect(ends.map((end) => end.status)).to.deep.equal(["completed", "completed", "completed", "completed"]);
    expect(maxRunning, "jobs running at once").to.equal(4);
  });
});
