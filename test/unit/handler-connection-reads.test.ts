import { expect } from "chai";
import { rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { Job } from "../../core/jobs/job.js";
import { encodeFrame } from "../../core/protocol/frame-codec.js";
import { RawJson, rawOr } from "../../core/protocol/raw-json.js";
import type { HandlerConnection } from "../../plugins/handler-bridge/handler-connection.js";
import { openHandlerConnection } from "../handler-connections.js";
import { makeTempDir } from "../helper.js";

// The handler connections read into one shared buffer and copy each read out of it. These tests
// send replies cut at every kind of boundary and check that no reply contains another's bytes.

function job(id: string): Job {
  return { id, type: "raw", data: id, priority: 0, user: "alice", origin: "127.0.0.1:2222", notify: true, chainLength: 0, attempts: 0, acceptedAt: Date.now() };
}

/** Opens a connection of type "raw" to `socketPath`. */
function open(socketPath: string, index: number, timeoutMs = 5000): Promise<HandlerConnection> {
  return openHandlerConnection(socketPath, { type: "raw", index, timeoutMs });
}

function reply(payload: unknown): Buffer {
  return encodeFrame({ payload, director: { type: "userDelivery", users: ["alice"] } });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A handler whose replies are scripted: `answer` receives the socket and the job's id once the
 * daemon's job frame arrived, and writes whatever bytes the test wants, in whatever pieces.
 * Job frames are small, so each arrives in one read.
 */
function scriptedHandler(socketPath: string, answer: (socket: net.Socket, jobID: string) => Promise<void>): Promise<net.Server> {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => {
      socket.on("data", (chunk: Buffer) => {
        const message = JSON.parse(chunk.subarray(4).toString("utf8")) as { job: { jobID: string } };
        void answer(socket, message.job.jobID);
      });
    });
    server.listen(socketPath, () => resolve(server));
  });
}

describe("handler connection reads (unit)", () => {
  let dir: string;
  const servers: net.Server[] = [];

  before(async () => {
    dir = await makeTempDir("bester-handler-reads-");
  });

  after(async () => {
    for (const server of servers) {
      server.close();
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("joins a reply written one byte at a time", async () => {
    const socketPath = path.join(dir, "bytes.sock");
    servers.push(
      await scriptedHandler(socketPath, async (socket) => {
        const frame = reply({ text: "slow ä" });
        for (const byte of frame) {
          socket.write(Buffer.from([byte]));
          await pause(1);
        }
      }),
    );
    const connection = await open(socketPath, 0);

    const result = await connection.run(job("b1"), () => undefined);

    expect(result.payload).to.deep.equal({ text: "slow ä" });
    connection.stop();
  });

  it("splits progress and reply sent in one write", async () => {
    const socketPath = path.join(dir, "joined.sock");
    servers.push(
      await scriptedHandler(socketPath, async (socket) => {
        socket.write(Buffer.concat([encodeFrame({ progress: 1 }), encodeFrame({ progress: 2 }), reply("done")]));
      }),
    );
    const connection = await open(socketPath, 0);
    const progress: unknown[] = [];

    const result = await connection.run(job("p1"), (value) => progress.push(value));

    expect(progress).to.deep.equal([1, 2]);
    expect(result.payload).to.equal("done");
    connection.stop();
  });

  it("keeps a large payload intact after later reads", async () => {
    // 300 KiB spans several reads of the 64 KiB buffer, and the payload is large enough for its
    // raw bytes to be kept for the outgoing frame. The second reply then overwrites the buffer.
    const big = "a".repeat(100 * 1024) + "b".repeat(100 * 1024) + "c".repeat(100 * 1024);
    const socketPath = path.join(dir, "large.sock");
    servers.push(
      await scriptedHandler(socketPath, async (socket, jobID) => {
        socket.write(jobID === "l1" ? reply(big) : reply("z".repeat(60 * 1024)));
      }),
    );
    const connection = await open(socketPath, 0);

    const first = await connection.run(job("l1"), () => undefined);
    const second = await connection.run(job("l2"), () => undefined);
    const firstRaw = rawOr(first, "payload");

    expect(first.payload).to.equal(big);
    expect(second.payload).to.equal("z".repeat(60 * 1024));
    expect(firstRaw).to.be.instanceOf(RawJson);
    expect((firstRaw as RawJson).bytes.toString("utf8")).to.equal(JSON.stringify(big));
    connection.stop();
  });

  it("keeps two connections' replies apart", async () => {
    const socketPath = path.join(dir, "pair.sock");
    servers.push(
      await scriptedHandler(socketPath, async (socket, jobID) => {
        // Each reply goes in two halves with a pause, so the two connections' reads interleave.
        const frame = reply(`${jobID} `.repeat(1000));
        socket.write(frame.subarray(0, 7));
        await pause(5);
        socket.write(frame.subarray(7));
      }),
    );
    const connections = await Promise.all([open(socketPath, 0), open(socketPath, 1)]);

    const results = await Promise.all(connections.map((connection, index) => connection.run(job(`c${index}`), () => undefined)));

    expect(results[0]!.payload).to.equal("c0 ".repeat(1000));
    expect(results[1]!.payload).to.equal("c1 ".repeat(1000));
    for (const connection of connections) {
      connection.stop();
    }
  });

  it("names a cut-off frame in handlerTimeout", async () => {
    const socketPath = path.join(dir, "cut.sock");
    servers.push(
      await scriptedHandler(socketPath, async (socket) => {
        // The header announces 1000 bytes and only 15 follow, as with a wrong length prefix.
        const header = Buffer.alloc(4);
        header.writeUInt32LE(1000, 0);
        socket.write(Buffer.concat([header, Buffer.from('{"payload":"ab"')]));
      }),
    );
    const connection = await open(socketPath, 0, 200);

    const error = (await connection.run(job("t1"), () => undefined).then(
      () => undefined,
      (caught: unknown) => caught,
    )) as { code?: string; message?: string };

    expect(error.code).to.equal("handlerTimeout");
    expect(error.message).to.include("its length prefix announced a body of 1000 bytes, and only 15 of them had arrived.");
    expect(error.message).to.include("If the handler sent a shorter frame, check the length prefix it writes.");
    expect(error.message).to.include("raise handlers.raw.timeoutMs");
    connection.stop();
  });
});
