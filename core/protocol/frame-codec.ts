// Frame codec shared by every link: a 4-byte unsigned little-endian length, then that many bytes
// of UTF-8 JSON holding exactly one object. Pure Buffer in, objects out: no sockets here.

import { isAscii, isUtf8 } from "node:buffer";
import { randomBytes } from "node:crypto";
import type { WireError } from "../errors.js";
import { rememberFrameBody, stringifyCollectingRaw } from "./raw-json.js";

export const FRAME_HEADER_BYTES = 4;

/** Default for maxFrameBytes: 16 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** One decoded item: a JSON object, or an error saying why the frame was rejected. */
export type DecodedFrame =
  | { kind: "frame"; message: Record<string, unknown> }
  | { kind: "error"; error: WireError; fatal: boolean };

/** Stands in for a RawJson value while stringifying; random per process, so no payload can contain it by chance. */
const RAW_MARKER = `raw-json-${randomBytes(16).toString("hex")}`;
const QUOTED_RAW_MARKER = JSON.stringify(RAW_MARKER);

/**
 * Encodes one message as a length-prefixed frame in a single allocation. RawJson values inside the
 * message are copied in as their original bytes, which saves serialising a large payload again.
 */
export function encodeFrame(message: unknown): Buffer {
  const { json, raws } = stringifyCollectingRaw(message, RAW_MARKER);
  if (raws.length > 0) {
    return spliceFrame(json, raws);
  }
  const length = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  frame.writeUInt32LE(length, 0);
  frame.write(json, FRAME_HEADER_BYTES, "utf8");
  return frame;
}

/**
 * Returns the JSON text of `value` with each RawJson inside copied in as its original text, as
 * encodeFrame does for a frame. JSON.parse reads it back to the same value.
 */
export function stringifyWithRaw(value: unknown): string {
  const { json, raws } = stringifyCollectingRaw(value, RAW_MARKER);
  if (raws.length === 0) {
    return json;
  }
  const body = spliceFrame(json, raws).subarray(FRAME_HEADER_BYTES);
  // ASCII decodes about twice as fast with the ASCII decoder, and means the same text.
  return body.toString(isAscii(body) ? "ascii" : "utf8");
}

/** Builds a frame from JSON text whose markers stand for `raws`, in order. */
function spliceFrame(json: string, raws: readonly Buffer[]): Buffer {
  const texts = json.split(QUOTED_RAW_MARKER);
  const parts: Buffer[] = [Buffer.alloc(FRAME_HEADER_BYTES)];
  texts.forEach((text, index) => {
    parts.push(Buffer.from(text, "utf8"));
    if (index < raws.length) {
      parts.push(raws[index]!);
    }
  });
  const frame = Buffer.concat(parts);
  frame.writeUInt32LE(frame.length - FRAME_HEADER_BYTES, 0);
  return frame;
}

/** Options of parseFrameBody(). */
export interface ParseFrameBodyOptions {
  /**
   * Whether the body came with a length prefix; default true. A transport whose messages carry no
   * prefix, such as one message per WebSocket message or per line, sets false, so the
   * `invalidJson` message for a non-ASCII body leaves out the advice about a length prefix that
   * counts characters.
   */
  lengthPrefixed?: boolean;
}

/**
 * Parses a frame body. A body that is not UTF-8, not JSON, or not a JSON object is reported
 * as `invalidJson`. The caller keeps the connection, because the frame boundary is still known.
 */
export function parseFrameBody(body: Uint8Array, options: ParseFrameBodyOptions = {}): DecodedFrame {
  const lengthPrefixed = options.lengthPrefixed ?? true;

  let text: string;
  if (isAscii(body)) {
    // ASCII is valid UTF-8, and the ASCII decoder is about twice as fast as the UTF-8 one for a large frame.
    text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("ascii");
  } else {
    // isUtf8 + toString checks and decodes several times faster than a fatal TextDecoder.
    if (!isUtf8(body)) {
      const hint = lengthPrefixed && endsInCutCharacter(body) ? ` ${CHARACTER_COUNT_HINT}` : "";
      return invalidJson(`The frame is not valid UTF-8 JSON (The encoded data was not valid for encoding utf-8). Send one JSON object per frame.${hint}`);
    }
    // A leading byte-order mark is skipped, as TextDecoder does.
    const start = hasByteOrderMark(body) ? 3 : 0;
    text = Buffer.from(body.buffer, body.byteOffset + start, body.byteLength - start).toString("utf8");
  }

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // Only a body with non-ASCII characters is longer in bytes than in characters.
    const hint = lengthPrefixed && !isAscii(body) ? ` ${CHARACTER_COUNT_HINT}` : "";
    return invalidJson(`The frame is not valid UTF-8 JSON (${reason}). Send one JSON object per frame.${hint}`);
  }

  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
    return invalidJson(`The frame holds ${kind}, not a JSON object. Send one JSON object per frame.`);
  }
  rememberFrameBody(value, body);
  return { kind: "frame", message: value as Record<string, unknown> };
}

