import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { deliverTo, handOff, pipeTo, serveHandler, type HandlerFunction } from "../../plugins/handler-bridge/serve-handler.js";
import { BesterClient } from "../../plugins/transport-tcp/client.js";
import { fixtureHandler, startServer } from "../helper.js";

/** A daemon-side view of one handler connection: send job frames, read reply frames. */
class HandlerLink {
  private decoder = new FrameDecoder();
  private frames: Array<Record<string, unknown>> = [];
  private waiting: Array<() => void> = [];

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      for (const decoded of this.decoder.push(chunk)) {
        if (decoded.kind === "frame") {
          this.frames.push(decoded.message);
        }
      }
      this.waiting.splice(0).forEach((wake) => wake());
    });
  }

  static async open(socketPath: string): Promise<HandlerLink> {
    const socket = net.createConnection(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new HandlerLink(socket);
  }

  sendJob(payload: unknown, jobID = "job1"): void {
    this.socket.write(encodeFrame({ payload, job: { jobID, type: "test", from: "alice@127.0.0.1:2222", priority: 0 } }));
  }

  /** Resolves with the next frame from the handler. */
  async next(): Promise<Record<string, unknown>> {
    while (this.frames.length === 0) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    return this.frames.shift()!;
  }

  close(): void {
    this.socket.destroy();
  }
}

