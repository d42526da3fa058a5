import { expect } from "chai";
import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { encodeFrame } from "../../core/protocol/frame-codec.js";
import { deliverTo, serveHandler } from "../../plugins/handler-bridge/serve-handler.js";
import { BesterClient } from "../../plugins/transport-tcp/client.js";
import { fixtureHandler, makeTempDir, startServer, waitUntil, type TestServer } from "../helper.js";

/** One line of the abortable fixture's log. */
interface AbortRecord {
  jobID: string;
  name: string;
  message: string;
}

describe("handler SDK abort signal through the daemon", () => {
  let folder: string;
  let abortLog: string;
  let server: TestServer;
  let client: BesterClient;

  /** Returns the jobs whose signal aborted so far. */
  function aborted(): AbortRecord[] {
    if (!existsSync(abortLog)) {
      return [];
    }
    const lines = readFileSync(abortLog, "utf8").split("\n").filter((line) => line !== "");
    return lines.map((line) => JSON.parse(line) as AbortRecord);
  }

  /** Waits until the handler logged the abort of `jobID`, and returns that record. */
  async function abortOf(jobID: string): Promise<AbortRecord> {
    await waitUntil(() => aborted().some((record) => record.jobID === jobID), `the signal of job ${jobID} aborted`);
    return aborted().find((record) => record.jobID === jobID)!;
  }

  before(async () => {
    folder = await makeTempDir("bester-abort-");
    abortLog = path.join(folder, "aborts.jsonl");
    // One connection, so the job that times out runs on the connection the earlier job used.
    const abortable = fixtureHandler("abortable", { connections: 1, timeoutMs: 300, env: { ABORT_LOG: abortLog } });
    server = await startServer({ registration: true, handlers: { abortable } });
    client = await BesterClient.connect({ port: server.port });
    await client.register("alice", "pw");
    await client.auth("alice", "pw");
  });

  after(async () => {
    await client.close();
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it("aborts a job that timed out", async () => {
    const result = await client.run("abortable", { waitForAbort: true });

    expect(result.notification.status).to.equal("failed");
    expect(result.notification.error?.code).to.equal("handlerTimeout");
    const record = await abortOf(result.jobID);
    expect(record.name).to.equal("AbortError");
    expect(record.message).to.equal(`The daemon closed the connection before the reply to job ${result.jobID} was sent, so the reply will be dropped.`);
  });

  it("aborts only the job in flight", async () => {
    const quick = await client.run("abortable", "quick");
    // The timeout closes the connection that the quick job's reply went out on.
    const slow = await client.run("abortable", { waitForAbort: true });
    await abortOf(slow.jobID);

    expect(quick.notification.status).to.equal("completed");
    expect(quick.outputs.map((output) => output.payload.data)).to.deep.equal(["quick"]);
    expect(slow.notification.error?.code).to.equal("handlerTimeout");
    expect(aborted().map((record) => record.jobID)).to.not.include(quick.jobID);
  });
});

describe("handler SDK abort signal", () => {
  let folder: string;
  let handlerServer: net.Server | undefined;

  beforeEach(async () => {
    folder = await makeTempDir("bester-abort-");
  });

  afterEach(async () => {
    handlerServer?.close();
    handlerServer = undefined;
    await rm(folder, { recursive: true, force: true });
  });

  /** Opens a connection to a handler socket, as the daemon does. */
  async function openLink(socket: string): Promise<net.Socket> {
    const link = net.createConnection(socket);
    await new Promise((resolve) => link.once("connect", resolve));
    return link;
  }

  function sendJob(link: net.Socket, jobID: string): void {
    link.write(encodeFrame({ payload: "x", job: { jobID, type: "test", from: "alice@127.0.0.1:2222", priority: 0 } }));
  }

  /** Resolves when a connection to `server` closes, after serveHandler's own close handler ran. */
  function nextClose(server: net.Server): Promise<void> {
    // Added after serveHandler's connection listener, so this close handler runs second.
    return new Promise((resolve) => server.once("connection", (connection: net.Socket) => connection.once("close", resolve)));
  }

  it("keeps the signal after the reply", async () => {
    const socket = path.join(folder, "quick.sock");
    let signal: AbortSignal | undefined;
    handlerServer = await serveHandler({ type: "quick", socket }, async (payload, job, tools) => {
      signal = tools.signal;
      return { payload, director: deliverTo(job.from) };
    });
    const closed = nextClose(handlerServer);

    const link = await openLink(socket);
    sendJob(link, "job1");
    await new Promise((resolve) => link.once("data", resolve));
    link.destroy();
    await closed;

    expect(signal?.aborted).to.equal(false);
  });

  it("starts aborted when read after the close", async () => {
    const socket = path.join(folder, "late.sock");
    let connectionClosed!: () => void;
    const closed = new Promise<void>((resolve) => (connectionClosed = resolve));
    let jobReceived!: () => void;
    const received = new Promise<void>((resolve) => (jobReceived = resolve));
    let passSignal!: (signal: AbortSignal) => void;
    const signalRead = new Promise<AbortSignal>((resolve) => (passSignal = resolve));
    handlerServer = await serveHandler({ type: "late", socket }, async (payload, job, tools) => {
      jobReceived();
      await closed;
      passSignal(tools.signal);
      return { payload, director: deliverTo(job.from) };
    });
    void nextClose(handlerServer).then(connectionClosed);

    const link = await openLink(socket);
    sendJob(link, "job1");
    await received;
    link.destroy();
    const signal = await signalRead;

    expect(signal.aborted).to.equal(true);
    expect((signal.reason as DOMException).name).to.equal("AbortError");
    expect((signal.reason as DOMException).message).to.include("job job1");
  });
});
