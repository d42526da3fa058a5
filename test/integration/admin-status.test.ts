import { expect } from "chai";
import type { BesterPlugin } from "../../core/plugin.js";
import type { ServerStatus } from "../../core/status.js";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { BesterClient, BesterClientError } from "../../plugins/transport-tcp/client.js";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

/** A plugin that adds a peer table the way the federation plugin does. */
const peerSection: BesterPlugin = {
  name: "test-peer-section",
  apply(bester) {
    bester.hooks.onStatus.tap("test-peer-section", (status) => {
      status.sections.peers = { title: "Peer links", rows: [{ peer: "10.0.0.2:2222", state: "up", tls: false, backlog: 3, attempts: 0 }] };
      return status;
    });
  },
};

describe("admin status request", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") }, plugins: [peerSection] });
    const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
    await accounts.add("root", "rootpw", { admin: true });
    await accounts.add("alice", "alicepw");
  });

  after(async () => {
    await server.stop();
  });

  it("reports job types, users and plugin sections to an admin", async () => {
    const alice = await BesterClient.connect({ port: server.port });
    await alice.auth("alice", "alicepw");
    await alice.run("echo", "one");
    await alice.run("echo", "two");

    const admin = await BesterClient.connect({ port: server.port });
    await admin.auth("root", "rootpw");
    const reply = await admin.request({ request: "status" });
    const status = reply.status as ServerStatus;

    expect(reply.reply).to.equal("status");
    expect(status.serverName).to.equal(server.bester.serverName);
    expect(status.uptimeSeconds).to.be.a("number").and.at.least(0);
    expect(Date.parse(status.startedAt)).to.equal(server.bester.startedAt);
    expect(status.jobTypes).to.deep.equal([{ type: "echo", queued: 0, running: 0, workers: 4, completed: 2, failed: 0 }]);
    expect(status.users).to.deep.equal([
      { user: "alice", connections: 1 },
      { user: "root", connections: 1 },
    ]);
    expect(status.jobsPerSecond.sinceStart).to.be.greaterThan(0);
    expect(status.jobsPerSecond.lastMinute).to.be.greaterThan(0);
    expect(Object.keys(status.sections).sort()).to.deep.equal(["handlers", "peers"]);
    expect(status.sections.peers).to.deep.equal({ title: "Peer links", rows: [{ peer: "10.0.0.2:2222", state: "up", tls: false, backlog: 3, attempts: 0 }] });
    await alice.close();
    await admin.close();
  });

  it("reports handler processes and their restarts", async () => {
    const admin = await BesterClient.connect({ port: server.port });
    await admin.auth("root", "rootpw");
    const handlerRows = async () => ((await admin.request({ request: "status" })).status as ServerStatus).sections.handlers!.rows;
    const before = (await handlerRows())[0]!;

    process.kill(before.pid as number, "SIGKILL");
    let after = before;
    const deadline = Date.now() + 10_000;
    while ((after.state !== "running" || after.pid === before.pid) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      after = (await handlerRows())[0]!;
    }

    expect(before.type).to.equal("echo");
    expect(before.state).to.equal("running");
    expect(before.pid).to.be.a("number");
    expect(before.uptimeSeconds).to.be.a("number").and.at.least(0);
    expect(before.restarts).to.equal(0);
    expect(before.lastExit).to.equal(null);
    expect(after.restarts).to.equal(1);
    expect(after.lastExit).to.equal("signal SIGKILL");
    await admin.close();
  });

  it("counts failed jobs per type", async () => {
    const client = await BesterClient.connect({ port: server.port });
    await client.auth("alice", "alicepw");
    const before = server.bester.scheduler.stats()[0]!.failed;

    const result = await client.run("echo", { deliverTo: ["nobody-here"], value: 1 });

    expect(result.notification.status).to.equal("failed");
    expect(server.bester.scheduler.stats()[0]!.failed).to.equal(before + 1);
    await client.close();
  });

  it("rejects an ordinary user with notPermitted", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "alice", "alicepw", false);

    const reply = await client.request({ request: "status", tag: "s1" });

    expect(reply.reply).to.equal("error");
    expect((reply.error as { code: string }).code).to.equal("notPermitted");
    expect(reply.tag).to.equal("s1");
    client.close();
  });

  it("rejects a request before auth with notAuthenticated", async () => {
    const client = await RawClient.connect(server.port);

    const reply = await client.request({ request: "status" });

    expect((reply.error as { code: string }).code).to.equal("notAuthenticated");
    client.close();
  });

  it("rejects unknown fields with invalidRequest", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "root", "rootpw", false);

    const reply = await client.request({ request: "status", verbose: true });

    expect((reply.error as { code: string }).code).to.equal("invalidRequest");
    client.close();
  });

  it("client status() rejects with notPermitted", async () => {
    const client = await BesterClient.connect({ port: server.port });
    await client.auth("alice", "alicepw");

    const error = await client.status().catch((caught: unknown) => caught);

    expect(error).to.be.instanceOf(BesterClientError);
    expect((error as BesterClientError).code).to.equal("notPermitted");
    expect((error as BesterClientError).message).to.include(`bester user admin alice`);
    await client.close();
  });

  it("client status() returns the report for an admin", async () => {
    const client = await BesterClient.connect({ port: server.port });
    await client.auth("root", "rootpw");

    const status = await client.status();

    expect(status.jobTypes.map((entry) => entry.type)).to.deep.equal(["echo"]);
    expect(status.sections).to.have.keys("handlers", "peers");
    await client.close();
  });
});
