import { expect } from "chai";
import fc from "fast-check";
import { encodeFrame, FrameDecoder, parseFrameBody, stringifyWithRaw } from "../../core/protocol/frame-codec.js";
import { locateValue, RAW_MIN_FRAME_BYTES, rawOr, RawJson, rawValueAt, rememberRaw } from "../../core/protocol/raw-json.js";

function decodeOne(frame: Buffer): unknown {
  const [decoded] = new FrameDecoder(64 * 1024 * 1024).push(frame);
  return decoded?.kind === "frame" ? decoded.message : decoded;
}

function spanText(text: string, path: string[]): string | undefined {
  const bytes = Buffer.from(text, "utf8");
  const span = locateValue(bytes, path);
  return span && bytes.subarray(span.start, span.end).toString("utf8");
}

describe("raw JSON pass-through (unit)", () => {
  it("locates a nested value across whitespace, escaped keys and strings with quotes", () => {
    const text = ' { "request" : "newJob", "job":{"pay\\u006coad" : {"type":"t","data" : {"a":"x\\"}y","b":[1,{"c":null}]} } } } ';

    expect(spanText(text, ["job", "payload", "data"])).to.equal('{"a":"x\\"}y","b":[1,{"c":null}]}');
    expect(spanText(text, ["job", "payload", "type"])).to.equal('"t"');
    expect(spanText(text, ["job", "missing"])).to.equal(undefined);
  });

  it("takes the last of duplicate keys, as JSON.parse does", () => {
    expect(spanText('{"data":1,"data":[2, 3]}', ["data"])).to.equal("[2, 3]");
    expect(JSON.parse('{"data":1,"data":[2, 3]}').data).to.deep.equal([2, 3]);
  });

  it("locates numbers, literals and strings ending in escaped backslashes", () => {
    expect(spanText('{"a":-1.5e3,"b":true}', ["a"])).to.equal("-1.5e3");
    expect(spanText('{"a":null}', ["a"])).to.equal("null");
    expect(spanText('{"a":"c:\\\\","b":2}', ["a"])).to.equal('"c:\\\\"');
  });

  it("finds exactly the bytes of any JSON value under any key (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string(), fc.jsonValue(), (value, key, other) => {
        const text = JSON.stringify({ before: other, [key]: value, after: other }, null, key.length % 2 === 0 ? 0 : 2);
        const bytes = Buffer.from(text, "utf8");
        const span = locateValue(bytes, [key]);
        const expected = (JSON.parse(text) as Record<string, unknown>)[key];
        expect(JSON.parse(bytes.subarray(span!.start, span!.end).toString("utf8"))).to.deep.equal(expected);
      }),
      { numRuns: 300 },
    );
  });

  it("encodes RawJson like its value (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string(), (value, text) => {
        const raw = new RawJson(Buffer.from(JSON.stringify(value), "utf8"));
        const spliced = decodeOne(encodeFrame({ reply: "jobOutput", text, job: { payload: { data: raw }, again: raw } }));
        const plain = decodeOne(encodeFrame({ reply: "jobOutput", text, job: { payload: { data: value }, again: value } }));
        expect(spliced).to.deep.equal(plain);
      }),
      { numRuns: 300 },
    );
  });

  it("keeps nested encodings' raw values apart", () => {
    const inner = new RawJson(Buffer.from('"inner"'));
    const nested = { toJSON: () => encodeFrame({ x: inner }).subarray(4).toString("utf8") };
    const message = { a: new RawJson(Buffer.from('"first"')), b: nested, c: new RawJson(Buffer.from("[3]")) };

    expect(decodeOne(encodeFrame(message))).to.deep.equal({ a: "first", b: '{"x":"inner"}', c: [3] });
  });

  it("encodes plain frames after raw ones", () => {
    const withRaw = encodeFrame({ a: new RawJson(Buffer.from("[1]")) });
    const plain = encodeFrame({ b: 2 });

    expect(decodeOne(withRaw)).to.deep.equal({ a: [1] });
    expect(plain.subarray(4).toString("utf8")).to.equal('{"b":2}');
  });

  it("stringifies with raw text copied in", () => {
    const ascii = new RawJson(Buffer.from('{ "a" : [1, 2] }'));
    const unicode = new RawJson(Buffer.from('"Grüße \\u00fc 🚀"'));
    const value = { first: ascii, middle: "plain", last: unicode };

    const text = stringifyWithRaw(value);

    expect(text).to.equal('{"first":{ "a" : [1, 2] },"middle":"plain","last":"Grüße \\u00fc 🚀"}');
    expect(JSON.parse(text)).to.deep.equal({ first: { a: [1, 2] }, middle: "plain", last: "Grüße ü 🚀" });
  });

  it("stringifies plain values as JSON.stringify", () => {
    const value = { id: "j1", data: ["x", 1, null, { nested: true }], text: 'quote " and \\' };

    expect(stringifyWithRaw(value)).to.equal(JSON.stringify(value));
  });

  it("serialises RawJson as its value outside encodeFrame, as a store would", () => {
    const raw = new RawJson(Buffer.from('{"b": [1, "ü"]}'));

    expect(JSON.stringify({ a: raw })).to.equal('{"a":{"b":[1,"ü"]}}');
    expect(raw.value).to.deep.equal({ b: [1, "ü"] });
  });

  it("keeps raw bytes only for large frames, copied out of the read buffer", () => {
    const data = { text: "ä".repeat(RAW_MIN_FRAME_BYTES) };
    const body = Buffer.from(JSON.stringify({ request: "newJob", job: { payload: { type: "t", data } } }));
    const small = parseFrameBody(Buffer.from('{"payload":{"x":1}}'));
    const large = parseFrameBody(body);

    const raw = rawValueAt((large as { message: object }).message, ["job", "payload", "data"]);
    body.fill(0);

    expect(rawValueAt((small as { message: object }).message, ["payload"])).to.equal(undefined);
    expect(raw!.value).to.deep.equal(data);
  });

  it("uses remembered bytes only while the value they describe is still in place", () => {
    const holder: Record<string, unknown> = { payload: { n: 1 } };
    const raw = new RawJson(Buffer.from('{"n":1}'));
    rememberRaw(holder, "payload", raw);

    expect(rawOr(holder, "payload")).to.equal(raw);
    expect(rawOr(holder, "other")).to.equal(undefined);
    holder.payload = { n: 2 };
    expect(rawOr(holder, "payload")).to.deep.equal({ n: 2 });
  });
});
