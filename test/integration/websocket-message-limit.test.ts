import { expect } from "chai";
import { once } from "node:events";
import { WebSocket } from "ws";
import { websocketTransport } from "../../examples/plugins/websocket-transport.js";
import { startServer, type TestServer } from "../helper.js";

const MAX_MESSAGE_BYTES = 1024;

/** A WebSocket client that records every message and the close status the server sends. */
class RecordingClient {
  readonly messages: Array<Record<string, unknown>> = [];
  readonly closed: Promise<number>;

  private constructor(readonly socket: WebSocket) {
    socket.on("message", (data: Buffer) => this.messages.push(JSON.parse(data.toString("utf8")) as Record<string, unknown>));
    this.closed = once(socket, "close").then(([code]) => code as number);
  }

  static async connect(url: string): Promise<RecordingClient> {
    const socket = new WebSocket(url);
    await once(socket, "open");
    return new RecordingClient(socket);
  }

  /** Resolves once `count` messages have arrived, or rejects after `timeoutMs`. */
  async waitForMessages(count: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      if (Date.now() > deadline) {
        throw new Error(`Got ${this.messages.length} of ${count} messages within ${timeoutMs} ms: ${JSON.stringify(this.messages)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** Returns the text of an unknown request padded to exactly `bytes` bytes. */
function requestOfSize(bytes: number): string {
  const empty = JSON.stringify({ request: "padding", pad: "" });
  return JSON.stringify({ request: "padding", pad: "x".repeat(bytes - empty.length) });
}

describe("websocket transport message limit", () => {
  let server: TestServer;
  let url: string;
  const open: RecordingClient[] = [];

  before(async () => {
    server = await startServer({ registration: true, plugins: [websocketTransport({ host: "127.0.0.1", port: 0, maxMessageBytes: MAX_MESSAGE_BYTES })] });
    url = server.bester.addresses.find((address) => address.startsWith("ws://"))!;
  });

  afterEach(() => {
    for (const client of open.splice(0)) {
      client.socket.terminate();
    }
  });

  after(async () => {
    await server.stop();
  });

  async function connect(): Promise<RecordingClient> {
    const client = await RecordingClient.connect(url);
    open.push(client);
    return client;
  }

  it("accepts a message of exactly the limit", async () => {
    const client = await connect();

    client.socket.send(requestOfSize(MAX_MESSAGE_BYTES));
    await client.waitForMessages(1);

    expect(requestOfSize(MAX_MESSAGE_BYTES)).to.have.length(MAX_MESSAGE_BYTES);
    expect((client.messages[0]!.error as { code: string }).code).to.equal("unknownRequest");
    expect(client.socket.readyState).to.equal(WebSocket.OPEN);
  });

  it("sends frameTooLarge before closing with 1009", async () => {
    const client = await connect();

    client.socket.send(requestOfSize(MAX_MESSAGE_BYTES + 1));
    const code = await client.closed;

    expect(code).to.equal(1009);
    expect(client.messages).to.have.length(1);
    const error = client.messages[0]!.error as { code: string; message: string };
    expect(client.messages[0]!.reply).to.equal("error");
    expect(error.code).to.equal("frameTooLarge");
    expect(error.message).to.include(`length ${MAX_MESSAGE_BYTES + 1} exceeds maxMessageBytes (${MAX_MESSAGE_BYTES})`);
  });

  it("replies to earlier requests before frameTooLarge", async () => {
    const client = await connect();

    client.socket.send(JSON.stringify({ request: "register", account: { username: "wsbig", password: "pw" } }));
    client.socket.send(requestOfSize(MAX_MESSAGE_BYTES * 2));
    client.socket.send(JSON.stringify({ request: "auth", account: { username: "wsbig", password: "pw" } }));
    const code = await client.closed;

    expect(code).to.equal(1009);
    expect(client.messages.map((message) => message.reply)).to.deep.equal(["register", "error"]);
    expect((client.messages[1]!.error as { code: string }).code).to.equal("frameTooLarge");
    expect(server.logs.some((line) => line.msg === "closing connection after a fatal framing error" && line.code === "frameTooLarge")).to.equal(true);
  });

  it("closes over twice the limit without a reply", async () => {
    const client = await connect();

    client.socket.send(requestOfSize(MAX_MESSAGE_BYTES * 2 + 1));
    const code = await client.closed;

    expect(code).to.equal(1009);
    expect(client.messages).to.deep.equal([]);
  });

  it("rejects maxMessageBytes over 1 GiB", () => {
    expect(() => websocketTransport({ maxMessageBytes: 2 ** 31 })).to.throw(/maxMessageBytes/);
  });
});
