import { expect } from "chai";
import { once } from "node:events";
import net from "node:net";
import { BesterClient, BesterClientError, type JobNotificationEvent } from "../../plugins/transport-tcp/client.js";
import { runCli } from "../cli-runner.js";
import { fixtureHandler, startServer, waitUntil, type TestServer } from "../helper.js";

/** Starts a TCP server on loopback that accepts connections and never sends a byte, like a hung server. */
async function startSilentServer(): Promise<{ port: number; connections: net.Socket[]; close: () => Promise<void> }> {
  const connections: net.Socket[] = [];
  const server = net.createServer((socket) => {
    connections.push(socket);
    // Reads and drops what the client sends, so a client's close reaches the server, which closes too.
    socket.resume();
    socket.on("error", () => undefined);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    async close() {
      for (const socket of connections) {
        socket.destroy();
      }
      server.close();
      await once(server, "close");
    },
  };
}

describe("client SDK request timeout", () => {
  let silent: Awaited<ReturnType<typeof startSilentServer>>;

  beforeEach(async () => {
    silent = await startSilentServer();
  });

  afterEach(async () => {
    await silent.close();
  });

  it("rejects an unanswered request with timedOut", async () => {
    const client = await BesterClient.connect({ port: silent.port, requestTimeoutMs: 200 });
    const closed = once(client, "close");
    const started = Date.now();

    const error = await client.auth("alice", "pw").catch((caught: unknown) => caught);
    const elapsed = Date.now() - started;

    expect(error).to.be.instanceOf(BesterClientError);
    expect((error as BesterClientError).code).to.equal("timedOut");
    expect((error as BesterClientError).message).to.include("no reply to the auth request within 200 ms");
    expect(elapsed).to.be.at.least(190);
    const [lost] = (await closed) as [BesterClientError];
    expect(lost.code).to.equal("connectionClosed");
    expect(lost.cause).to.equal(error);
    expect(client.closed).to.equal(true);
  });

  it("rejects the requests behind it with connectionClosed", async () => {
    const client = await BesterClient.connect({ port: silent.port, requestTimeoutMs: 200 });

    const first = client.auth("alice", "pw").catch((caught: unknown) => caught);
    const second = client.submit("echo", 1).catch((caught: unknown) => caught);

    expect(((await first) as BesterClientError).code).to.equal("timedOut");
    const behind = (await second) as BesterClientError;
    expect(behind.code).to.equal("connectionClosed");
    expect(behind.message).to.include("no reply within 200 ms");
  });

  it("closes the socket it gave up on", async () => {
    const client = await BesterClient.connect({ port: silent.port, requestTimeoutMs: 200 });
    await waitUntil(() => silent.connections.length === 1, "the connection reached the server");
    const serverSide = silent.connections[0]!;
    const ended = once(serverSide, "close");

    await client.auth("alice", "pw").catch(() => undefined);
    await ended;

    expect(serverSide.destroyed).to.equal(true);
  });

  it("reconnects after a timeout when reconnect is on", async () => {
    const client = await BesterClient.connect({ port: silent.port, requestTimeoutMs: 200, reconnect: { delayMs: 50 } });
    const disconnected = once(client, "disconnect");

    const error = await client.status().catch((caught: unknown) => caught);

    expect((error as BesterClientError).code).to.equal("timedOut");
    await disconnected;
    await waitUntil(() => silent.connections.length === 2, "a second connection after the timeout");
    expect(client.closed).to.equal(false);
    await client.close();
  });

  it("with 0 waits without limit", async () => {
    const client = await BesterClient.connect({ port: silent.port, requestTimeoutMs: 0 });
    let settled = false;

    const pending = client.auth("alice", "pw").then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((resolve) => setTimeout(resolve, 400));

    expect(settled).to.equal(false);
    await client.close();
    await pending;
  });
});

describe("client SDK connect timeout", () => {
  it("rejects a connection that does not finish with connectFailed", async () => {
    // A plain TCP server never replies to the TLS handshake, so the connection never becomes ready.
    const silent = await startSilentServer();
    const started = Date.now();

    const error = await BesterClient.connect({ port: silent.port, tls: { rejectUnauthorized: false }, connectTimeoutMs: 200 }).catch((caught: unknown) => caught);
    const elapsed = Date.now() - started;

    expect(error).to.be.instanceOf(BesterClientError);
    expect((error as BesterClientError).code).to.equal("connectFailed");
    expect((error as BesterClientError).message).to.include("timed out: no connection within 200 ms");
    expect(((error as BesterClientError).cause as NodeJS.ErrnoException).code).to.equal("ETIMEDOUT");
    expect(elapsed).to.be.at.least(190);
    await silent.close();
  });
});

describe("client SDK timeouts against a server", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, handlers: { slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "600" } }) } });
  });

  after(async () => {
    await server.stop();
  });

  it("requests answered in time keep the connection", async () => {
    const client = await BesterClient.connect({ port: server.port, requestTimeoutMs: 300 });
    await client.register("tina", "pw");
    await client.auth("tina", "pw");

    // Idle for longer than the timeout: only a request that waits for its reply can time out.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const jobID = await client.submit("slow", 1);

    expect(jobID).to.be.a("string");
    expect(client.closed).to.equal(false);
    await client.close();
  });

  it("run timeoutMs rejects with timedOut and the job still finishes", async () => {
    const client = await BesterClient.connect({ port: server.port });
    await client.register("ted", "pw");
    await client.auth("ted", "pw");
    const notifications: JobNotificationEvent[] = [];
    client.on("notification", (event) => notifications.push(event));

    const error = await client.run("slow", "late", { timeoutMs: 150 }).catch((caught: unknown) => caught);

    expect(error).to.be.instanceOf(BesterClientError);
    expect((error as BesterClientError).code).to.equal("timedOut");
    const jobID = /Job (\S+) did not finish within 150 ms/.exec((error as Error).message)?.[1];
    expect(jobID, (error as Error).message).to.be.a("string");
    expect((error as BesterClientError).jobID).to.equal(jobID);
    expect(client.listenerCount("output")).to.equal(0);
    await waitUntil(() => notifications.length === 1, "the notification of the job run() gave up on");
    expect(notifications[0]).to.deep.equal({ status: "completed", jobID });
    await client.close();
  });
});

