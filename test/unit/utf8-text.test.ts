import { expect } from "chai";
import { decodeUtf8Text, findInvalidUtf8 } from "../../core/cli/utf8-text.js";

describe("submit text decoding (unit)", () => {
  const cases: Array<[string, number[], number | undefined]> = [
    ["ASCII", [0x61, 0x62], undefined],
    ["2-, 3- and 4-byte characters", [0xc3, 0xbc, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x9a, 0x80], undefined],
    ["a Latin-1 byte before ASCII", [0x61, 0xe9, 0x2c], 1],
    ["a continuation byte without a lead byte", [0x61, 0x80], 1],
    ["an overlong 2-byte form", [0xc0, 0x80], 0],
    ["an overlong 3-byte form", [0xe0, 0x80, 0x80], 0],
    ["a UTF-16 surrogate", [0x61, 0xed, 0xa0, 0x80], 1],
    ["a code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80], 0],
    ["a character cut off at the end", [0x61, 0x62, 0xf0, 0x9f, 0x9a], 2],
    ["the invalid byte 0xFF after valid text", [0xc3, 0xbc, 0xff], 2],
  ];

  for (const [name, bytes, expected] of cases) {
    it(`finds the first invalid byte: ${name}`, () => {
      expect(findInvalidUtf8(Buffer.from(bytes))).to.equal(expected);
    });
  }

  it("matches a fatal TextDecoder on 2-byte inputs", () => {
    const decoder = new TextDecoder("utf-8", { fatal: true });
    for (let first = 0; first < 256; first++) {
      for (let second = 0; second < 256; second++) {
        const bytes = Buffer.from([first, second]);
        let valid = true;
        try {
          decoder.decode(bytes);
        } catch {
          valid = false;
        }
        expect(findInvalidUtf8(bytes) === undefined, `bytes ${bytes.toString("hex")}`).to.equal(valid);
      }
    }
  });

  it("drops only a leading byte-order mark", () => {
    const mark = [0xef, 0xbb, 0xbf];

    expect(decodeUtf8Text(Buffer.from([...mark, 0x61, ...mark]), "stdin")).to.equal("a\ufeff");
    expect(decodeUtf8Text(Buffer.from(mark), "stdin")).to.equal("");
  });
});
