import { expect } from "chai";
import { encodeFrame, FrameDecoder, parseFrameBody } from "../../core/protocol/frame-codec.js";

describe("frame codec decoding (unit)", () => {
  it("decodes multibyte UTF-8 text unchanged", () => {
    const message = { request: "newJob", text: "Grüße, 日本語, 🚀" };

    const decoded = parseFrameBody(Buffer.from(JSON.stringify(message), "utf8"));

    expect(decoded).to.deep.equal({ kind: "frame", message });
  });

  it("reports bytes that are not UTF-8 as invalidJson and keeps the reason", () => {
    const body = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);

    const decoded = parseFrameBody(body);

    expect(decoded.kind).to.equal("error");
    expect(decoded).to.have.nested.property("error.code", "invalidJson");
    expect(decoded).to.have.nested.property("fatal", false);
    expect((decoded as { error: { message: string } }).error.message).to.equal(
      "The frame is not valid UTF-8 JSON (The encoded data was not valid for encoding utf-8). Send one JSON object per frame.",
    );
  });

  it("skips a leading byte-order mark as a UTF-8 decoder does", () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"reply":"x"}')]);

    expect(parseFrameBody(body)).to.deep.equal({ kind: "frame", message: { reply: "x" } });
  });

  it("decodes a body that is a view into a larger buffer", () => {
    const frames = Buffer.concat([encodeFrame({ n: 1 }), encodeFrame({ n: "ü" }), encodeFrame({ n: 3 })]);

    const decoded = new FrameDecoder().push(frames);

    expect(decoded).to.deep.equal([
      { kind: "frame", message: { n: 1 } },
      { kind: "frame", message: { n: "ü" } },
      { kind: "frame", message: { n: 3 } },
    ]);
  });

  it("still reports a JSON syntax error and a non-object as invalidJson", () => {
    const broken = parseFrameBody(Buffer.from('{"a":'));
    const array = parseFrameBody(Buffer.from("[1,2]"));

    expect(broken).to.have.nested.property("error.code", "invalidJson");
    expect((broken as { error: { message: string } }).error.message).to.match(/^The frame is not valid UTF-8 JSON \(.+\)\. Send one JSON object per frame\.$/);
    expect(array).to.deep.equal({ kind: "error", fatal: false, error: { code: "invalidJson", message: "The frame holds an array, not a JSON object. Send one JSON object per frame." } });
  });
});
