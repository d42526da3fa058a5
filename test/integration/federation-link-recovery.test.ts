import { expect } from "chai";
import { once } from "node:events";
import net from "node:net";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { channelBinding, createNonce, transcriptText } from "../../plugins/federation/handshake.js";
import { signText } from "../../plugins/federation/keys.js";
import { fixtureHandler, login, RawClient, waitUntil, type TestServer } from "../helper.js";
import { planServers, startPlanned, waitForLinkUp, type Plan, type PlannedServer } from "../federation-helper.js";

type Message = Record<string, unknown>;

/**
 * A peer that finishes the handshake as `self` and then acknowledges nothing until `acknowledge`
 * is set, like a peer host that vanished after the link came up.
 */
class StalledPeer {
  readonly received: Array<{ connection: number; message: Message }> = [];
  connections = 0;
  acknowledge = false;
  /** An error code to reject the next message with, once, as a peer whose store is down would. */
  rejectNext: string | undefined;
  private readonly server: net.Server;
  private readonly sockets: net.Socket[] = [];

  constructor(private readonly self: PlannedServer) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  async listen(): Promise<void> {
    this.server.listen(this.self.port, "127.0.0.1");
    await once(this.server, "listening");
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) {
      socket.destroy();
    }
    this.server.close();
    await once(this.server, "close");
  }

  private accept(socket: net.Socket): void {
    this.connections += 1;
    const connection = this.connections;
    this.sockets.push(socket);
    socket.on("error", () => undefined);
    const decoder = new FrameDecoder(1024 * 1024);
    socket.on("data", (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) {
        if (decoded.kind === "frame") {
          this.receive(socket, connection, decoded.message);
        }
      }
    });
  }

  private receive(socket: net.Socket, connection: number, message: Message): void {
    if (message.request === "peerHello") {
      const hello = message.peerHello as { from: string; nonce: string };
      const nonce = createNonce();
      const transcript = { initiator: hello.from, responder: this.self.name, initiatorNonce: hello.nonce, responderNonce: nonce, channel: channelBinding(undefined) };
      const signature = signText(this.self.key.privateKey, transcriptText(transcript, "responder"));
      socket.write(encodeFrame({ reply: "peerHello", peerHello: { from: this.self.name, nonce, signature } }));
      return;
    }
    if (message.request === "peerAuth") {
      socket.write(encodeFrame({ reply: "peerAuth", peerAuth: { status: "ok" } }));
      return;
    }
    this.received.push({ connection, message });
    if (this.rejectNext) {
      socket.write(encodeFrame({ reply: "error", id: message.id, error: { code: this.rejectNext, message: "The store is unreachable." } }));
      this.rejectNext = undefined;
      return;
    }
    if (this.acknowledge) {
      socket.write(encodeFrame({ reply: "ack", id: message.id, result: {} }));
    }
  }
}