describe("CLI submit --timeout", () => {
  let silent: Awaited<ReturnType<typeof startSilentServer>>;

  before(async () => {
    silent = await startSilentServer();
  });

  after(async () => {
    await silent.close();
  });

  it("gives up on a server that never replies", async () => {
    const started = Date.now();

    const result = await runCli(["submit", "--server", `127.0.0.1:${silent.port}`, "-u", "alice", "-p", "pw", "-t", "echo", "--data", "1", "--timeout", "0.5"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(/^bester: Logging in as alice did not finish within the --timeout of 0\.5 s\..* \[timedOut\]$/m);
    expect(Date.now() - started).to.be.below(20_000);
  });

  it("rejects a timeout that is not a positive number", async () => {
    for (const value of ["0", "-1", "soon"]) {
      const result = await runCli(["submit", "--server", `127.0.0.1:${silent.port}`, "-u", "alice", "-p", "pw", "-t", "echo", "--data", "1", "--timeout", value]);

      expect(result.code, value).to.equal(1);
      expect(result.stderr, value).to.include(`--timeout "${value}" is not a positive number of seconds. [invalidArgument]`);
    }
  });
});

describe("client SDK close against a server that never closes", () => {
  it("drops the connection after requestTimeoutMs", async () => {
    // allowHalfOpen keeps the server's side open after the client's end, like a server that hangs.
    const sockets: net.Socket[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.push(socket);
      socket.resume();
      socket.on("error", () => undefined);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const client = await BesterClient.connect({ port: (server.address() as net.AddressInfo).port, requestTimeoutMs: 300 });
    const started = Date.now();

    await client.close();

    expect(Date.now() - started).to.be.at.least(290);
    expect(client.closed).to.equal(true);
    for (const socket of sockets) {
      socket.destroy();
    }
    server.close();
    await once(server, "close");
  });
});
