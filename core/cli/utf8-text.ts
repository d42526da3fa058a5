// Decoding of the text that `bester submit` reads from --file or stdin. Node's UTF-8 decoder silently
// turns every invalid byte into U+FFFD, so the bytes are checked first, and a file in another
// encoding is rejected with the place of its first invalid byte.

import { isUtf8 } from "node:buffer";
import { BesterClientError } from "../../plugins/transport-tcp/client.js";
import { hasByteOrderMark } from "../protocol/frame-codec.js";

/**
 * Decodes `bytes` as UTF-8 text without a leading byte-order mark. Throws `invalidArgument` naming
 * `source` (such as "--file data.csv" or "stdin") and the first invalid byte when the bytes are not
 * valid UTF-8.
 */
export function decodeUtf8Text(bytes: Buffer, source: string): string {
  const offset = findInvalidUtf8(bytes);
  if (offset !== undefined) {
    const byte = bytes[offset]!.toString(16).toUpperCase().padStart(2, "0");
    const line = countLineFeeds(bytes, offset) + 1;
    throw new BesterClientError(
      "invalidArgument",
      `${source} is not valid UTF-8 text: the byte 0x${byte} at byte offset ${offset} (line ${line}) does not start a valid UTF-8 sequence. ` +
        "Convert the text to UTF-8 first, e.g. with `iconv -f LATIN1 -t UTF-8 IN > OUT` for Latin-1 text, " +
        "or send binary data as JSON that encodes it, e.g. a base64 string in --data or in a file read with --json.",
    );
  }
  // A byte-order mark would otherwise become part of the first value, such as the first CSV column
  // name. TextDecoder drops it the same way.
  return bytes.toString("utf8", hasByteOrderMark(bytes) ? 3 : 0);
}

/**
 * Returns the offset of the first byte that does not start a well-formed UTF-8 sequence, by the
 * rules a fatal TextDecoder applies, or undefined when all of `bytes` is valid UTF-8. A sequence
 * cut off by the end of the data counts as invalid at its first byte.
 */
export function findInvalidUtf8(bytes: Uint8Array): number | undefined {
  if (isUtf8(bytes)) {
    return undefined;
  }
  let offset = 0;
  while (offset < bytes.length) {
    const length = sequenceLength(bytes, offset);
    if (length === 0) {
      return offset;
    }
    offset += length;
  }
  return undefined;
}

/** Returns the length of the well-formed UTF-8 sequence at `offset`, or 0 when there is none. */
function sequenceLength(bytes: Uint8Array, offset: number): number {
  const lead = bytes[offset]!;
  if (lead < 0x80) {
    return 1;
  }

  // The lead byte sets the sequence length and the range of the second byte. The narrower second
  // ranges exclude overlong forms, UTF-16 surrogates (ED A0-BF) and code points above U+10FFFF.
  let length: number;
  let secondMin = 0x80;
  let secondMax = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    secondMin = lead === 0xe0 ? 0xa0 : 0x80;
    secondMax = lead === 0xed ? 0x9f : 0xbf;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    secondMin = lead === 0xf0 ? 0x90 : 0x80;
    secondMax = lead === 0xf4 ? 0x8f : 0xbf;
  } else {
    return 0;
  }

  for (let index = 1; index < length; index++) {
    const byte = bytes[offset + index];
    const [min, max] = index === 1 ? [secondMin, secondMax] : [0x80, 0xbf];
    if (byte === undefined || byte < min || byte > max) {
      return 0;
    }
  }
  return length;
}

function countLineFeeds(bytes: Buffer, end: number): number {
  let count = 0;
  let index = bytes.indexOf(0x0a);
  while (index !== -1 && index < end) {
    count += 1;
    index = bytes.indexOf(0x0a, index + 1);
  }
  return count;
}
