import { expect } from "chai";
import { encodeFrame } from "../../core/protocol/frame-codec.js";
import { connectAs, fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

/** Builds a frame whose body is `text` unchanged, so it need not be JSON. */
function rawFrame(text: string): Buffer {
  const body = Buffer.from(text, "utf8");
  const header = Buffer.alloc(4);
  header.writeUInt32LE(body.length, 0);
  return Buffer.concat([header, body]);
}

function errorCode(reply: Record<string, unknown>): string | undefined {
  return (reply.error as { code?: string } | undefined)?.code;
}

const MAX_FRAME_BYTES = 4096;

describe("client framing and requests", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, maxFrameBytes: MAX_FRAME_BYTES, handlers: { echo: fixtureHandler("echo") } });
  });

  after(async () => {
    await server.stop();
  });

  it("unknown request is unknownRequest", async () => {
    const client = await connectAs(server.port, "frank");
    const reply = await client.request({ request: "fly" });

    expect(reply.reply).to.equal("error");
    expect(errorCode(reply)).to.equal("unknownRequest");
    expect((reply.error as { message: string }).message).to.include("fly");
    client.close();
  });

  it("unknown request before auth is unknownRequest", async () => {
    const client = await RawClient.connect(server.port);
    const reply = await client.request({ request: "fly" });

    expect(errorCode(reply)).to.equal("unknownRequest");
    client.close();
  });

  it("request without a name is invalidRequest", async () => {
    const client = await RawClient.connect(server.port);
    const reply = await client.request({ job: {} });

    expect(errorCode(reply)).to.equal("invalidRequest");
    expect((reply.error as { message: string }).message).to.include("/request");
    client.close();
  });

  it("non-integer priority is invalidRequest naming /job/priority", async () => {
    const client = await connectAs(server.port, "frank");
    const reply = await client.request({ request: "newJob", job: { payload: { type: "echo", data: 1 }, priority: "high" } });

    expect(reply.reply).to.equal("error");
    expect(errorCode(reply)).to.equal("invalidRequest");
    expect((reply.error as { message: string }).message).to.include("/job/priority");
    client.close();
  });

  it("missing payload type is invalidRequest naming it", async () => {
    const client = await connectAs(server.port, "frank");
    const reply = await client.request({ request: "newJob", job: { payload: { data: 1 } } });

    expect(errorCode(reply)).to.equal("invalidRequest");
    expect((reply.error as { message: string }).message).to.include("/job/payload/type");
    client.close();
  });

  it("auth without a password is invalidRequest naming it", async () => {
    const client = await RawClient.connect(server.port);
    const reply = await client.request({ request: "auth", account: { username: "frank" } });

    expect(errorCode(reply)).to.equal("invalidRequest");
    expect((reply.error as { message: string }).message).to.include("/account/password");
    client.close();
  });

  it("invalid JSON is invalidJson and the connection stays open", async () => {
    const client = await RawClient.connect(server.port);
    client.writeRaw(rawFrame("{not json"));
    const reply = await client.next();
    await login(client, "frank");

    expect(reply.reply).to.equal("error");
    expect(errorCode(reply)).to.equal("invalidJson");
    expect(client.closed).to.equal(false);
    client.close();
  });

  for (const [kind, text] of [["array", "[1,2]"], ["string", '"hello"'], ["number", "42"], ["null", "null"]]) {
    it(`JSON ${kind} is invalidJson and the next request works`, async () => {
      const client = await RawClient.connect(server.port);
      client.writeRaw(rawFrame(text!));
      const reply = await client.next();
      const unknown = await client.request({ request: "fly" });

      expect(errorCode(reply)).to.equal("invalidJson");
      expect(errorCode(unknown)).to.equal("unknownRequest");
      client.close();
    });
  }

  it("bytes that are not UTF-8 are invalidJson", async () => {
    const client = await RawClient.connect(server.port);
    const body = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(body.length, 0);
    client.writeRaw(Buffer.concat([header, body]));
    const reply = await client.next();

    expect(errorCode(reply)).to.equal("invalidJson");
    client.close();
  });

  it("oversized frame is frameTooLarge then close", async () => {
    const client = await RawClient.connect(server.port);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(MAX_FRAME_BYTES + 1, 0);
    client.writeRaw(header);
    const reply = await client.next();
    await client.waitClosed();

    expect(reply.reply).to.equal("error");
    expect(errorCode(reply)).to.equal("frameTooLarge");
    expect(client.closed).to.equal(true);
  });

  it("replies to earlier requests come before frameTooLarge", async () => {
    const client = await RawClient.connect(server.port);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(MAX_FRAME_BYTES + 1, 0);
    client.writeRaw(Buffer.concat([encodeFrame({ request: "register", account: { username: "early", password: "pw" }, tag: "first" }), header]));

    const first = await client.next();
    const second = await client.next();
    await client.waitClosed();

    expect(first).to.deep.equal({ reply: "register", register: { status: "ok" }, tag: "first" });
    expect(second.reply).to.equal("error");
    expect(errorCode(second)).to.equal("frameTooLarge");
  });

  it("frame of exactly maxFrameBytes is accepted", async () => {
    const client = await RawClient.connect(server.port);
    const base = JSON.stringify({ request: "fly", pad: "" });
    const message = { request: "fly", pad: "x".repeat(MAX_FRAME_BYTES - Buffer.byteLength(base)) };
    expect(encodeFrame(message).length).to.equal(4 + MAX_FRAME_BYTES);
    const reply = await client.request(message);

    expect(errorCode(reply)).to.equal("unknownRequest");
    client.close();
  });

  it("server keeps serving others after frameTooLarge", async () => {
    const bystander = await connectAs(server.port, "bystander");
    const offender = await RawClient.connect(server.port);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(0xffffffff, 0);
    offender.writeRaw(Buffer.concat([header, Buffer.alloc(1024, 0x61)]));
    await offender.waitClosed();

    const submission = await bystander.request({ request: "newJob", job: { payload: { type: "echo", data: "still here" } } });
    const output = await bystander.nextReply("jobOutput");
    const fresh = await connectAs(server.port, "newcomer");

    expect((submission.submission as { status: string }).status).to.equal("accepted");
    expect((output.job as { payload: { data: unknown } }).payload.data).to.equal("still here");
    expect(fresh.closed).to.equal(false);
    bystander.close();
    fresh.close();
  });

  it("frames split byte by byte are decoded", async () => {
    const client = await RawClient.connect(server.port);
    const bytes = Buffer.concat([
      encodeFrame({ request: "register", account: { username: "slowpoke", password: "pw" } }),
      encodeFrame({ request: "auth", account: { username: "slowpoke", password: "pw" } }),
    ]);
    for (const byte of bytes) {
      client.writeRaw(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const register = await client.nextReply("register");
    const auth = await client.nextReply("auth");

    expect(register.register).to.deep.equal({ status: "ok" });
    expect((auth.auth as { status: string }).status).to.equal("ok");
    client.close();
  });

  it("many frames in one write are all answered in order", async () => {
    const client = await connectAs(server.port, "batcher");
    const frames = [];
    for (let index = 0; index < 50; index += 1) {
      frames.push(encodeFrame({ request: index % 2 === 0 ? "fly" : "newJob", tag: `t${index}`, job: { payload: { type: "echo", data: index } } }));
    }
    client.writeRaw(Buffer.concat(frames));

    const tags: string[] = [];
    for (let index = 0; index < 50; index += 1) {
      const reply = await client.next((message) => message.reply === "error" || message.reply === "jobSubmission");
      tags.push(String(reply.tag));
    }
    // Even frames are unknown requests (error replies), odd frames are jobs (submission replies).
    expect(tags).to.deep.equal(frames.map((_, index) => `t${index}`));
    client.close();
  });

  it("replies come back in request order", async () => {
    const client = await RawClient.connect(server.port);
    // register hashes a password, which is slow, and the replies to later requests must still follow its reply.
    client.send({ request: "register", account: { username: "orderly", password: "pw" }, tag: "1" });
    client.send({ request: "fly", tag: "2" });
    client.send({ request: "auth", account: { username: "orderly", password: "pw" }, tag: "3" });
    client.send({ request: "newJob", job: { payload: { type: "echo", data: "x" } }, tag: "4" });
    client.send({ request: "newJob", job: { payload: { type: "nope", data: "x" } }, tag: "5" });
    client.send({ request: "auth", account: { username: "orderly", password: "pw" }, tag: "6" });

    const replies = [];
    for (let index = 0; index < 6; index += 1) {
      replies.push(await client.next((message) => !["jobOutput", "jobNotification"].includes(String(message.reply))));
    }

    expect(replies.map((reply) => reply.tag)).to.deep.equal(["1", "2", "3", "4", "5", "6"]);
    expect(replies.map((reply) => reply.reply)).to.deep.equal(["register", "error", "auth", "jobSubmission", "jobSubmission", "error"]);
    expect((replies[3]!.submission as { status: string }).status).to.equal("accepted");
    expect((replies[4]!.submission as { error: { code: string } }).error.code).to.equal("noHandler");
    expect(errorCode(replies[5]!)).to.equal("alreadyAuthenticated");
    client.close();
  });

  it("tag is echoed on replies and errors", async () => {
    const client = await connectAs(server.port, "tagger");
    const submission = await client.request({ request: "newJob", job: { payload: { type: "echo", data: 1 } }, tag: "job-7" });
    const error = await client.request({ request: "fly", tag: "oops" });
    const invalid = await client.request({ request: "newJob", job: { payload: { type: "echo", data: 1 }, priority: 1.5 }, tag: "bad" });
    const untagged = await client.request({ request: "fly" });

    expect(submission.tag).to.equal("job-7");
    expect(error.tag).to.equal("oops");
    expect(invalid.tag).to.equal("bad");
    expect(untagged).to.not.have.property("tag");
    client.close();
  });
});

