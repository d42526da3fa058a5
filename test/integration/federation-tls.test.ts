import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { fixtureHandler, freePort, login, RawClient, waitUntil, type TestServer } from "../helper.js";
import { planServers, startPlanned, waitForLinkUp, type Plan, type PlannedServer } from "../federation-helper.js";

const run = promisify(execFile);

describe("federation over TLS", function () {
  this.timeout(30_000);

  let plan: Plan;
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    plan = await planServers(2);
    const [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    const key = path.join(plan.dir, "tls-key.pem");
    const cert = path.join(plan.dir, "tls-cert.pem");
    // One self-signed certificate for 127.0.0.1 serves as both servers' certificate and as the CA.
    await run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=bester-test", "-addext", "subjectAltName=IP:127.0.0.1"]);
    const tls = { key, cert, ca: cert };
    const tlsPortA = await freePort();
    const tlsPortB = await freePort();

    a = await startPlanned(planA, [planB], {
      handlers: { echo: fixtureHandler("echo") },
      federation: { tls, listen: { host: "127.0.0.1", port: tlsPortA }, peers: [{ name: planB.name, publicKey: planB.key.publicKeyText, address: `127.0.0.1:${tlsPortB}` }] },
    });
    b = await startPlanned(planB, [planA], {
      federation: { tls, listen: { host: "127.0.0.1", port: tlsPortB }, peers: [{ name: planA.name, publicKey: planA.key.publicKeyText, address: `127.0.0.1:${tlsPortA}` }] },
    });
    await waitForLinkUp(a, planB.name);
    await waitForLinkUp(b, planA.name);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await plan.cleanup();
  });

  it("TLS link delivers remote output", async () => {
    const alice = await RawClient.connect(a.port);
    const bob = await RawClient.connect(b.port);
    await login(alice, "alice");
    await login(bob, "bob");

    const submission = await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [`bob@${b.bester.serverName}`], value: "over tls" } } } });
    const jobID = (submission.submission as { jobID: string }).jobID;
    const output = await bob.nextReply("jobOutput");
    const notification = await alice.nextReply("jobNotification");
    alice.close();
    bob.close();

    expect(output.job).to.deep.equal({ jobID: `${jobID}:alice@${a.bester.serverName}`, payload: { type: "echo", data: "over tls" } });
    expect(notification.job).to.deep.equal({ status: "completed", jobID });
    expect(a.logs.some((line) => line.msg === "peer link up" && line.peer === b.bester.serverName && line.tls === true)).to.equal(true);
    expect(b.logs.some((line) => line.msg === "incoming peer link up" && line.peer === a.bester.serverName && line.tls === true)).to.equal(true);
  });

  it("stopping tells the TLS peer why", async () => {
    const name = b.bester.serverName;

    await b.stop();
    await waitUntil(() => a.logs.some((line) => line.msg === "peer link down" && line.peer === name), "A's link to B went down");
    const down = a.logs.find((line) => line.msg === "peer link down" && line.peer === name)!;

    expect(down.reason).to.equal(`reported shuttingDown: "${name} is shutting down. Messages for it stay in the sender's outbox until it is back."`);
  });
});
