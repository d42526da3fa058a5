import { expect } from "chai";
import { rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { acceptedJob, connectAs, fixtureHandler, makeTempDir, notificationFor, outputFor, RawClient, startServer, type TestServer } from "../helper.js";

// A handler process that writes wrong length prefixes, as handler authors in other languages do,
// and the advice the job's failure message then gives.

describe("handler length prefix mistakes", () => {
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    server = await startServer({
      registration: true,
      handlers: { wrong: fixtureHandler("wrong-length", { connections: 1, retries: 0, timeoutMs: 1000 }) },
    });
    client = await connectAs(server.port, "alice");
  });

  after(async () => {
    client.close();
    await server.stop();
  });

  async function failureOf(data: unknown): Promise<{ code: string; message: string }> {
    const jobID = await acceptedJob(client, "wrong", data);
    const notification = await notificationFor(client, jobID);
    expect(notification.status).to.equal("failed");
    return notification.error!;
  }

  /** The reply body the handler writes for `data`, as its length prefix should count it. */
  function replyBody(data: unknown): Buffer {
    return Buffer.from(JSON.stringify({ payload: data, director: { type: "userDelivery", users: [`alice@127.0.0.1:${server.port}`] } }), "utf8");
  }

  it("character count works for ASCII text", async () => {
    const jobID = await acceptedJob(client, "wrong", { prefix: "characters", text: "plain text" });

    const output = await outputFor(client, jobID);

    expect(output.payload.data).to.equal("plain text");
  });

  it("character count for non-ASCII text names the cause", async () => {
    const error = await failureOf({ prefix: "characters", text: "Grüße aus Zürich" });

    expect(error.code).to.equal("invalidHandlerOutput");
    expect(error.message).to.match(/^Handler "wrong" sent a bad frame: The frame is not valid UTF-8 JSON \(.+\)\. Send one JSON object per frame\. /);
    expect(error.message).to.include(
      "The body contains non-ASCII characters, so the likely cause is a length prefix that counts characters instead of UTF-8 bytes, which cuts the body short. Encode the JSON as UTF-8 first and write the byte count of the result.",
    );
  });

  it("big-endian length leads with the byte order", async () => {
    const data = { prefix: "bigEndian" };
    const length = replyBody(data).length;
    const bigEndian = Buffer.alloc(4);
    bigEndian.writeUInt32BE(length, 0);

    const error = await failureOf(data);

    expect(error.code).to.equal("invalidHandlerOutput");
    expect(error.message).to.equal(
      `Handler "wrong" sent a bad frame: The frame length ${bigEndian.readUInt32LE(0)} exceeds maxFrameBytes (16777216). ` +
        `The 4-byte length prefix is little-endian, and read big-endian the same bytes give ${length}, so the sender most likely writes it in network byte order (big-endian): make it write little-endian. ` +
        "If the frame really is that large, split the data or raise maxFrameBytes on the server.",
    );
  });

  it("overlong length counted in handlerTimeout", async () => {
    const data = { prefix: "announce", bytes: 1000 };
    const arrived = replyBody(data).length;

    const error = await failureOf(data);

    expect(error.code).to.equal("handlerTimeout");
    expect(error.message).to.equal(
      'Handler "wrong" did not reply within 1000 ms. Make the handler faster or raise handlers.wrong.timeoutMs. ' +
        `A frame had started: its length prefix announced a body of 1000 bytes, and only ${arrived} of them had arrived. ` +
        "If the handler sent a shorter frame, check the length prefix it writes.",
    );
  });

  it("handler serves again after each mistake", async () => {
    const jobID = await acceptedJob(client, "wrong", { after: "mistakes" });

    const output = await outputFor(client, jobID);
    const notification = await notificationFor(client, jobID);

    expect(output.payload.data).to.deep.equal({ after: "mistakes" });
    expect(notification.status).to.equal("completed");
  });
});

describe("handler that never replies", () => {
  let server: TestServer;
  let client: RawClient;
  let handler: net.Server;
  let dir: string;

  before(async () => {
    dir = await makeTempDir("bester-never-replies-");
    const socket = path.join(dir, "mute.sock");
    // Replies to "fast" and never to anything else, as a handler that misreads a frame waits for good.
    // For "progress" it sends one progress frame and no reply, as a handler that reads its frames
    // correctly but runs past the timeout does.
    handler = net.createServer((connection) => {
      const decoder = new FrameDecoder();
      connection.on("error", () => undefined);
      connection.on("data", (chunk: Buffer) => {
        for (const decoded of decoder.push(chunk)) {
          if (decoded.kind === "frame" && decoded.message.payload === "fast") {
            const job = decoded.message.job as { from: string };
            connection.write(encodeFrame({ payload: "fast", director: { type: "userDelivery", users: [job.from] } }));
          }
          if (decoded.kind === "frame" && decoded.message.payload === "progress") {
            connection.write(encodeFrame({ progress: { percent: 10 } }));
          }
        }
      });
    });
    await new Promise<void>((resolve) => handler.listen(socket, resolve));
    server = await startServer({ registration: true, handlers: { mute: { socket, connections: 1, retries: 0, timeoutMs: 1000 } } });
    client = await connectAs(server.port, "alice");
  });

  after(async () => {
    client.close();
    await server.stop();
    handler.close();
    await rm(dir, { recursive: true, force: true });
  });

  const hint = "It has not replied to any job on this connection; if it never does, check that it reads the 4-byte length prefix of the daemon's frames as little-endian and serves all its connections at once.";

  it("timeout hints at framing before any reply", async () => {
    const jobID = await acceptedJob(client, "mute", "stuck");
    const notification = await notificationFor(client, jobID);

    expect(notification.error?.message).to.equal(`Handler "mute" did not reply within 1000 ms. Make the handler faster or raise handlers.mute.timeoutMs. ${hint}`);
  });

  it("timeout after a reply gives no framing hint", async () => {
    const fastID = await acceptedJob(client, "mute", "fast");
    await notificationFor(client, fastID);
    const jobID = await acceptedJob(client, "mute", "stuck");
    const notification = await notificationFor(client, jobID);

    expect(notification.error?.message).to.equal('Handler "mute" did not reply within 1000 ms. Make the handler faster or raise handlers.mute.timeoutMs.');
  });

  it("timeout after progress gives no framing hint", async () => {
    // The previous test's timeout discarded the connection, so this job runs on a new one that has
    // not carried a reply.
    const jobID = await acceptedJob(client, "mute", "progress");
    const progress = await client.nextReply("jobProgress");
    const notification = await notificationFor(client, jobID);

    expect(progress.job).to.deep.equal({ jobID, progress: { percent: 10 } });
    expect(notification.error?.code).to.equal("handlerTimeout");
    expect(notification.error?.message).to.equal('Handler "mute" did not reply within 1000 ms. Make the handler faster or raise handlers.mute.timeoutMs.');
  });
});
