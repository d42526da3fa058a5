import { expect } from "chai";
import fc from "fast-check";
import { encodeFrame, FrameDecoder, parseFrameBody, type DecodedFrame } from "../../core/protocol/frame-codec.js";

function frameWithBody(body: Buffer | string): Buffer {
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const header = Buffer.alloc(4);
  header.writeUInt32LE(bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

/** Returns the error of a decoded item, failing the test when the item is a frame. */
function errorOf(decoded: DecodedFrame | undefined): { code: string; message: string; fatal: boolean } {
  if (decoded?.kind !== "error") {
    throw new Error(`Expected a decoding error, got ${JSON.stringify(decoded)}`);
  }
  return { ...decoded.error, fatal: decoded.fatal };
}

function messagesOf(decoded: DecodedFrame[]): unknown[] {
  return decoded.map((item) => (item.kind === "frame" ? item.message : item.error.code));
}

describe("frame codec", () => {
  it("encodes a little-endian length and UTF-8 JSON", () => {
    const frame = encodeFrame({ text: "héllo" });

    const body = JSON.stringify({ text: "héllo" });
    expect(frame.readUInt32LE(0)).to.equal(Buffer.byteLength(body));
    expect(frame.subarray(4).toString("utf8")).to.equal(body);
  });

  it("decodes what it encodes", () => {
    const decoder = new FrameDecoder();
    const message = { request: "newJob", job: { payload: { type: "t", data: [1, "ü", null, { deep: true }] }, priority: -3 } };

    expect(messagesOf(decoder.push(encodeFrame(message)))).to.deep.equal([message]);
    expect(decoder.bufferedBytes).to.equal(0);
  });

  it("decodes a frame split byte by byte", () => {
    const decoder = new FrameDecoder();
    const frame = encodeFrame({ emoji: "🦀", n: 7 });
    const decoded: DecodedFrame[] = [];
    for (const byte of frame) {
      decoded.push(...decoder.push(Buffer.from([byte])));
    }

    expect(messagesOf(decoded)).to.deep.equal([{ emoji: "🦀", n: 7 }]);
  });

  it("decodes many frames in one chunk, in order", () => {
    const decoder = new FrameDecoder();
    const messages = Array.from({ length: 100 }, (_, index) => ({ index }));

    expect(messagesOf(decoder.push(Buffer.concat(messages.map((message) => encodeFrame(message)))))).to.deep.equal(messages);
  });

  it("keeps a trailing partial frame for the next chunk", () => {
    const decoder = new FrameDecoder();
    const second = encodeFrame({ second: true });
    const first = decoder.push(Buffer.concat([encodeFrame({ first: true }), second.subarray(0, 6)]));
    const rest = decoder.push(second.subarray(6));

    expect(messagesOf(first)).to.deep.equal([{ first: true }]);
    expect(messagesOf(rest)).to.deep.equal([{ second: true }]);
  });

  it("decodes any split of any frame sequence", () => {
    const message = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }));
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (messages, cuts) => {
        const bytes = Buffer.concat(messages.map((item) => encodeFrame(item)));
        const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
        const decoder = new FrameDecoder();
        const decoded: DecodedFrame[] = [];
        let start = 0;
        for (const point of [...points, bytes.length]) {
          decoded.push(...decoder.push(bytes.subarray(start, point)));
          start = point;
        }
        expect(messagesOf(decoded)).to.deep.equal(JSON.parse(JSON.stringify(messages)));
      }),
      { numRuns: 200 },
    );
  });

  it("reports frameTooLarge from the header alone", () => {
    const decoder = new FrameDecoder(100);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(101, 0);
    const decoded = decoder.push(header);

    expect(decoded).to.have.length(1);
    const error = errorOf(decoded[0]);
    expect(error.code).to.equal("frameTooLarge");
    expect(error.fatal).to.equal(true);
    expect(error.message).to.include("101");
  });

  it("names big-endian lengths in frameTooLarge", () => {
    const decoder = new FrameDecoder(16 * 1024 * 1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(90, 0);
    const error = errorOf(decoder.push(header)[0]);

    expect(error.code).to.equal("frameTooLarge");
    expect(error.message).to.include(`length ${header.readUInt32LE(0)} exceeds`);
    expect(error.message).to.include("read big-endian the same bytes give 90");
    expect(error.message).to.include("make it write little-endian");
    expect(error.message).to.include("If the frame really is that large, split the data or raise maxFrameBytes");
    expect(error.message.indexOf("big-endian")).to.be.below(error.message.indexOf("split the data"));
  });

  it("advises splitting a frame that is too large", () => {
    const decoder = new FrameDecoder(100);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(0x01000100, 0);
    const error = errorOf(decoder.push(header)[0]);

    expect(error.message).to.include("Split the data or raise maxFrameBytes");
    expect(error.message).to.not.include("big-endian");
  });

  describe("big-endian frame waiting", () => {
    /** Returns a frame of a 512-byte JSON object whose length prefix is written big-endian. */
    function bigEndianFrame(): Buffer {
      const body = Buffer.from(JSON.stringify({ request: "newJob", pad: "x".repeat(512 - 30) }));
      const padded = Buffer.concat([body.subarray(0, body.length - 1), Buffer.alloc(512 - body.length, " "), Buffer.from("}")]);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(padded.length, 0);
      return Buffer.concat([header, padded]);
    }

    it("returns the big-endian length", () => {
      const decoder = new FrameDecoder();

      expect(decoder.push(bigEndianFrame())).to.deep.equal([]);
      expect(decoder.bigEndianFrameWaiting()).to.equal(512);
      expect(decoder.announcedLength()).to.equal(0x20000);
    });

    it("returns it across chunks and with bytes after", () => {
      const decoder = new FrameDecoder();
      const frame = bigEndianFrame();
      decoder.push(frame.subarray(0, 3));
      decoder.push(frame.subarray(3, 300));
      decoder.push(Buffer.concat([frame.subarray(300), encodeFrame({ next: true })]));

      expect(decoder.bigEndianFrameWaiting()).to.equal(512);
    });

    it("is undefined before the object ends", () => {
      const decoder = new FrameDecoder();
      decoder.push(bigEndianFrame().subarray(0, 515));

      expect(decoder.bigEndianFrameWaiting()).to.equal(undefined);
    });

    it("parses the big-endian body", () => {
      const decoder = new FrameDecoder();
      decoder.push(bigEndianFrame());

      expect(decoder.bigEndianBodyParses(512)).to.equal(true);
    });

    it("rejects a little-endian frame that ends a brace early", () => {
      // The prefix 00 00 01 00 of a 65 536-byte body reads as 256 big-endian, and its 256th byte is "}".
      const decoder = new FrameDecoder();
      const start = '{"data":[{"a":"';
      const body = `${start}${"x".repeat(256 - start.length - 2)}"},{"b":"${"y".repeat(65_536 - 256 - 11)}"}]}`;
      expect(body.length).to.equal(65_536);
      decoder.push(encodeFrame(JSON.parse(body) as object).subarray(0, 1000));

      expect(decoder.bigEndianFrameWaiting()).to.equal(256);
      expect(decoder.bigEndianBodyParses(256)).to.equal(false);
    });

    it("is undefined for a little-endian frame on its way", () => {
      const decoder = new FrameDecoder();
      const frame = encodeFrame({ pad: "y".repeat(200_000) });
      decoder.push(frame.subarray(0, 70_000));

      expect(decoder.bigEndianFrameWaiting()).to.equal(undefined);
      expect(decoder.announcedLength()).to.equal(frame.length - 4);
    });
  });

  it("decodes nothing after frameTooLarge", () => {
    const decoder = new FrameDecoder(100);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(1000, 0);
    decoder.push(header);

    expect(decoder.push(encodeFrame({ later: true }))).to.deep.equal([]);
    expect(decoder.bufferedBytes).to.equal(0);
  });

  it("accepts a body of exactly maxFrameBytes", () => {
    const body = JSON.stringify({ pad: "x".repeat(100 - 10) });
    const decoder = new FrameDecoder(Buffer.byteLength(body));

    expect(messagesOf(decoder.push(frameWithBody(body)))).to.deep.equal([JSON.parse(body)]);
  });

  it("reports invalidJson and goes on with the next frame", () => {
    const decoder = new FrameDecoder();
    const decoded = decoder.push(Buffer.concat([frameWithBody("{oops"), encodeFrame({ ok: 1 })]));

    expect(messagesOf(decoded)).to.deep.equal(["invalidJson", { ok: 1 }]);
    expect(decoded[0]).to.deep.include({ fatal: false });
  });

  for (const [kind, body] of [
    ["an empty body", ""],
    ["an array", "[]"],
    ["a string", '"x"'],
    ["a number", "1"],
    ["null", "null"],
    ["a boolean", "true"],
  ] as const) {
    it(`reports ${kind} as invalidJson`, () => {
      const decoded = parseFrameBody(Buffer.from(body, "utf8"));

      const error = errorOf(decoded);
      expect(error.code).to.equal("invalidJson");
      expect(error.fatal).to.equal(false);
    });
  }

  it("reports bytes that are not UTF-8 as invalidJson", () => {
    const decoded = parseFrameBody(Buffer.from([0x22, 0xc3, 0x28, 0x22]));

    expect(errorOf(decoded).code).to.equal("invalidJson");
  });
});