describe("handler SDK serveHandler", () => {
  let folder: string;
  let servers: net.Server[] = [];

  beforeEach(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-handler-sdk-"));
  });

  afterEach(async () => {
    for (const server of servers) {
      server.close();
    }
    servers = [];
    await rm(folder, { recursive: true, force: true });
  });

  async function serve(handle: HandlerFunction): Promise<string> {
    const socket = path.join(folder, "handler.sock");
    servers.push(await serveHandler({ type: "test", socket }, handle));
    return socket;
  }

  it("fails unencodable replies and keeps serving", async () => {
    const socket = await serve((payload: string, job, tools) => {
      if (payload === "bigint") {
        tools.progress(10n);
        return { payload: 10n, director: deliverTo(job.from) };
      }
      return { payload: payload.toUpperCase(), director: deliverTo(job.from) };
    });
    const link = await HandlerLink.open(socket);

    link.sendJob("bigint", "job1");
    const failed = await link.next();
    link.sendJob("next", "job2");
    const next = await link.next();

    expect(failed).to.have.nested.property("error.message").that.matches(/^The handler's reply could not be encoded as JSON \(.*BigInt.*\)\.$/);
    expect(next).to.deep.equal({ payload: "NEXT", director: { type: "userDelivery", users: ["alice@127.0.0.1:2222"] } });
    link.close();
  });

  it("replies with payload and director", async () => {
    const socket = await serve((payload: string, job) => ({ payload: payload.toUpperCase(), director: deliverTo(job.from) }));
    const link = await HandlerLink.open(socket);

    link.sendJob("hello");

    expect(await link.next()).to.deep.equal({ payload: "HELLO", director: { type: "userDelivery", users: ["alice@127.0.0.1:2222"] } });
    link.close();
  });

  it("turns a thrown Error into an error reply", async () => {
    const socket = await serve(() => {
      throw new Error("bad input");
    });
    const link = await HandlerLink.open(socket);

    link.sendJob("x");

    expect(await link.next()).to.deep.equal({ error: { message: "bad input" } });
    link.close();
  });

  it("turns a rejected promise into an error reply", async () => {
    const socket = await serve(async () => Promise.reject("plain string reason"));
    const link = await HandlerLink.open(socket);

    link.sendJob("x");

    expect(await link.next()).to.deep.equal({ error: { message: "plain string reason" } });
    link.close();
  });

  it("sends progress frames before the reply", async () => {
    const socket = await serve(async (payload: number, job, tools) => {
      tools.progress({ percent: 50 });
      tools.progress("almost");
      return { payload: payload + 1, director: pipeTo("next") };
    });
    const link = await HandlerLink.open(socket);

    link.sendJob(41);

    expect(await link.next()).to.deep.equal({ progress: { percent: 50 } });
    expect(await link.next()).to.deep.equal({ progress: "almost" });
    expect(await link.next()).to.deep.equal({ payload: 42, director: { type: "handler", handler: "next" } });
    link.close();
  });

  it("sends undefined progress as null", async () => {
    const socket = await serve((payload: number, job, tools) => {
      tools.progress(undefined);
      return { payload, director: pipeTo("next") };
    });
    const link = await HandlerLink.open(socket);

    link.sendJob(1);

    expect(await link.next()).to.deep.equal({ progress: null });
    expect(await link.next()).to.deep.equal({ payload: 1, director: { type: "handler", handler: "next" } });
    link.close();
  });

  it("leaves out progress after the reply", async () => {
    const socket = await serve((payload: string, job, tools) => {
      if (payload === "first") {
        // Reported after the reply, while the connection's next job runs.
        setTimeout(() => tools.progress("late"), 20);
        return { payload, director: pipeTo("next") };
      }
      return new Promise((resolve) => setTimeout(() => resolve({ payload, director: pipeTo("next") }), 60));
    });
    const link = await HandlerLink.open(socket);

    link.sendJob("first", "a");
    const first = await link.next();
    link.sendJob("second", "b");
    const second = await link.next();

    expect(first.payload).to.equal("first");
    expect(second).to.deep.equal({ payload: "second", director: { type: "handler", handler: "next" } });
    link.close();
  });

  it("fails a job whose function returns nothing", async () => {
    const socket = await serve((() => undefined) as unknown as HandlerFunction);
    const link = await HandlerLink.open(socket);

    link.sendJob("x");

    expect(await link.next()).to.deep.equal({ error: { message: "The handler function returned undefined instead of { payload, director }." } });
    link.close();
  });

  it("describes a thrown plain object as JSON", async () => {
    const socket = await serve(() => {
      throw { reason: "quota", left: 0 };
    });
    const link = await HandlerLink.open(socket);

    link.sendJob("x");

    expect(await link.next()).to.deep.equal({ error: { message: '{"reason":"quota","left":0}' } });
    link.close();
  });

  it("answers jobs on one connection in order", async () => {
    const socket = await serve(async (payload: { delayMs: number; id: string }) => {
      await new Promise((resolve) => setTimeout(resolve, payload.delayMs));
      return { payload: payload.id, director: handOff("done@10.0.0.2:2222") };
    });
    const link = await HandlerLink.open(socket);

    link.sendJob({ delayMs: 50, id: "first" }, "a");
    link.sendJob({ delayMs: 0, id: "second" }, "b");

    expect((await link.next()).payload).to.equal("first");
    expect((await link.next()).payload).to.equal("second");
    link.close();
  });

  it("serves several connections at once", async () => {
    // Each job waits until all three are in flight, so this passes only with concurrent connections.
    const connections = 3;
    let inFlight = 0;
    let release!: () => void;
    const allArrived = new Promise<void>((resolve) => (release = resolve));
    const socket = await serve(async (payload: number) => {
      inFlight += 1;
      if (inFlight === connections) {
        release();
      }
      await allArrived;
      return { payload: payload * 10, director: deliverTo("alice") };
    });
    const links = await Promise.all(Array.from({ length: connections }, () => HandlerLink.open(socket)));

    links.forEach((link, index) => link.sendJob(index));
    const replies = await Promise.all(links.map((link) => link.next()));

    expect(replies.map((reply) => reply.payload)).to.deep.equal([0, 10, 20]);
    expect(inFlight).to.equal(connections);
    links.forEach((link) => link.close());
  });

  it("rejects a missing socket path", async () => {
    const saved = process.env.BESTER_SOCKET;
    delete process.env.BESTER_SOCKET;
    try {
      const error = await serveHandler({ type: "nosocket" }, () => ({ payload: null, director: deliverTo("alice") })).catch((caught: unknown) => caught);

      expect(error).to.be.instanceOf(Error);
      expect((error as Error).message).to.include('No socket for handler "nosocket"');
    } finally {
      if (saved !== undefined) {
        process.env.BESTER_SOCKET = saved;
      }
    }
  });
});

describe("handler SDK through the daemon", () => {
  it("fails the job with handlerFailed when the handler throws", async () => {
    const server = await startServer({ registration: true, handlers: { throws: fixtureHandler("throws") } });
    try {
      const client = await BesterClient.connect({ port: server.port });
      await client.register("alice", "pw");
      await client.auth("alice", "pw");

      const result = await client.run("throws", { n: 1 });

      expect(result.outputs).to.deep.equal([]);
      expect(result.notification.status).to.equal("failed");
      expect(result.notification.error?.code).to.equal("handlerFailed");
      expect(result.notification.error?.message).to.equal('Handler "throws" failed: cannot process {"n":1}.');
      await client.close();
    } finally {
      await server.stop();
    }
  });
});
