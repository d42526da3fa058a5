import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import fc from "fast-check";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

const MAX_FRAME_BYTES = 1024 * 1024;
const RUNS = 400;

/** Returns whether a reply carries a coded error, or is the normal reply of a request that happened to be valid. */
function isCodedReply(reply: Record<string, unknown>): boolean {
  if (reply.reply === "error") {
    return typeof (reply.error as { code?: unknown } | undefined)?.code === "string";
  }
  const body = (reply.auth ?? reply.register ?? reply.submission) as { status?: string; error?: { code?: unknown } } | undefined;
  if (!body || typeof body.status !== "string") {
    return false;
  }
  return body.status === "ok" || body.status === "accepted" || typeof body.error?.code === "string";
}

/** Writes bytes on a fresh connection, half-closes it and collects every reply until the server closes. */
async function sendAndCollect(port: number, bytes: Buffer): Promise<Array<Record<string, unknown>>> {
  const socket = net.createConnection({ port, host: "127.0.0.1" });
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  const replies: Array<Record<string, unknown>> = [];
  socket.on("data", (chunk: Buffer) => {
    for (const decoded of decoder.push(chunk)) {
      if (decoded.kind === "frame") {
        replies.push(decoded.message);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("The server neither answered nor closed within 10 s")), 10_000);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("error", () => undefined);
    socket.once("connect", () => socket.end(bytes));
  });
  return replies;
}

const wrongValue = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 2 ** 53, "", "x", "a@b:c", [], {}, [1, 2], { a: 1 }, "u".repeat(5000)),
  fc.anything(),
);

const validRequests: Array<Record<string, unknown>> = [
  { request: "auth", account: { username: "fuzzer", password: "fuzz-password" }, tag: "t" },
  { request: "register", account: { username: "fuzzer2", password: "fuzz-password" }, tag: "t" },
  { request: "newJob", job: { payload: { type: "echo", data: { n: 1 } }, priority: 1 }, tag: "t" },
];

/** Lists every field path of a request, e.g. ["job", "payload", "type"]. */
function fieldPaths(value: unknown, prefix: string[] = []): string[][] {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return [];
  }
  const paths: string[][] = [];
  for (const [key, child] of Object.entries(value)) {
    paths.push([...prefix, key], ...fieldPaths(child, [...prefix, key]));
  }
  return paths;
}

function withField(request: Record<string, unknown>, fieldPath: string[], value: unknown): Record<string, unknown> {
  const copy = structuredClone(request);
  let target = copy as Record<string, unknown>;
  for (const key of fieldPath.slice(0, -1)) {
    target = target[key] as Record<string, unknown>;
  }
  target[fieldPath[fieldPath.length - 1]!] = value;
  return copy;
}