describe("federation acknowledgement timeout", function () {
  this.timeout(30_000);

  let plan: Plan;
  let a: TestServer;
  let peer: StalledPeer;
  let alice: RawClient;

  before(async () => {
    plan = await planServers(2);
    const [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    peer = new StalledPeer(planB);
    await peer.listen();
    a = await startPlanned(planA, [planB], { handlers: { echo: fixtureHandler("echo") }, federation: { ackTimeoutMs: 300 } });
    await waitForLinkUp(a, planB.name);
    alice = await RawClient.connect(a.port);
    await login(alice, "alice");
  });

  after(async () => {
    alice.close();
    await a.stop();
    await peer.close();
    await plan.cleanup();
  });

  it("reconnects and sends the unacknowledged output again", async () => {
    const bob = `bob@${plan.servers[1]!.name}`;

    const reply = await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [bob], value: "hello" } } } });
    expect((reply.submission as { status: string }).status).to.equal("accepted");
    await waitUntil(() => peer.received.length === 1, "the peer received the output");
    const first = peer.received[0]!;
    expect(first.connection).to.equal(1);
    expect(first.message.request).to.equal("jobOutputDelivery");

    // No acknowledgement within 300 ms: the link closes and sends the same message on a new one.
    peer.acknowledge = true;
    await waitUntil(() => peer.received.length === 2, "the output was sent again after a reconnect");
    const second = peer.received[1]!;
    expect(second.connection).to.equal(2);
    expect(second.message.id).to.equal(first.message.id);
    expect(second.message.users).to.deep.equal(["bob"]);

    const down = a.logs.find((line) => line.msg === "peer link down");
    expect(down?.reason).to.equal("sent no acknowledgement within 300 ms (federation.ackTimeoutMs)");

    // Acknowledged now: no further reconnect and no third copy after twice the timeout.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(peer.connections).to.equal(2);
    expect(peer.received).to.have.length(2);
  });

  it("sends a message again after storeUnavailable", async () => {
    const countBefore = peer.received.length;
    const bob = `bob@${plan.servers[1]!.name}`;
    peer.acknowledge = true;
    peer.rejectNext = "storeUnavailable";

    await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [bob], value: "after outage" } } } });
    await waitUntil(() => peer.received.length === countBefore + 2, "the rejected output was sent again", 10_000);
    const [rejected, resent] = peer.received.slice(countBefore);

    expect(resent!.message.id).to.equal(rejected!.message.id);
    expect(resent!.connection).to.equal(rejected!.connection + 1);
    expect(a.logs.some((line) => line.msg === "peer rejected a message; dropped it")).to.equal(false);
    expect(a.logs.some((line) => line.msg === "peer link down" && String(line.reason).includes("(storeUnavailable)"))).to.equal(true);
  });

  it("keeps an acknowledged link open", async () => {
    const connectionsBefore = peer.connections;
    const countBefore = peer.received.length;
    const bob = `bob@${plan.servers[1]!.name}`;

    await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [bob], value: "again" } } } });
    await waitUntil(() => peer.received.length === countBefore + 1, "the peer received the second output");
    await new Promise((resolve) => setTimeout(resolve, 600));

    expect(peer.connections).to.equal(connectionsBefore);
    expect(peer.received.length).to.equal(countBefore + 1);
  });
});

describe("federation reconnect when the peer links in", function () {
  this.timeout(30_000);

  let plan: Plan;
  const servers: TestServer[] = [];

  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await plan.cleanup();
  });

  it("cuts the outgoing link's backoff short", async () => {
    plan = await planServers(2);
    const [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    // A starts alone, so its first attempt fails and it waits 2-4 s before the next one.
    const a = await startPlanned(planA, [planB], { federation: { reconnect: { minDelayMs: 4000, maxDelayMs: 8000 } } });
    servers.push(a);
    await waitUntil(() => a.logs.some((line) => line.msg === "peer link retry scheduled"), "A's first attempt failed");
    const retry = a.logs.find((line) => line.msg === "peer link retry scheduled")!;

    const b = await startPlanned(planB, [planA]);
    servers.push(b);
    await waitForLinkUp(a, planB.name);

    const up = a.logs.find((line) => line.msg === "peer link up")!;
    expect(a.logs.some((line) => line.msg === "peer linked to this server; reconnecting now" && line.peer === planB.name)).to.equal(true);
    expect(retry.delayMs as number).to.be.at.least(2000);
    // The link came up before the scheduled retry would have started.
    expect((up.time as number) - (retry.time as number)).to.be.below(retry.delayMs as number);
  });
});

describe("federation link to a peer that stops", function () {
  this.timeout(30_000);

  let plan: Plan;
  let a: TestServer | undefined;

  after(async () => {
    await a?.stop();
    await plan.cleanup();
  });

  it("logs that the peer shut down", async () => {
    plan = await planServers(2);
    const [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    a = await startPlanned(planA, [planB]);
    const b = await startPlanned(planB, [planA]);
    await waitForLinkUp(a, planB.name);

    await b.stop();
    await waitUntil(() => a!.logs.some((line) => line.msg === "peer link down" && line.peer === planB.name), "A's link to B went down");
    const down = a.logs.find((line) => line.msg === "peer link down" && line.peer === planB.name)!;

    expect(down.reason).to.equal(`reported shuttingDown: "${planB.name} is shutting down. Messages for it stay in the sender's outbox until it is back."`);
  });
});