/**
 * Likely cause of a broken body with non-ASCII characters. A sender that counts characters, as
 * Python's len(str) or JavaScript's string length do, announces fewer bytes than it writes, so
 * the body is cut short and its last bytes are read as the next frame's length prefix.
 */
const CHARACTER_COUNT_HINT =
  "The body contains non-ASCII characters, so the likely cause is a length prefix that counts characters instead of UTF-8 bytes, which cuts the body short. Encode the JSON as UTF-8 first and write the byte count of the result.";

/**
 * Returns whether the only invalid UTF-8 is a lead byte at the end of the body, followed by fewer
 * continuation bytes than it needs, as a body cut short in the middle of a character ends.
 */
function endsInCutCharacter(body: Uint8Array): boolean {
  // A UTF-8 character has at most 4 bytes, so a cut one leaves a lead byte and at most 2 more.
  for (let tail = 1; tail <= 3 && tail < body.length; tail++) {
    const byte = body[body.length - tail]!;
    if (byte >= 0xc2 && byte <= 0xf4) {
      let characterBytes = 2;
      if (byte >= 0xf0) {
        characterBytes = 4;
      } else if (byte >= 0xe0) {
        characterBytes = 3;
      }
      return tail < characterBytes && isUtf8(body.subarray(0, body.length - tail));
    }
    // Anything but a continuation byte (10xxxxxx) before the lead byte means another fault.
    if ((byte & 0xc0) !== 0x80) {
      return false;
    }
  }
  return false;
}

/** Returns whether `body` starts with the UTF-8 byte-order mark EF BB BF. */
export function hasByteOrderMark(body: Uint8Array): boolean {
  return body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;
}

function invalidJson(message: string): DecodedFrame {
  return { kind: "error", error: { code: "invalidJson", message }, fatal: false };
}

