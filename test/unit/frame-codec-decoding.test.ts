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

  it("names character counting for non-ASCII only", () => {
    const hint = "The body contains non-ASCII characters, so the likely cause is a length prefix that counts characters instead of UTF-8 bytes";
    const ascii = JSON.stringify({ payload: "plain" });
    const text = JSON.stringify({ payload: "Grüße" });
    // Each body is cut short by as many bytes as its non-ASCII characters add over one byte each.
    const cutAscii = parseFrameBody(Buffer.from(ascii.slice(0, -2)));
    const cutText = parseFrameBody(Buffer.from(text, "utf8").subarray(0, text.length));

    expect((cutAscii as { error: { message: string } }).error.message).not.to.include(hint);
    expect((cutText as { error: { message: string } }).error.message).to.include(hint);
  });

  it("names character counting for a cut character", () => {
    const hint = "a length prefix that counts characters instead of UTF-8 bytes";
    // "€" is E2 82 AC: the cut body ends after its first two bytes.
    const cut = parseFrameBody(Buffer.concat([Buffer.from('{"payload":"'), Buffer.from([0xe2, 0x82])]));
    // A Latin-1 "é" (E9) inside the body is another encoding, not a cut.
    const latin1 = parseFrameBody(Buffer.from('{"payload":"café"}', "latin1"));

    expect((cut as { error: { message: string } }).error.message).to.include(hint);
    expect((latin1 as { error: { message: string } }).error.message).to.equal(
      "The frame is not valid UTF-8 JSON (The encoded data was not valid for encoding utf-8). Send one JSON object per frame.",
    );
  });

  it("leaves out length-prefix advice without a prefix", () => {
    const hint = "length prefix";
    const text = JSON.stringify({ payload: "Grüße" });
    const cutText = Buffer.from(text, "utf8").subarray(0, text.length);
    const cutCharacter = Buffer.concat([Buffer.from('{"payload":"'), Buffer.from([0xe2, 0x82])]);

    const cutTextDecoded = parseFrameBody(cutText, { lengthPrefixed: false });
    const cutCharacterDecoded = parseFrameBody(cutCharacter, { lengthPrefixed: false });

    expect(cutTextDecoded).to.have.nested.property("error.code", "invalidJson");
    expect((cutTextDecoded as { error: { message: string } }).error.message).not.to.include(hint);
    expect(cutCharacterDecoded).to.have.nested.property("error.code", "invalidJson");
    expect((cutCharacterDecoded as { error: { message: string } }).error.message).not.to.include(hint);
  });

  it("describes a partial frame", () => {
    const decoder = new FrameDecoder();
    const header = Buffer.alloc(4);
    header.writeUInt32LE(1000, 0);

    const empty = decoder.describePartialFrame("the handler");
    decoder.push(header.subarray(0, 3));
    const inPrefix = decoder.describePartialFrame("the handler");
    decoder.push(Buffer.concat([header.subarray(3), Buffer.from('{"payload":')]));
    const inBody = decoder.describePartialFrame("the handler");

    expect(empty).to.equal(undefined);
    expect(inPrefix).to.equal("A frame had started, but only 3 of the 4 bytes of its length prefix had arrived. If the handler sent its whole frame, check the length prefix it writes.");
    expect(inBody).to.equal("A frame had started: its length prefix announced a body of 1000 bytes, and only 11 of them had arrived. If the handler sent a shorter frame, check the length prefix it writes.");
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
