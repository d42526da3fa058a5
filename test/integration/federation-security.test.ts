import { generateKeyPairSync } from "node:crypto";
import { expect } from "chai";
import { fixtureHandler, login, RawClient, type TestServer } from "../helper.js";
import { peerHandshake, planServers, sleep, startPlanned, waitForLinkUp, type Plan, type PlannedServer } from "../federation-helper.js";
import { formatPublicKey, type ServerKey } from "../../plugins/federation/keys.js";

type Message = Record<string, unknown>;

describe("federation peer authentication", function () {
  this.timeout(30_000);

  let plan: Plan;
  let planA: PlannedServer;
  let planB: PlannedServer;
  let planD: PlannedServer;
  let a: TestServer;
  let b: TestServer;
  let d: TestServer | undefined;
  let bob: RawClient;
  const clients: RawClient[] = [];

  before(async () => {
    plan = await planServers(3);
    [planA, planB, planD] = plan.servers as [PlannedServer, PlannedServer, PlannedServer];
    a = await startPlanned(planA, [planB], { handlers: { echo: fixtureHandler("echo") } });
    b = await startPlanned(planB, [planA]);
    await waitForLinkUp(a, planB.name);
    bob = await RawClient.connect(b.port);
    await login(bob, "bob");
  });

  after(async () => {
    bob.close();
    for (const client of clients) {
      client.close();
    }
    await Promise.all([a, b, d].filter((server): server is TestServer => server !== undefined).map((server) => server.stop()));
    await plan.cleanup();
  });

  async function raw(): Promise<RawClient> {
    const client = await RawClient.connect(b.port);
    clients.push(client);
    return client;
  }

  /** A raw client that finished the handshake as server A, with A's real key. */
  async function authenticatedAsA(): Promise<RawClient> {
    const client = await raw();
    const { reply } = await peerHandshake(client, planA.name, planA.key, planB.name);
    expect(reply).to.deep.equal({ reply: "peerAuth", peerAuth: { status: "ok" } });
    return client;
  }

  function delivery(id: string, jobID: string, users: string[] = ["bob"]): Message {
    return { request: "jobOutputDelivery", id, job: { jobID, payload: { type: "echo", data: id } }, users };
  }

  async function expectBobGetsNothing(): Promise<void> {
    await sleep(200);
    const output = await bob.next((message) => message.reply === "jobOutput", 100).catch(() => undefined);
    expect(output, `bob received ${JSON.stringify(output)}`).to.equal(undefined);
  }

  it("spoofed delivery without handshake is refused", async () => {
    const client = await raw();

    client.send(delivery("spoof-1", `job1:alice@${planA.name}`));
    const reply = await client.nextReply("error");
    await client.waitClosed();

    expect((reply.error as { code: string }).code).to.equal("notAuthenticated");
    await expectBobGetsNothing();
  });

  it("spoofed handoff without handshake is refused", async () => {
    const client = await raw();

    client.send({ request: "jobHandoff", id: "spoof-2", handoff: { type: "echo", payload: { deliverTo: ["bob"], value: 1 }, from: `alice@${planA.name}` } });
    const reply = await client.nextReply("error");
    await client.waitClosed();

    expect((reply.error as { code: string }).code).to.equal("notAuthenticated");
    await expectBobGetsNothing();
  });

  it("delivery before the handshake finished closes the link", async () => {
    const client = await raw();
    const challenge = await client.request({ request: "peerHello", peerHello: { version: 1, from: planA.name, to: planB.name, nonce: Buffer.alloc(32, 1).toString("base64") } });

    client.send(delivery("early-1", `job1:alice@${planA.name}`));
    const reply = await client.nextReply("error");
    await client.waitClosed();

    expect(challenge.reply).to.equal("peerHello");
    expect((reply.error as { code: string }).code).to.equal("notAuthenticated");
    await expectBobGetsNothing();
  });

  it("peer with a wrong key is refused", async () => {
    const client = await raw();
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const impostor: ServerKey = { privateKey, publicKey, publicKeyText: formatPublicKey(publicKey), created: true };

    const { reply } = await peerHandshake(client, planA.name, impostor, planB.name);
    await client.waitClosed();

    expect(reply.reply).to.equal("error");
    expect((reply.error as { code: string }).code).to.equal("peerAuthFailed");
    expect(b.logs.some((line) => line.msg === "peer handshake failed" && line.peer === planA.name && line.code === "peerAuthFailed")).to.equal(true);
  });

  it("daemon with an unknown key is refused", async () => {
    // D lists B as its peer, but B does not list D.
    d = await startPlanned(planD, [planB]);

    let logged = false;
    for (let waited = 0; waited < 5000 && !logged; waited += 50) {
      await sleep(50);
      logged = d.logs.some((line) => line.msg === "peer handshake failed" && line.peer === planB.name && String(line.reason).includes("unknownPeer"));
    }

    expect(logged).to.equal(true);
    expect(d.logs.some((line) => line.msg === "peer link up")).to.equal(false);
    expect(b.logs.some((line) => line.msg === "peer handshake failed" && line.peer === planD.name && line.code === "unknownPeer")).to.equal(true);
  });

  it("replayed handshake fails", async () => {
    const first = await raw();
    const { recorded } = await peerHandshake(first, planA.name, planA.key, planB.name);
    first.close();

    const replay = await raw();
    const challenge = await replay.request(recorded.hello);
    const reply = await replay.request(recorded.auth);
    await replay.waitClosed();

    expect(challenge.reply).to.equal("peerHello");
    expect(reply.reply).to.equal("error");
    expect((reply.error as { code: string }).code).to.equal("peerAuthFailed");
  });

  it("output naming a third server is rejected", async () => {
    const client = await authenticatedAsA();

    const reply = await client.request(delivery("third-1", "job1:mallory@127.0.0.1:9"));

    expect(reply.reply).to.equal("error");
    expect(reply.id).to.equal("third-1");
    expect((reply.error as { code: string }).code).to.equal("invalidOrigin");
    await expectBobGetsNothing();
  });

  it("handoff naming a third server is rejected", async () => {
    const client = await authenticatedAsA();

    const reply = await client.request({ request: "jobHandoff", id: "third-2", handoff: { type: "echo", payload: 1, from: "mallory@127.0.0.1:9" } });

    expect(reply.id).to.equal("third-2");
    expect((reply.error as { code: string }).code).to.equal("invalidOrigin");
  });

  it("output with a forged grant is rejected", async () => {
    const client = await authenticatedAsA();
    const forged = { from: "mallory@127.0.0.1:9", to: planA.name, type: "echo", id: "g1", signature: Buffer.alloc(64).toString("base64") };

    const reply = await client.request({ ...delivery("third-3", "job1:mallory@127.0.0.1:9"), grant: forged });

    expect((reply.error as { code: string }).code).to.equal("invalidOrigin");
    await expectBobGetsNothing();
  });

  it("invalid recipient name is rejected", async () => {
    const client = await authenticatedAsA();

    const reply = await client.request(delivery("bad-user-1", `job1:alice@${planA.name}`, ["bob smith"]));

    expect(reply.id).to.equal("bad-user-1");
    expect((reply.error as { code: string }).code).to.equal("invalidRequest");
    await expectBobGetsNothing();
  });

  it("duplicate message id is acknowledged once delivered", async () => {
    const client = await authenticatedAsA();
    const message = delivery("dup-1", `job7:alice@${planA.name}`);

    const first = await client.request(message);
    const second = await client.request(message);
    const output = await bob.nextReply("jobOutput");

    expect(first).to.deep.equal({ reply: "ack", id: "dup-1", result: { delivered: 1, unknownUsers: [] } });
    expect(second).to.deep.equal({ reply: "ack", id: "dup-1", duplicate: true });
    expect(output.job).to.deep.equal({ jobID: `job7:alice@${planA.name}`, payload: { type: "echo", data: "dup-1" } });
    await expectBobGetsNothing();
  });
});