/**
 * Incremental decoder for one byte stream. Frames may be split across reads and several may
 * arrive in one read. A length over maxFrameBytes is reported as soon as its header arrives, so
 * an oversized frame is never buffered. The decoder then stops, because the stream cannot be
 * resynchronised.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Number of bytes waiting for the rest of their frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Describes the frame whose rest has not arrived, for a timeout message: a wrong length prefix
   * makes a sender that finished look like a slow one. Returns undefined when no byte is waiting.
   * `sender` names the other side in the advice, e.g. "the handler".
   */
  describePartialFrame(sender = "the sender"): string | undefined {
    if (this.buffered === 0) {
      return undefined;
    }
    if (this.buffered < FRAME_HEADER_BYTES) {
      return `A frame had started, but only ${this.buffered} of the ${FRAME_HEADER_BYTES} bytes of its length prefix had arrived. If ${sender} sent its whole frame, check the length prefix it writes.`;
    }
    const announced = this.peekLength();
    const arrived = this.buffered - FRAME_HEADER_BYTES;
    return `A frame had started: its length prefix announced a body of ${announced} bytes, and only ${arrived} of them had arrived. If ${sender} sent a shorter frame, check the length prefix it writes.`;
  }

  /** Returns the body length the waiting frame's prefix announces, or undefined before its 4 bytes arrived. */
  announcedLength(): number | undefined {
    return this.buffered >= FRAME_HEADER_BYTES ? this.peekLength() : undefined;
  }

  /**
   * Returns the waiting bytes' length prefix read big-endian, when under that reading they hold a
   * whole frame whose body starts with `{` and ends with `}`, while the little-endian length waits
   * for more. A sender that writes the prefix in network byte order then looks like a slow one,
   * because for a body length that is a multiple of 256 the misread length fits maxFrameBytes.
   */
  bigEndianFrameWaiting(): number | undefined {
    if (this.failed || this.buffered < FRAME_HEADER_BYTES + 2) {
      return undefined;
    }
    const bigEndian = this.peekHeader().readUInt32BE(0);
    const end = FRAME_HEADER_BYTES + bigEndian;
    if (bigEndian < 2 || end > this.buffered) {
      return undefined;
    }
    return this.byteAt(FRAME_HEADER_BYTES) === 0x7b && this.byteAt(end - 1) === 0x7d ? bigEndian : undefined;
  }

  /**
   * Returns whether the `length` waiting bytes after the length prefix parse as one JSON object.
   * bigEndianFrameWaiting() only checks the first and last byte, which a little-endian frame on
   * its way matches by chance, as a 65 536-byte body with a `}` as its 256th byte does. Such a
   * frame's first bytes are no whole JSON object. This may join the waiting chunks, so call it
   * once per stall, not per read.
   */
  bigEndianBodyParses(length: number): boolean {
    if (this.failed || FRAME_HEADER_BYTES + length > this.buffered) {
      return false;
    }
    const frame = this.take(FRAME_HEADER_BYTES + length, true);
    return parseFrameBody(frame.subarray(FRAME_HEADER_BYTES)).kind === "frame";
  }

  /** Feeds bytes in and returns every frame they complete, in order. */
  push(chunk: Buffer): DecodedFrame[] {
    if (this.failed) {
      return [];
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;

    const decoded: DecodedFrame[] = [];
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const length = this.peekLength();
      if (length > this.maxFrameBytes) {
        this.failed = true;
        this.chunks = [];
        this.buffered = 0;
        decoded.push({
          kind: "error",
          fatal: true,
          error: {
            code: "frameTooLarge",
            message: `The frame length ${length} exceeds maxFrameBytes (${this.maxFrameBytes}). ${this.adviceForLength(length)}`,
          },
        });
        break;
      }
      if (this.buffered < FRAME_HEADER_BYTES + length) {
        break;
      }
      const frame = this.take(FRAME_HEADER_BYTES + length);
      decoded.push(parseFrameBody(frame.subarray(FRAME_HEADER_BYTES)));
    }
    return decoded;
  }

  /**
   * Returns the fix for an oversized length. A sender that writes the prefix in network byte order
   * turns a small frame into a huge length, so when the swapped bytes fit, that is a likely cause.
   */
  private adviceForLength(length: number): string {
    const swapped = Buffer.alloc(FRAME_HEADER_BYTES);
    swapped.writeUInt32BE(length, 0);
    const bigEndian = swapped.readUInt32LE(0);
    const split = "Split the data or raise maxFrameBytes on the server.";
    if (bigEndian <= this.maxFrameBytes) {
      // A plausible big-endian length is the likelier cause, so it comes first. A large frame can
      // also read as a small one big-endian, so splitting is still named.
      return `The 4-byte length prefix is little-endian, and read big-endian the same bytes give ${bigEndian}, so the sender most likely writes it in network byte order (big-endian): make it write little-endian. If the frame really is that large, split the data or raise maxFrameBytes on the server.`;
    }
    return split;
  }

  /** Returns the waiting byte at `offset` without joining chunks, so a check on a large frame copies nothing. */
  private byteAt(offset: number): number {
    let rest = offset;
    for (const chunk of this.chunks) {
      if (rest < chunk.length) {
        return chunk[rest]!;
      }
      rest -= chunk.length;
    }
    throw new RangeError(`Byte ${offset} is beyond the ${this.buffered} waiting bytes.`);
  }

  private peekLength(): number {
    return this.peekHeader().readUInt32LE(0);
  }

  /** Returns bytes that start with the waiting length prefix, copied only when it spans chunks. */
  private peekHeader(): Buffer {
    const first = this.chunks[0]!;
    return first.length >= FRAME_HEADER_BYTES ? first : this.take(FRAME_HEADER_BYTES, true);
  }

  /** Removes `count` bytes from the front, or copies them without removing when `peek` is set. */
  private take(count: number, peek = false): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= count) {
      // The common case: the whole frame sits in one chunk, so no copy is made.
      const out = first.subarray(0, count);
      if (!peek) {
        this.dropFront(count);
      }
      return out;
    }

    const joined = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [joined];
    const out = joined.subarray(0, count);
    if (!peek) {
      this.dropFront(count);
    }
    return out;
  }

  private dropFront(count: number): void {
    const first = this.chunks[0]!;
    if (first.length === count) {
      this.chunks.shift();
    } else {
      this.chunks[0] = first.subarray(count);
    }
    this.buffered -= count;
  }
}
