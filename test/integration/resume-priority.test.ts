import { writeFile, rm } from "node:fs/promises";
import path from "node:path";
import { expect } from "chai";
import { acceptedJob, connectAs, fixtureHandler, login, makeTempDir, RawClient, startServer } from "../helper.js";

// Jobs that a SQLite store kept over a restart, queued behind a job that held the type's only
// handler connection, and the order they run in after the next start.

describe("jobs resumed after a restart", function () {
  this.timeout(30_000);
  let folder: string;

  before(async () => {
    folder = await makeTempDir("bester-resume-priority-");
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("run by priority, not id", async () => {
    const releaseFile = path.join(folder, "release");
    const config = {
      store: `sqlite://${path.join(folder, "store.sqlite")}`,
      registration: true,
      shutdown: { drainTimeoutMs: 100 },
      handlers: { gate: fixtureHandler("gate", { connections: 1 }) },
    };
    const first = await startServer(config);
    const alice = await connectAs(first.port, "alice");
    // The held job has the lowest id and the lowest priority. It keeps the connection busy, so the
    // others stay queued until the server stops, and all of them stay stored.
    const heldID = await acceptedJob(alice, "gate", { holdUntil: releaseFile, label: "held p0" });
    await alice.next((message) => message.reply === "jobProgress");
    const priorities = [1, 5, 3, 5];
    const ids = [heldID];
    for (const [index, priority] of priorities.entries()) {
      ids.push(await acceptedJob(alice, "gate", { label: `p${priority}#${index}` }, { priority }));
    }
    alice.close();
    await first.stop();

    await writeFile(releaseFile, "go");
    const second = await startServer({ ...config, listen: { host: "127.0.0.1", port: first.port } });
    const resumed = second.logs.find((entry) => entry.msg === "resumed jobs left unfinished by the previous run");
    const aliceAgain = await RawClient.connect(second.port);
    await login(aliceAgain, "alice", "secret", false);
    const order: string[] = [];
    for (let index = 0; index < ids.length; index += 1) {
      const output = await aliceAgain.nextReply("jobOutput");
      order.push((output.job as { payload: { data: { label: string } } }).payload.data.label);
    }

    expect(resumed?.resumed).to.equal(ids.length);
    expect(order).to.deep.equal(["p5#1", "p5#3", "p3#2", "p1#0", "held p0"]);
    aliceAgain.close();
    await second.stop();
  });
});