function deepValue(depth: number, kind: "array" | "object"): string {
  return kind === "array" ? `${"[".repeat(depth)}1${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

describe("protocol fuzzing", function () {
  this.timeout(120_000);
  let server: TestServer;
  let folder: string;
  let client: RawClient;
  let inputs = 0;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-fuzz-"));
    server = await startServer({
      store: `sqlite://${path.join(folder, "fuzz.sqlite")}`,
      registration: true,
      maxFrameBytes: MAX_FRAME_BYTES,
      handlers: { echo: fixtureHandler("echo", { connections: 2 }) },
      limits: { login: { maxFailuresPerUser: 1_000_000, maxFailuresPerAddress: 1_000_000 } },
    });
    client = await RawClient.connect(server.port);
    await login(client, "fuzzer", "fuzz-password");
  });

  after(async () => {
    client?.close();
    // Printed so each run records how many inputs it tried.
    console.log(`      fuzzing sent ${inputs} inputs`);
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  afterEach(async () => {
    // The daemon must still serve a normal job after every property.
    const probe = await RawClient.connect(server.port);
    await login(probe, "fuzzer", "fuzz-password", false);
    const reply = await probe.request({ request: "newJob", job: { payload: { type: "echo", data: "alive" } } });
    const submission = reply.submission as { status: string; jobID: string };
    expect(submission.status).to.equal("accepted");
    // The fuzzing connection's user is the same, so the probe also receives notifications of earlier fuzz jobs.
    const notification = await probe.next((message) => message.reply === "jobNotification" && (message.job as { jobID: string }).jobID === submission.jobID);
    expect(notification.job).to.deep.include({ status: "completed" });
    probe.close();
  });

  /** Sends one frame on the authenticated connection and checks its reply; reconnects if the server closed it. */
  async function checkFrame(frame: unknown): Promise<void> {
    inputs += 1;
    if (client.closed) {
      client = await RawClient.connect(server.port);
      await login(client, "fuzzer", "fuzz-password", false);
    }
    const reply = await client.request(frame);
    expect(isCodedReply(reply), JSON.stringify(reply).slice(0, 300)).to.equal(true);
  }

  /** Sends raw bytes on a fresh connection; every reply must carry a code and the server must close. */
  async function checkBytes(bytes: Buffer): Promise<void> {
    inputs += 1;
    const replies = await sendAndCollect(server.port, bytes);
    for (const reply of replies) {
      expect(isCodedReply(reply), JSON.stringify(reply).slice(0, 300)).to.equal(true);
    }
  }

  it("survives random bytes", async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), (bytes) => checkBytes(Buffer.from(bytes))), { numRuns: RUNS });
  });

  it("answers random frames with codes", async () => {
    const frame = fc.oneof(fc.object(), fc.dictionary(fc.constantFrom("request", "job", "account", "tag"), fc.anything()), fc.record({ request: fc.string(), tag: fc.string() }));
    await fc.assert(fc.asyncProperty(frame, (value) => checkFrame(value)), { numRuns: RUNS });
  });

  it("survives mutated valid frames", async () => {
    const mutation = fc.record({
      request: fc.constantFrom(...validRequests),
      flips: fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
      cut: fc.option(fc.nat()),
    });
    await fc.assert(
      fc.asyncProperty(mutation, async ({ request, flips, cut }) => {
        const frame = Buffer.concat([encodeFrame(request), encodeFrame(request)]);
        for (const flip of flips) {
          frame[flip.at % frame.length] = flip.byte;
        }
        await checkBytes(cut === null ? frame : frame.subarray(0, cut % frame.length));
      }),
      { numRuns: RUNS },
    );
  });

  it("answers wrong types in every field", async () => {
    const cases = validRequests.flatMap((request) => fieldPaths(request).map((fieldPath) => ({ request, fieldPath })));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...cases), wrongValue, ({ request, fieldPath }, value) => checkFrame(withField(request, fieldPath, value))),
      { numRuns: RUNS * 2 },
    );
  });

  it("survives deep and huge JSON", async () => {
    const deep = fc.record({ depth: fc.integer({ min: 100, max: 100_000 }), kind: fc.constantFrom<"array" | "object">("array", "object"), where: fc.constantFrom("frame", "data") });
    await fc.assert(
      fc.asyncProperty(deep, async ({ depth, kind, where }) => {
        const nested = deepValue(depth, kind);
        const body = where === "frame" ? nested : `{"request":"newJob","job":{"payload":{"type":"echo","data":${nested}}}}`;
        if (Buffer.byteLength(body) > MAX_FRAME_BYTES) {
          return;
        }
        const header = Buffer.alloc(4);
        header.writeUInt32LE(Buffer.byteLength(body), 0);
        inputs += 1;
        client.writeRaw(Buffer.concat([header, Buffer.from(body)]));
        const reply = await client.next((message) => !["jobOutput", "jobNotification", "jobProgress"].includes(String(message.reply)));
        expect(isCodedReply(reply), JSON.stringify(reply).slice(0, 300)).to.equal(true);
      }),
      { numRuns: 60 },
    );

    // A string just under the frame limit gets a reply; one just over it closes the connection.
    const filler = "h".repeat(MAX_FRAME_BYTES - 100);
    await checkFrame({ request: "newJob", job: { payload: { type: "echo", data: filler } } });
    await checkBytes(encodeFrame({ request: "newJob", job: { payload: { type: "echo", data: `${filler}${"h".repeat(200)}` } } }));
  });
});
