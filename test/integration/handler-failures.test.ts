import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { expect } from "chai";
import type { Bester } from "../../core/bester.js";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { deliverTo } from "../../plugins/handler-bridge/serve-handler.js";
import {
  acceptedJob,
  connectAs,
  fixtureHandler,
  makeTempDir,
  notificationFor,
  outputFor,
  RawClient,
  serveInProcess,
  startServer,
  type InProcessHandler,
  type TestServer,
  waitUntil,
} from "../helper.js";

/** A director plugin whose tap always throws, as a buggy third-party director would. */
const explodingDirector = {
  name: "exploding-director",
  apply(bester: Bester) {
    bester.hooks.onDirector.for("explode").tap("exploding-director", () => {
      throw new Error("kaboom");
    });
  },
};

/**
 * A raw handler in the test process: replies to {"garbage": true} with a frame that is not JSON
 * and echoes anything else back to the submitter.
 */
async function serveRawHandler(socket: string): Promise<net.Server> {
  const server = net.createServer((connection) => {
    const decoder = new FrameDecoder();
    connection.on("data", (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) {
        if (decoded.kind === "error") {
          connection.destroy();
          return;
        }
        const { payload, job } = decoded.message as { payload: { garbage?: boolean }; job: { from: string } };
        if (payload?.garbage) {
          const body = Buffer.from("this is not json");
          const header = Buffer.alloc(4);
          header.writeUInt32LE(body.length, 0);
          connection.write(Buffer.concat([header, body]));
        } else {
          connection.write(encodeFrame({ payload, director: deliverTo(job.from) }));
        }
      }
    });
    connection.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return server;
}

/** A handler started by hand that exits on its first job: it drops the connection and stops listening. */
async function serveExitingHandler(socket: string): Promise<net.Server> {
  const server: net.Server = net.createServer((connection) => {
    connection.once("data", () => {
      connection.destroy();
      server.close();
    });
    connection.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return server;
}

describe("handler failures", () => {
  let server: TestServer;
  let sockets: string;
  let rawHandler: net.Server;
  let lateHandler: InProcessHandler | undefined;
  let client: RawClient;

  before(async () => {
    sockets = await makeTempDir("bester-sockets-");
    rawHandler = await serveRawHandler(path.join(sockets, "raw.sock"));
    await serveExitingHandler(path.join(sockets, "exiting.sock"));
    lateHandler = await serveInProcess(path.join(sockets, "late.sock"), "late", (payload, job) => ({ payload, director: deliverTo(job.from) }));

    server = await startServer({
      registration: true,
      maxChainLength: 3,
      plugins: [explodingDirector],
      handlers: {
        scripted: fixtureHandler("scripted", { connections: 1, retries: 0, timeoutMs: 1000 }),
        flaky: fixtureHandler("scripted", { connections: 1, retries: 1 }),
        loop: fixtureHandler("pipe", { env: { PIPE_TO: "loop" } }),
        oneshot: fixtureHandler("close-after-reply", { connections: 2 }),
        raw: { socket: path.join(sockets, "raw.sock"), connections: 1, retries: 0 },
        late: { socket: path.join(sockets, "late.sock"), connections: 2 },
        // The same handler socket under a type whose jobs wait only briefly for it.
        brief: { socket: path.join(sockets, "late.sock"), connections: 1, unavailableTimeoutMs: 300 },
        exiting: { socket: path.join(sockets, "exiting.sock"), connections: 1, unavailableTimeoutMs: 300 },
      },
    });
    client = await connectAs(server.port, "alice");
  });

  after(async () => {
    client.close();
    await server.stop();
    await lateHandler?.stop();
    await new Promise((resolve) => rawHandler.close(resolve));
    await rm(sockets, { recursive: true, force: true });
  });

  /** Asserts that `type` still runs a job to completion, delivering `data` back. */
  async function expectServing(type: string, data: unknown = { ok: true }): Promise<void> {
    const jobID = await acceptedJob(client, type, data);
    const output = await outputFor(client, jobID);
    const notification = await notificationFor(client, jobID);

    expect(output.payload.data).to.deep.equal(data);
    expect(notification.status).to.equal("completed");
  }

  async function failureOf(type: string, data: unknown): Promise<{ code: string; message: string }> {
    const jobID = await acceptedJob(client, type, data);
    const notification = await notificationFor(client, jobID);
    expect(notification.status).to.equal("failed");
    return notification.error!;
  }

  it("handler error reply fails the job with handlerFailed", async () => {
    const error = await failureOf("scripted", { reply: { error: { message: "disk on fire" } } });

    expect(error.code).to.equal("handlerFailed");
    expect(error.message).to.include("disk on fire");
    await expectServing("scripted");
  });

  it("unknown director fails the job with unknownDirector", async () => {
    const error = await failureOf("scripted", { reply: { payload: 1, director: { type: "carrierPigeon" } } });

    expect(error.code).to.equal("unknownDirector");
    expect(error.message).to.include("carrierPigeon");
    await expectServing("scripted");
  });

  for (const [name, reply] of [
    ["reply without a director", { payload: 1 }],
    ["director without a type", { payload: 1, director: { users: ["alice"] } }],
    ["userDelivery without users", { payload: 1, director: { type: "userDelivery" } }],
    ["handler director without a handler", { payload: 1, director: { type: "handler" } }],
  ] as const) {
    it(`${name} is invalidHandlerOutput`, async () => {
      const error = await failureOf("scripted", { reply });

      expect(error.code).to.equal("invalidHandlerOutput");
      await expectServing("scripted");
    });
  }

  it("error reply that is a string names /error", async () => {
    const error = await failureOf("scripted", { reply: { error: "disk on fire" } });

    expect(error.code).to.equal("invalidHandlerOutput");
    expect(error.message).to.include("(/error must be object)");
    expect(error.message).to.include('{"error": {"message"}}');
    await expectServing("scripted");
  });

  it("handoff to a target without @ shows its form", async () => {
    const error = await failureOf("scripted", { reply: { payload: 1, director: { type: "handoff", handler: "wordcount" } } });

    expect(error.code).to.equal("invalidHandlerOutput");
    expect(error.message).to.include('/handler must have the form "<type>@<host:port>"');
    await expectServing("scripted");
  });

  it("handler frame that is not JSON is invalidHandlerOutput", async () => {
    const error = await failureOf("raw", { garbage: true });

    expect(error.code).to.equal("invalidHandlerOutput");
    expect(error.message).to.match(/^Handler "raw" sent a bad frame: The frame is not valid UTF-8 JSON \(.+\)\. Send one JSON object per frame\.$/);
    await expectServing("raw");
  });

  it("director that throws fails the job with directorFailed", async () => {
    const error = await failureOf("scripted", { reply: { payload: 1, director: { type: "explode" } } });

    expect(error.code).to.equal("directorFailed");
    expect(error.message).to.include("exploding-director");
    await expectServing("scripted");
  });

  it("chain loop is stopped with chainTooLong", async () => {
    const error = await failureOf("loop", { path: [] });

    expect(error.code).to.equal("chainTooLong");
    await expectServing("scripted");
  });

  it("slow handler fails with handlerTimeout", async () => {
    const error = await failureOf("scripted", { sleepMs: 5000 });

    expect(error.code).to.equal("handlerTimeout");
    expect(error.message).to.include("1000 ms");
    await expectServing("scripted");
  });

  it("job queued behind a timed-out job completes", async () => {
    const slowID = await acceptedJob(client, "scripted", { sleepMs: 5000 });
    const nextID = await acceptedJob(client, "scripted", { behind: "slow" });

    const slow = await notificationFor(client, slowID);
    const next = await notificationFor(client, nextID);

    expect(slow.error?.code).to.equal("handlerTimeout");
    expect(next).to.deep.equal({ status: "completed", jobID: nextID });
  });

  it("job queued behind a bad handler frame completes", async () => {
    const badID = await acceptedJob(client, "raw", { garbage: true });
    const nextID = await acceptedJob(client, "raw", { behind: "garbage" });

    const bad = await notificationFor(client, badID);
    const next = await notificationFor(client, nextID);

    expect(bad.error?.code).to.equal("invalidHandlerOutput");
    expect(next).to.deep.equal({ status: "completed", jobID: nextID });
  });

  it("handler crash without retries fails with handlerFailed", async () => {
    const startedBefore = handlerStarts("scripted");
    const logged = server.logs.length;
    const error = await failureOf("scripted", { exit: 1 });

    expect(error.code).to.equal("handlerFailed");
    expect(error.message).to.not.include("attempts");
    await expectServing("scripted");
    expect(handlerStarts("scripted").length).to.equal(startedBefore.length + 1);
    // The restarted process's connection is reported; the supervisor already logged the exit, so no outage warning.
    const lines = server.logs.slice(logged).filter((line) => line.type === "scripted");
    expect(lines.filter((line) => line.msg === "handler connected")).to.have.length(1);
    expect(lines.filter((line) => line.msg === "no handler connection is up; jobs wait until one reconnects")).to.deep.equal([]);
  });

  it("handler crash is retried on the restarted process", async () => {
    const marker = path.join(server.dataDir, "flaky-crashed");
    const startedBefore = handlerStarts("flaky");
    const jobID = await acceptedJob(client, "flaky", { exitUnless: marker });
    const output = await outputFor(client, jobID);
    const notification = await notificationFor(client, jobID);

    const started = handlerStarts("flaky");
    expect(existsSync(marker)).to.equal(true);
    expect(notification.status).to.equal("completed");
    expect(started.length).to.equal(startedBefore.length + 1);
    expect((output.payload.data as { pid: number }).pid).to.equal(started.at(-1));
    await expectServing("flaky");
  });

  it("handler that crashes on every attempt fails after its retries", async () => {
    const startedBefore = handlerStarts("flaky");
    const error = await failureOf("flaky", { exit: 1 });

    expect(error.code).to.equal("handlerFailed");
    expect(error.message).to.include("closed before it replied");
    expect(error.message).to.include("on each of 2 attempts");
    // retries: 1 means two attempts, and each crash makes the supervisor start a new process.
    await waitUntil(() => handlerStarts("flaky").length === startedBefore.length + 2, "the flaky handler started twice more");
    await expectServing("flaky");
    expect(handlerStarts("flaky").length).to.equal(startedBefore.length + 2);
  });

  it("handler that closes after every reply serves many jobs", async () => {
    const logged = server.logs.length;

    for (let index = 0; index < 30; index += 1) {
      await expectServing("oneshot", { index });
    }

    // Each reply closes a connection for a moment, which is the handler working as designed.
    const lines = server.logs.slice(logged).filter((line) => line.type === "oneshot");
    expect(lines.filter((line) => line.msg === "no handler connection is up; jobs wait until one reconnects")).to.deep.equal([]);
    expect(lines.filter((line) => line.msg === "handler connected")).to.deep.equal([]);
  });

  it("handler that closes after every reply serves concurrent jobs", async () => {
    const ids = await Promise.all(Array.from({ length: 20 }, (_, index) => acceptedJob(client, "oneshot", { index })));
    const notifications = await Promise.all(ids.map((jobID) => notificationFor(client, jobID)));

    expect(notifications.map((notification) => notification.status)).to.deep.equal(ids.map(() => "completed"));
    expect(server.logs.filter((line) => line.msg?.toString().includes("retrying") && ids.includes(line.jobId as string))).to.deep.equal([]);
  });

  it("jobs submitted while the handler is down run once it is back", async () => {
    await lateHandler!.stop();
    lateHandler = undefined;
    await waitUntil(() => server.bester.scheduler.stats().find((entry) => entry.type === "late")!.workers === 0, "no late connection is left");

    const ids = [await acceptedJob(client, "late", "a"), await acceptedJob(client, "late", "b")];
    // Down for longer than the log's grace period, so the outage is reported.
    await waitUntil(() => server.logs.some((line) => line.type === "late" && line.msg === "no handler connection is up; jobs wait until one reconnects"), "the outage was logged");
    lateHandler = await serveInProcess(path.join(sockets, "late.sock"), "late", (payload, job) => ({ payload, director: deliverTo(job.from) }));
    const outputs = await Promise.all(ids.map((jobID) => outputFor(client, jobID)));
    const notifications = await Promise.all(ids.map((jobID) => notificationFor(client, jobID)));

    expect(outputs.map((output) => output.payload.data)).to.deep.equal(["a", "b"]);
    expect(notifications.map((notification) => notification.status)).to.deep.equal(["completed", "completed"]);
  });

  it("jobs fail with handlerUnavailable when the handler stays down", async () => {
    await lateHandler!.stop();
    lateHandler = undefined;
    await waitUntil(() => server.bester.scheduler.stats().find((entry) => entry.type === "brief")!.workers === 0, "no brief connection is left");

    const error = await failureOf("brief", "nobody home");
    lateHandler = await serveInProcess(path.join(sockets, "late.sock"), "late", (payload, job) => ({ payload, director: deliverTo(job.from) }));

    expect(error.code).to.equal("handlerUnavailable");
    expect(error.message).to.include(`No handler for type "brief" connected within ${server.bester.config.handlers.brief!.unavailableTimeoutMs} ms (handlers.brief.unavailableTimeoutMs)`);
    // The reconnect backoff can exceed this type's short wait limit, so wait for the connection first.
    await waitUntil(() => server.bester.scheduler.stats().find((entry) => entry.type === "brief")!.workers > 0, "a brief connection is up");
    await expectServing("brief");
  });

  it("handlerUnavailable names a job that ended its handler", async () => {
    const error = await failureOf("exiting", "last words");

    expect(error.code).to.equal("handlerUnavailable");
    expect(error.message).to.include("the connection closed before a reply once, so the job itself may make the handler exit");
  });

  it("remote recipient without federation fails with unknownPeer", async () => {
    const error = await failureOf("scripted", { reply: { payload: 1, director: { type: "userDelivery", users: ["carol@10.0.0.2:2222"] } } });

    expect(error.code).to.equal("unknownPeer");
    expect(error.message).to.include("10.0.0.2:2222");
    await expectServing("scripted");
  });

  it("handoff to a remote server without federation fails with unknownPeer", async () => {
    const error = await failureOf("scripted", { reply: { payload: 1, director: { type: "handoff", handler: "echo@10.0.0.2:2222" } } });

    expect(error.code).to.equal("unknownPeer");
  });

  /** Process ids of the handler processes started for `type`, from the server log. */
  function handlerStarts(type: string): number[] {
    return server.logs.filter((line) => line.msg === "handler process started" && line.type === type).map((line) => line.pid as number);
  }
});
