import path from "node:path";
import { expect } from "chai";
import { acceptedJob, connectAs, fixtureHandler, notificationFor, outputFor, type TestServer } from "../helper.js";
import { planServers, RunningServers, type Plan, type PlannedServer } from "../federation-helper.js";
import { startRedis, type RedisServer } from "../redis-server.js";

describe("federation outbox of a removed peer", function () {
  this.timeout(30_000);

  let plan: Plan;
  let redis: RedisServer | undefined;
  const running = new RunningServers();

  beforeEach(async () => {
    plan = await planServers(2);
  });

  afterEach(async () => {
    await running.stopAll();
    await redis?.stop();
    redis = undefined;
    await plan.cleanup();
  });

  const start = (self: PlannedServer, peers: PlannedServer[], store: string) => running.start(self, peers, { store, handlers: { echo: fixtureHandler("echo") } });
  const stop = (server: TestServer) => running.stop(server);

  /** Stores an output for B while B is down, removes B from A's config, then configures it again. */
  async function removeAndRestorePeer(storeA: string, storeB: string): Promise<void> {
    const [planA, planB] = plan.servers as [PlannedServer, PlannedServer];

    // B is down, so A keeps the output for bob@B in its outbox.
    let a = await start(planA, [planB], storeA);
    const alice = await connectAs(a.port, "alice");
    const jobID = await acceptedJob(alice, "echo", { deliverTo: [`bob@${planB.name}`], value: "kept" });
    expect((await notificationFor(alice, jobID)).status).to.equal("completed");
    alice.close();
    await stop(a);

    // Without B in its config, A reports the stored message at start.
    a = await start(planA, [], storeA);
    const waiting = a.logs.find((line) => String(line.msg).startsWith("peer messages wait in the outbox"));
    expect(waiting?.peer).to.equal(planB.name);
    expect(waiting?.pending).to.equal(1);
    expect(waiting?.level).to.equal(40);
    expect(waiting?.msg).to.include("or delete them with `bester outbox drop <peer>`");
    await stop(a);

    // With B configured again, A sends the message once B is up.
    const b = await start(planB, [planA], storeB);
    const bob = await connectAs(b.port, "bob");
    a = await start(planA, [planB], storeA);
    const output = await outputFor(bob, jobID);
    bob.close();

    expect(output).to.deep.equal({ jobID: `${jobID}:alice@${planA.name}`, payload: { type: "echo", data: "kept" } });
    expect(a.logs.some((line) => String(line.msg).startsWith("peer messages wait in the outbox"))).to.equal(false);
  }

  it("SQLite store keeps messages until the peer returns", async () => {
    await removeAndRestorePeer(`sqlite://${path.join(plan.dir, "a.sqlite")}`, `sqlite://${path.join(plan.dir, "b.sqlite")}`);
  });

  it("Redis store keeps messages until the peer returns", async () => {
    redis = await startRedis();
    await removeAndRestorePeer(`${redis.url}/1`, `${redis.url}/2`);
  });
});
