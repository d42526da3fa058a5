import { expect } from "chai";
import { rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { Job } from "../../core/jobs/job.js";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { BesterError } from "../../core/errors.js";
import { openHandlerConnection } from "../handler-connections.js";
import { acceptedJob, connectAs, makeTempDir, notificationFor, outputFor, startServer, waitUntil, type TestServer } from "../helper.js";

// A handler may name the job in its reply (job.jobID). A frame that names an earlier job is a late
// second reply to it: it is dropped and must not become the output of the job in flight. A frame
// naming a job the connection never ran is a protocol error.

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function job(id: string): Job {
  return { id, type: "twice", data: id, priority: 0, user: "alice", origin: "127.0.0.1:2222", notify: true, chainLength: 0, attempts: 0, acceptedAt: Date.now() };
}

/** Jobs the twice handler ran, by their data. */
const runs = new Map<string, number>();

/**
 * Starts a raw handler that echoes each job's data with the job's id. For the data "first" it
 * sends the same reply a second time 200 ms later, as a buggy handler would. "second" waits
 * 600 ms, so the stale frame arrives while it is in flight. "wrong" names a job that does not exist.
 */
function serveTwiceHandler(socketPath: string): Promise<net.Server> {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => {
      const decoder = new FrameDecoder();
      socket.on("error", () => undefined);
      socket.on("data", (chunk: Buffer) => {
        for (const decoded of decoder.push(chunk)) {
          if (decoded.kind === "error") {
            socket.destroy();
            return;
          }
          const { payload, job: context } = decoded.message as { payload: string; job: { jobID: string; from: string } };
          runs.set(payload, (runs.get(payload) ?? 0) + 1);
          const jobID = payload === "wrong" ? "no-such-job" : context.jobID;
          const reply = encodeFrame({ payload, director: { type: "userDelivery", users: [context.from] }, job: { jobID } });
          if (payload === "first") {
            socket.write(reply);
            setTimeout(() => socket.writable && socket.write(reply), 200);
          } else {
            setTimeout(() => socket.writable && socket.write(reply), payload === "second" ? 600 : 0);
          }
        }
      });
    });
    server.listen(socketPath, () => resolve(server));
  });
}

describe("handler replies naming another job", function () {
  this.timeout(20_000);
  let dir: string;
  let handler: net.Server;
  let socketPath: string;

  before(async () => {
    dir = await makeTempDir("bester-stale-reply-");
    socketPath = path.join(dir, "twice.sock");
    handler = await serveTwiceHandler(socketPath);
  });

  after(async () => {
    handler.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("connection takes a reply naming its own job", async () => {
    const connection = await openHandlerConnection(socketPath, { type: "twice", index: 0 });

    const result = await connection.run(job("now"), () => undefined);

    expect(result.payload).to.equal("now");
    connection.stop();
  });

  it("connection drops a frame naming an earlier job", async () => {
    const connection = await openHandlerConnection(socketPath, { type: "twice", index: 0 });
    await connection.run(job("first"), () => undefined);

    const result = await connection.run(job("second"), () => undefined);

    expect(result.payload).to.equal("second");
    connection.stop();
  });

  it("connection rejects a frame naming an unknown job", async () => {
    const connection = await openHandlerConnection(socketPath, { type: "twice", index: 0 });

    const error = await connection.run(job("wrong"), () => undefined).then(
      () => undefined,
      (reason: unknown) => reason,
    );

    expect(error).to.be.instanceOf(BesterError);
    expect((error as BesterError).code).to.equal("invalidHandlerOutput");
    expect((error as BesterError).message).to.equal('Handler "twice" sent a frame naming job "no-such-job" while job wrong was in flight. A reply that names its job must give the jobID of the job frame in job.jobID.');
    connection.stop();
  });

  describe("through the server", () => {
    let server: TestServer;

    before(async () => {
      server = await startServer({ registration: true, handlers: { twice: { socket: socketPath, connections: 1, retries: 0 } } });
    });

    after(async () => {
      await server.stop();
    });

    it("drops the late reply and delivers the job's own output", async () => {
      runs.clear();
      const alice = await connectAs(server.port, "alice");
      const bob = await connectAs(server.port, "bob");
      const firstId = await acceptedJob(alice, "twice", "first");
      const secondId = await acceptedJob(bob, "twice", "second");

      const bobOutput = await outputFor(bob, secondId);
      const bobNotification = await notificationFor(bob, secondId);
      const aliceOutput = await outputFor(alice, firstId);
      await pause(300);

      expect(bobOutput.payload.data).to.equal("second");
      expect(bobNotification.status).to.equal("completed");
      expect(aliceOutput.payload.data).to.equal("first");
      expect(alice.history.filter((message) => message.reply === "jobOutput")).to.have.length(1);
      const logged = server.logs.find((line) => line.msg === "handler sent another frame for an earlier job; dropped it and kept waiting for the reply to the job in flight")!;
      expect(logged.jobId).to.equal(secondId);
      expect(logged.frameJobId).to.equal(firstId);
      expect(runs.get("second")).to.equal(1);
      alice.close();
      bob.close();
    });
  });
});
