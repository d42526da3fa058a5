// Pass-through payloads. The daemon parses a large job payload to validate the frame but never
// changes it. So it keeps the payload's original JSON bytes and splices them into the frames for
// the handler and the recipient, instead of serialising the parsed value again.

/** Frames at least this large keep their body for splicing; below it re-serialising is cheaper than the scan. */
export const RAW_MIN_FRAME_BYTES = 8 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The original JSON bytes of one value. encodeFrame copies the bytes into the frame unchanged.
 * Anywhere else (JSON.stringify in a store or another transport) toJSON parses them, so the value
 * serialises the same either way.
 */
export class RawJson {
  private parsed: { value: unknown } | undefined;

  /** `bytes` is the JSON text. Pass `value` when the caller already has it parsed, to save decoding it again. */
  constructor(readonly bytes: Buffer, ...value: [] | [unknown]) {
    if (value.length > 0) {
      this.parsed = { value: value[0] };
    }
  }

  /** The parsed value, decoded once on first use. */
  get value(): unknown {
    this.parsed ??= { value: JSON.parse(this.bytes.toString("utf8")) };
    return this.parsed.value;
  }

  toJSON(): unknown {
    if (collectingMarker !== undefined) {
      (collected ??= []).push(this.bytes);
      return collectingMarker;
    }
    return this.value;
  }
}

/** Set while encodeFrame stringifies a message, so RawJson values leave this marker instead of their value. */
let collectingMarker: string | undefined;
/** The bytes of the RawJson values met while collecting, in order. Created on the first one. */
let collected: Buffer[] | undefined;
const NONE: readonly Buffer[] = Object.freeze([]);

/**
 * Stringifies `message`; RawJson values inside it become `marker` strings and their bytes are
 * returned in order. An empty list means the message held none.
 */
export function stringifyCollectingRaw(message: unknown, marker: string): { json: string; raws: readonly Buffer[] } {
  // Saved and restored, so a toJSON that encodes a frame of its own keeps the two lists apart.
  const outerMarker = collectingMarker;
  const outerCollected = collected;
  collectingMarker = marker;
  collected = undefined;
  try {
    const json = JSON.stringify(message);
    // Most frames contain no RawJson and share one empty list instead of allocating their own.
    return { json, raws: collected ?? NONE };
  } finally {
    collectingMarker = outerMarker;
    collected = outerCollected;
  }
}

const frameBodies = new WeakMap<object, Uint8Array>();
const remembered = new WeakMap<object, { key: string; value: unknown; raw: RawJson }>();

/** Keeps a large frame's body with its parsed message, for rawValueAt. */
export function rememberFrameBody(message: object, body: Uint8Array): void {
  if (body.length >= RAW_MIN_FRAME_BYTES) {
    frameBodies.set(message, body);
  }
}

/** Returns the original bytes of the value at `path` in a large frame's message, copied out of the read buffer. */
export function rawValueAt(message: object, path: readonly string[]): RawJson | undefined {
  const body = frameBodies.get(message);
  if (!body) {
    return undefined;
  }
  const span = locateValue(body, path);
  return span ? new RawJson(Buffer.from(body.subarray(span.start, span.end))) : undefined;
}

/** Records that `holder[key]` currently has the JSON bytes `raw`. */
export function rememberRaw(holder: object, key: string, raw: RawJson | undefined): void {
  if (raw) {
    remembered.set(holder, { key, value: (holder as Record<string, unknown>)[key], raw });
  }
}

/** Returns `holder[key]` as a RawJson while its recorded bytes still describe it, otherwise the value itself. */
export function rawOr(holder: object, key: string): unknown {
  const value = (holder as Record<string, unknown>)[key];
  const entry = remembered.get(holder);
  // A tap or a chain step that replaced the value makes the recorded bytes stale.
  return entry && entry.key === key && entry.value === value ? entry.raw : value;
}

/**
 * Finds the byte span of the value at `path` (object keys) in a JSON text that JSON.parse already
 * accepted. With duplicate keys the last one counts, as in JSON.parse.
 */
export function locateValue(bytes: Uint8Array, path: readonly string[]): { start: number; end: number } | undefined {
  let start = skipWhitespace(bytes, 0);
  for (const key of path) {
    if (bytes[start] !== 0x7b) {
      return undefined;
    }
    const member = lastMember(bytes, start, key);
    if (!member) {
      return undefined;
    }
    start = member;
  }
  return { start, end: skipValue(bytes, start) };
}

/** Start of the value of the last member named `key` in the object at `open`. */
function lastMember(bytes: Uint8Array, open: number, key: string): number | undefined {
  let found: number | undefined;
  let index = skipWhitespace(bytes, open + 1);
  while (bytes[index] === QUOTE) {
    const keyEnd = skipString(bytes, index);
    const valueStart = skipWhitespace(bytes, skipWhitespace(bytes, keyEnd) + 1);
    if (decodeKey(bytes, index, keyEnd) === key) {
      found = valueStart;
    }
    index = skipWhitespace(bytes, skipValue(bytes, valueStart));
    if (bytes[index] === 0x2c) {
      index = skipWhitespace(bytes, index + 1);
    }
  }
  return found;
}

function decodeKey(bytes: Uint8Array, start: number, end: number): string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString("utf8");
  return text.includes("\\") ? (JSON.parse(text) as string) : text.slice(1, -1);
}

function skipWhitespace(bytes: Uint8Array, index: number): number {
  while (bytes[index] === 0x20 || bytes[index] === 0x0a || bytes[index] === 0x0d || bytes[index] === 0x09) {
    index += 1;
  }
  return index;
}

/** Index after the string starting at `open`; the closing quote is the first with an even run of backslashes before it. */
function skipString(bytes: Uint8Array, open: number): number {
  let quote = open;
  for (;;) {
    quote = bytes.indexOf(QUOTE, quote + 1);
    let backslashes = 0;
    while (bytes[quote - 1 - backslashes] === BACKSLASH) {
      backslashes += 1;
    }
    if (backslashes % 2 === 0) {
      return quote + 1;
    }
  }
}

/** Index after the value starting at `start`. */
function skipValue(bytes: Uint8Array, start: number): number {
  const first = bytes[start];
  if (first === QUOTE) {
    return skipString(bytes, start);
  }
  if (first !== 0x7b && first !== 0x5b) {
    // A number, true, false or null runs until a delimiter.
    let index = start;
    while (index < bytes.length && !isDelimiter(bytes[index]!)) {
      index += 1;
    }
    return index;
  }

  let depth = 0;
  let index = start;
  while (index < bytes.length) {
    const byte = bytes[index]!;
    if (byte === QUOTE) {
      index = skipString(bytes, index);
      continue;
    }
    if (byte === 0x7b || byte === 0x5b) {
      depth += 1;
    } else if (byte === 0x7d || byte === 0x5d) {
      depth -= 1;
      if (depth === 0) {
        return index + 1;
      }
    }
    index += 1;
  }
  return index;
}

function isDelimiter(byte: number): boolean {
  return byte === 0x2c || byte === 0x7d || byte === 0x5d || byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}
