import { expect } from "chai";
import { rm } from "node:fs/promises";
import type net from "node:net";
import path from "node:path";
import type { Job } from "../../core/jobs/job.js";
import type { HandlerConnection } from "../../plugins/handler-bridge/handler-connection.js";
import { openHandlerConnection } from "../handler-connections.js";
import { deliverTo, serveHandler } from "../../plugins/handler-bridge/serve-handler.js";
import { makeTempDir } from "../helper.js";

function job(id: string, data: unknown): Job {
  return { id, type: "echo", data, priority: 0, user: "alice", origin: "127.0.0.1:2222", notify: true, chainLength: 0, attempts: 0, acceptedAt: Date.now() };
}

/** Opens a connection of type "echo" to `socketPath`. */
function open(socketPath: string, index: number): Promise<HandlerConnection> {
  return openHandlerConnection(socketPath, { type: "echo", index, maxFrameBytes: 1024 * 1024 });
}

/** Bytes a connection wrote that are still waiting in its stream, not yet given to the kernel. */
function heldBytes(connection: HandlerConnection): number {
  return (connection as unknown as { socket: net.Socket }).socket.writableLength;
}

describe("handler connection writes (unit)", () => {
  let dir: string;
  let server: net.Server;
  const seen: string[] = [];

  before(async () => {
    dir = await makeTempDir("bester-handler-writes-");
    server = await serveHandler({ type: "echo", socket: path.join(dir, "echo.sock") }, (payload, handlerJob) => {
      seen.push(handlerJob.jobID);
      return { payload, director: deliverTo(handlerJob.from) };
    });
  });

  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("sends jobs whole, one after another", async () => {
    const connection = await open(path.join(dir, "echo.sock"), 0);

    const first = await connection.run(job("j1", { text: "ä €" }), () => undefined);
    const second = await connection.run(job("j2", [1, 2, 3]), () => undefined);

    expect(first).to.deep.equal({ payload: { text: "ä €" }, director: { type: "userDelivery", users: ["alice@127.0.0.1:2222"] } });
    expect(second.payload).to.deep.equal([1, 2, 3]);
    connection.stop();
  });

  it("rejects data JSON cannot encode", async () => {
    const connection = await open(path.join(dir, "echo.sock"), 3);

    const error = await connection.run(job("bad", { count: 1n }), () => undefined).then(() => undefined, (caught: unknown) => caught);
    const socket = (connection as unknown as { socket: net.Socket }).socket;
    const reply = await connection.run(job("good", "after"), () => undefined);

    expect((error as { code?: string }).code).to.equal("handlerFailed");
    expect((error as Error).message).to.include("not valid JSON");
    expect(socket.writableCorked).to.equal(0);
    expect(reply.payload).to.equal("after");
    connection.stop();
  });

  it("holds frames until the turn ends", async () => {
    const connections = await Promise.all([open(path.join(dir, "echo.sock"), 1), open(path.join(dir, "echo.sock"), 2)]);
    seen.length = 0;

    const replies = connections.map((connection, index) => connection.run(job(`k${index}`, index), () => undefined));
    const heldInTurn = connections.map(heldBytes);
    await new Promise((resolve) => setImmediate(resolve));
    const heldAfterTurn = connections.map(heldBytes);
    const payloads = (await Promise.all(replies)).map((reply) => reply.payload);

    expect(heldInTurn[0]).to.be.above(0);
    expect(heldInTurn[1]).to.be.above(0);
    expect(heldAfterTurn).to.deep.equal([0, 0]);
    expect(payloads).to.deep.equal([0, 1]);
    expect([...seen].sort()).to.deep.equal(["k0", "k1"]);
    for (const connection of connections) {
      connection.stop();
    }
  });
});
