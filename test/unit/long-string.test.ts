import { expect } from "chai";
import fc from "fast-check";
import { encodeFrame, parseFrameBody } from "../../core/protocol/frame-codec.js";
import { encodeLongString, LONG_STRING_CHARS } from "../../core/protocol/long-string.js";
import { RawJson } from "../../core/protocol/raw-json.js";

/** Returns `LONG_STRING_CHARS` ASCII letters followed by `tail`. */
function long(tail = ""): string {
  return "a".repeat(LONG_STRING_CHARS) + tail;
}

describe("long string encoding (unit)", () => {
  it("pre-encodes a long ASCII string", () => {
    const value = long("B/~\x7f");

    const encoded = encodeLongString(value);

    expect(encoded).to.be.instanceOf(RawJson);
    expect((encoded as RawJson).bytes.toString("latin1")).to.equal(JSON.stringify(value));
  });

  it("writes the same frame as JSON.stringify", () => {
    const value = long("xyz");

    const fast = encodeFrame({ payload: encodeLongString(value), director: { type: "userDelivery", users: ["alice"] } });
    const plain = encodeFrame({ payload: value, director: { type: "userDelivery", users: ["alice"] } });

    expect(fast.equals(plain)).to.equal(true);
  });

  it("keeps the string value for other serialisers", () => {
    const value = long("-end");

    expect(JSON.parse(JSON.stringify({ data: encodeLongString(value) }))).to.deep.equal({ data: value });
  });

  it("returns strings that need escapes unchanged", () => {
    const tails = ['"', "\\", ...Array.from({ length: 0x20 }, (_, code) => String.fromCharCode(code))];

    for (const tail of tails) {
      const value = long(tail);
      expect(encodeLongString(value), `tail code ${tail.charCodeAt(0)}`).to.equal(value);
    }
  });

  it("returns non-ASCII strings unchanged", () => {
    for (const tail of ["é", "日本", "🚀", "\ud800", "\udfff"]) {
      const value = long(tail);
      expect(encodeLongString(value), `tail ${JSON.stringify(tail)}`).to.equal(value);
    }
  });

  it("returns short strings and non-strings unchanged", () => {
    const short = "a".repeat(LONG_STRING_CHARS - 1);
    const object = { text: long() };

    expect(encodeLongString(short)).to.equal(short);
    expect(encodeLongString(object)).to.equal(object);
    expect(encodeLongString(42)).to.equal(42);
    expect(encodeLongString(null)).to.equal(null);
    expect(encodeLongString(undefined)).to.equal(undefined);
  });

  it("matches JSON.stringify for generated strings", () => {
    const tail = fc.string({ unit: "binary", maxLength: 40 });
    fc.assert(
      fc.property(tail, fc.nat({ max: 64 }), (text, position) => {
        const value = long().slice(position) + text + "a".repeat(position);

        const fast = encodeFrame({ data: encodeLongString(value) });
        const plain = encodeFrame({ data: value });

        expect(fast.equals(plain)).to.equal(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe("ASCII frame decoding (unit)", () => {
  it("decodes a large ASCII frame unchanged", () => {
    const message = { request: "newJob", job: { payload: { type: "upper", data: long("~\x7f") } } };

    expect(parseFrameBody(Buffer.from(JSON.stringify(message), "latin1"))).to.deep.equal({ kind: "frame", message });
  });

  it("decodes escapes in an ASCII frame", () => {
    const body = Buffer.from('{"text":"tab\\t quote\\" snowman \\u2603 pair \\ud83d\\ude80"}', "latin1");

    expect(parseFrameBody(body)).to.deep.equal({ kind: "frame", message: { text: 'tab\t quote" snowman ☃ pair 🚀' } });
  });

  it("reports invalid ASCII JSON as invalidJson", () => {
    const decoded = parseFrameBody(Buffer.from('{"text":"a', "latin1"));

    expect(decoded.kind).to.equal("error");
    expect(decoded).to.have.nested.property("error.code", "invalidJson");
    expect((decoded as { error: { message: string } }).error.message).to.match(/^The frame is not valid UTF-8 JSON \(.+\)\. Send one JSON object per frame\.$/);
  });

  it("matches JSON.parse for generated objects", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 })), (message) => {
        expect(parseFrameBody(Buffer.from(JSON.stringify(message), "utf8"))).to.deep.equal({ kind: "frame", message: JSON.parse(JSON.stringify(message)) });
      }),
      { numRuns: 300 },
    );
  });
});