describe("client length prefix in the wrong byte order", () => {
  let server: TestServer;

  before(async () => {
    // The default maxFrameBytes, under which a 512-byte body's swapped length, 131072, fits.
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") } });
  });

  after(async () => {
    await server.stop();
  });

  it("closes with invalidJson naming big-endian", async () => {
    const bystander = await connectAs(server.port, "calm");
    const client = await connectAs(server.port, "swapped");
    const base = JSON.stringify({ request: "newJob", job: { payload: { type: "echo", data: "" } } });
    const body = Buffer.from(JSON.stringify({ request: "newJob", job: { payload: { type: "echo", data: "x".repeat(512 - Buffer.byteLength(base)) } } }));
    expect(body.length).to.equal(512);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length, 0);

    const started = performance.now();
    client.writeRaw(Buffer.concat([encodeFrame({ request: "fly", tag: "before" }), header, body]));
    const earlier = await client.next();
    const error = await client.next();
    await client.waitClosed();
    const waitedMs = performance.now() - started;
    const submission = await bystander.request({ request: "newJob", job: { payload: { type: "echo", data: "still here" } } });
    bystander.close();

    expect(earlier.tag).to.equal("before");
    expect(errorCode(earlier)).to.equal("unknownRequest");
    expect(errorCode(error)).to.equal("invalidJson");
    const message = (error.error as { message: string }).message;
    expect(message).to.include("announces a body of 131072 bytes, and 512 arrived");
    expect(message).to.include("Read big-endian, the same bytes give 512");
    expect(message).to.include("make it write little-endian");
    expect(waitedMs).to.be.at.least(1900);
    expect((submission.submission as { status: string }).status).to.equal("accepted");
    expect(server.logs.some((line) => line.msg === "closing connection whose frame has a big-endian length prefix" && line.bigEndianLength === 512)).to.equal(true);
  });

  it("waits for a 64 KiB frame paused after a brace", async () => {
    // A 65 536-byte body has the prefix 00 00 01 00, which reads as 256 big-endian. With a "}" as
    // its 256th byte, the first 260 bytes look like a whole big-endian frame.
    const start = '{"request":"newJob","job":{"payload":{"type":"echo","data":[{"a":"';
    const first = `${start}${"x".repeat(256 - start.length - 2)}"}`;
    const end = '"}]}}}';
    const second = `,{"b":"${"y".repeat(65_536 - first.length - 7 - end.length)}`;
    const body = Buffer.from(first + second + end);
    expect(body.length).to.equal(65_536);
    expect(body[255]).to.equal(0x7d);
    const frame = encodeFrame(JSON.parse(body.toString()) as object);
    expect(frame.length).to.equal(4 + 65_536);

    const client = await connectAs(server.port, "braced");
    client.writeRaw(frame.subarray(0, 1000));
    await new Promise((resolve) => setTimeout(resolve, 2500));
    client.writeRaw(frame.subarray(1000));
    const submission = await client.next();
    client.close();

    expect(submission.reply, JSON.stringify(submission).slice(0, 300)).to.equal("jobSubmission");
    expect((submission.submission as { status: string }).status).to.equal("accepted");
  });

  it("waits for a little-endian frame sent in two parts", async () => {
    const client = await connectAs(server.port, "patient");
    const frame = encodeFrame({ request: "newJob", job: { payload: { type: "echo", data: "y".repeat(600) } } });
    client.writeRaw(frame.subarray(0, 300));
    await new Promise((resolve) => setTimeout(resolve, 2500));
    client.writeRaw(frame.subarray(300));
    const submission = await client.next();
    client.close();

    expect((submission.submission as { status: string }).status).to.equal("accepted");
  });
});
