import { expect } from "chai";
import { fixtureHandler, login, loginAndLeave, RawClient, startServer, type TestServer } from "../helper.js";

describe("backpressure and limits", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({
      registration: true,
      handlers: { unreliable: fixtureHandler("unreliable", { connections: 4 }) },
      limits: { maxBufferedBytes: 1024 * 1024 },
    });
  });

  after(async () => {
    await server.stop();
  });

  it("cuts off a client that stops reading", async () => {
    const client = await RawClient.connect(server.port);
    await login(client, "slow");
    client.socket.pause();

    // 64 outputs of 512 KiB: far more than the kernel buffers plus the 1 MiB limit.
    for (let index = 0; index < 64; index += 1) {
      client.send({ request: "newJob", job: { payload: { type: "unreliable", data: { big: 512 * 1024 } } } });
    }

    const deadline = Date.now() + 20_000;
    while (!server.logs.some((entry) => entry.msg === "client is not reading its replies; disconnecting it") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const cut = server.logs.find((entry) => entry.msg === "client is not reading its replies; disconnecting it");
    expect(cut, "disconnect log line").to.not.equal(undefined);
    expect(cut!.bufferedBytes as number).to.be.above(1024 * 1024);

    client.socket.resume();
    await client.waitClosed(10_000);
    expect(client.closed).to.equal(true);
    expect(server.bester.sessions.isOnline("slow")).to.equal(false);
  });

  it("sends a stored backlog larger than the limit", async () => {
    await loginAndLeave(server, "bulky");
    // Eight outputs of 512 KiB wait for bulky: 4 MiB against the 1 MiB limit.
    const sender = await RawClient.connect(server.port);
    await login(sender, "sender");
    for (let index = 0; index < 8; index += 1) {
      await sender.request({ request: "newJob", job: { payload: { type: "unreliable", data: { big: 512 * 1024, deliverTo: ["bulky"] } } } });
      await sender.nextReply("jobNotification");
    }

    const again = await RawClient.connect(server.port);
    await login(again, "bulky", "secret", false);
    const sizes: number[] = [];
    for (let index = 0; index < 8; index += 1) {
      const output = await again.nextReply("jobOutput");
      sizes.push(((output.job as { payload: { data: string } }).payload.data).length);
    }

    expect(sizes).to.deep.equal(Array(8).fill(512 * 1024));
    expect(again.closed).to.equal(false);
    sender.close();
    again.close();
  });

  it("closes a connection that never authenticates", async () => {
    const limited = await startServer({ limits: { authTimeoutMs: 300 } });
    const client = await RawClient.connect(limited.port);
    const reply = await client.nextReply("error", 5000);
    await client.waitClosed();
    await limited.stop();

    expect((reply.error as { code: string }).code).to.equal("notAuthenticated");
    expect(limited.logs.some((entry) => entry.msg === "closing connection that did not authenticate in time")).to.equal(true);
  });

  it("drops connections beyond maxConnections", async () => {
    const limited = await startServer({ limits: { maxConnections: 5 } });
    const clients = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(limited.port)));
    const extra = await RawClient.connect(limited.port);
    await extra.waitClosed();
    for (const client of clients) {
      client.close();
    }
    await limited.stop();

    expect(extra.closed).to.equal(true);
    expect(limited.logs.some((entry) => entry.msg === "connection limit reached; dropped a connection")).to.equal(true);
  });

  it("rejects an oversized frame from its header", async () => {
    const client = await RawClient.connect(server.port);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(server.bester.config.maxFrameBytes + 1, 0);
    client.writeRaw(header);
    const reply = await client.nextReply("error");
    await client.waitClosed();

    expect((reply.error as { code: string }).code).to.equal("frameTooLarge");
  });
});
