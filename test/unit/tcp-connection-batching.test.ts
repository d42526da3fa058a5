import { expect } from "chai";
import net from "node:net";
import { pino } from "pino";
import { FrameDecoder } from "../../core/protocol/frame-codec.js";
import type { ClientSession } from "../../core/client-session.js";
import { TcpConnection } from "../../plugins/transport-tcp/tcp-connection.js";

/** Opens a real loopback socket and returns a TcpConnection on its server side plus the frames its client side decoded. */
async function connectionPair(maxBufferedBytes = 1024 * 1024, outputCoalesceMs = 0): Promise<{ connection: TcpConnection; received: Array<Record<string, unknown>>; chunks: number[]; client: net.Socket; server: net.Server }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  const client = net.createConnection({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port });
  const socket = await accepted;

  const received: Array<Record<string, unknown>> = [];
  // Frames per chunk the client read, which shows how the server grouped its writes.
  const chunks: number[] = [];
  const decoder = new FrameDecoder();
  client.on("data", (chunk: Buffer) => {
    chunks.push(0);
    for (const decoded of decoder.push(chunk)) {
      if (decoded.kind === "frame") {
        received.push(decoded.message);
        chunks[chunks.length - 1]! += 1;
      }
    }
  });
  const connection = new TcpConnection(socket, { maxFrameBytes: 1024 * 1024, maxBufferedBytes, outputCoalesceMs }, pino({ level: "silent" }));
  return { connection, received, chunks, client, server };
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 200 && !condition(); attempt += 1) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("tcp connection write batching (unit)", () => {
  it("keeps frame order across event-loop turns", async () => {
    const { connection, received, client, server } = await connectionPair();

    connection.send({ n: 1 });
    await Promise.resolve();
    connection.send({ n: 2 });
    await new Promise((resolve) => setImmediate(resolve));
    connection.send({ n: 3 });
    setTimeout(() => connection.send({ n: 4 }), 5);
    await waitFor(() => received.length === 4);

    expect(received).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    client.destroy();
    server.close();
  });

  it("joins output that follows a write closely", async () => {
    const { connection, received, chunks, client, server } = await connectionPair(1024 * 1024, 200);
    const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

    // The first frame follows a quiet period, so it leaves at the end of its turn.
    connection.send({ n: 1 });
    await waitFor(() => received.length === 1);
    connection.send({ n: 2 });
    await nextTurn();
    connection.send({ n: 3 });
    await nextTurn();
    connection.send({ n: 4 });
    await waitFor(() => received.length === 4);

    expect(received).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    expect(chunks).to.deep.equal([1, 3]);
    client.destroy();
    server.close();
  });

  it("sends frames queued before close(error) ahead of the error, then closes", async () => {
    const { connection, received, client, server } = await connectionPair();
    const closed = new Promise((resolve) => client.once("close", resolve));

    connection.send({ n: 1 });
    connection.close({ code: "notAuthenticated", message: "bye" });
    client.on("end", () => client.end());
    await closed;

    expect(received).to.deep.equal([{ n: 1 }, { reply: "error", error: { code: "notAuthenticated", message: "bye" } }]);
    server.close();
  });

  it("still cuts off a client whose unsent output passes maxBufferedBytes", async () => {
    const { connection, client, server } = await connectionPair(64 * 1024);
    client.pause();
    const closed = new Promise((resolve) => client.once("close", resolve));
    client.resume();
    client.on("data", () => client.pause());

    for (let index = 0; index < 200; index += 1) {
      connection.send({ filler: "x".repeat(1024) });
    }
    await closed;

    expect(client.destroyed).to.equal(true);
    server.close();
  });
});

describe("tcp connection unsent frames at close (unit)", () => {
  /** Attaches a session that records what the connection reports as unsent when it closes. */
  function recordUnsent(connection: TcpConnection): Promise<object[]> {
    return new Promise((resolve) => {
      connection.attach({ receive: () => undefined, closedByTransport: (unsent: object[]) => resolve(unsent) } as unknown as ClientSession);
    });
  }

  it("reports frames still waiting when the socket is destroyed", async () => {
    const { connection, received, client, server } = await connectionPair(1024 * 1024, 200);
    const unsent = recordUnsent(connection);

    connection.send({ n: 1 });
    await waitFor(() => received.length === 1);
    // Within 200 ms of the first write, so this frame waits in the process.
    connection.send({ n: 2 });
    connection.destroy();

    expect(await unsent).to.deep.equal([{ n: 2 }]);
    client.destroy();
    server.close();
  });

  it("reports frames written after the client ended its side", async () => {
    const { connection, received, client, server } = await connectionPair(1024 * 1024, 200);
    const unsent = recordUnsent(connection);

    connection.send({ n: 1 });
    await waitFor(() => received.length === 1);
    connection.send({ n: 2 });
    // The client half-closes while frame 2 waits, and the server's automatic end() writes it. The
    // server cannot know that the client still reads, so frame 2 counts as unsent as well.
    client.end();

    expect(await unsent).to.deep.equal([{ n: 2 }]);
    await waitFor(() => received.length === 2);
    expect(received).to.deep.equal([{ n: 1 }, { n: 2 }]);
    server.close();
  });

  it("reports nothing when close() wrote every frame", async () => {
    const { connection, received, client, server } = await connectionPair(1024 * 1024, 200);
    const unsent = recordUnsent(connection);
    client.on("end", () => client.end());

    connection.send({ n: 1 });
    await waitFor(() => received.length === 1);
    connection.send({ n: 2 });
    connection.close({ code: "notAuthenticated", message: "bye" });

    expect(await unsent).to.deep.equal([]);
    expect(received.map((message) => message.n ?? message.reply)).to.deep.equal([1, 2, "error"]);
    server.close();
  });
});
