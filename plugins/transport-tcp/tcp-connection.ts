// One TCP client or peer link: bytes to frames through the frame codec, frames to the core's
// session, replies back as frames with bounded output buffering.

import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { ClientSession } from "../../core/client-session.js";
import type { WireError } from "../../core/errors.js";
import { encodeFrame, FRAME_HEADER_BYTES, FrameDecoder } from "../../core/protocol/frame-codec.js";
import type { Connection } from "../../core/sessions.js";
import { endSocketGracefully } from "./end-socket.js";

export interface TcpConnectionOptions {
  maxFrameBytes: number;
  /** Bytes of unsent output after which a client that does not read is disconnected. */
  maxBufferedBytes: number;
  /** Milliseconds output may wait after the previous write to leave with later output. With 0 it leaves at the end of each turn. */
  outputCoalesceMs: number;
}

let nextConnectionId = 1;

/**
 * Milliseconds a frame that reads whole with a big-endian length prefix may wait for more bytes
 * before the connection is closed with advice, instead of waiting silently for a body never sent.
 */
export const BIG_ENDIAN_STALL_MS = 2000;

export class TcpConnection implements Connection {
  readonly id: string;
  readonly remoteAddress: string;
  session!: ClientSession;
  private readonly decoder: FrameDecoder;
  private closed = false;
  private corked = false;
  private lastFlushAt = 0;
  /** Callers of onFlushed() waiting for buffered output to leave the process. */
  private flushWaiters: Array<(error?: Error) => void> = [];
  /** Messages written since the socket's buffer was last empty; on close they go back to the session. */
  private unflushed: object[] = [];
  /** Whether the peer closed its side of the connection, as the `end` handler describes. */
  private peerEnded = false;
  /** Whether the socket's `close` event ran; until then the session stays registered and gets messages. */
  private socketClosed = false;
  /** Messages sent after close() ended or destroyed the socket and before its `close` event; they count as unsent. */
  private sentAfterClose: object[] = [];
  private waitingForDrain = false;
  private stallTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly options: TcpConnectionOptions,
    private readonly log: Logger,
  ) {
    this.id = `tcp-${nextConnectionId++}`;
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    this.decoder = new FrameDecoder(options.maxFrameBytes);
    socket.setNoDelay(true);
  }

  /** Wires the socket to `session`, which enforces the authentication deadline. */
  attach(session: ClientSession): void {
    this.session = session;

    this.socket.on("data", (chunk: Buffer) => {
      for (const decoded of this.decoder.push(chunk)) {
        this.session.receive(decoded);
        if (this.closed) {
          return;
        }
      }
      if (this.stallTimer !== undefined || this.decoder.bufferedBytes > 0) {
        this.watchForBigEndianFrame();
      }
    });
    this.socket.on("end", () => {
      // The peer closed its side, and Node's automatic end() just wrote the corked frames. A client
      // that only half-closed still reads them, but one that closed for good replies with a reset
      // and loses them, and the two look the same from here. So every frame written from now on
      // stays in `unflushed` and counts as unsent at close: at least once, never lost.
      this.peerEnded = true;
      if (this.corked) {
        this.uncork();
      }
    });
    this.socket.on("error", (error) => {
      this.log.debug({ connection: this.id, err: error }, "socket error");
    });
    this.socket.on("close", () => {
      this.closed = true;
      this.socketClosed = true;
      clearTimeout(this.stallTimer);
      // The session first passes the unsent messages on, then the flush waiters learn they failed.
      // A destroyed socket reports no buffered bytes, so the corked and drain states show what waits.
      const buffered = this.peerEnded || this.corked || this.waitingForDrain || this.socket.writableLength > 0 ? this.unflushed : [];
      const unsent = [...buffered, ...this.sentAfterClose];
      this.unflushed = [];
      this.sentAfterClose = [];
      this.session.closedByTransport(unsent);
      for (const callback of this.flushWaiters.splice(0)) {
        callback(new Error(`Connection ${this.id} closed with output unsent.`));
      }
    });
  }

  send(message: object): void {
    if (this.closed) {
      if (!this.socketClosed) {
        // The session is still registered until the socket's close event, so keep the message for it.
        this.sentAfterClose.push(message);
      }
      return;
    }

    // Corking joins frames into one write syscall. Output after a quiet period leaves at the end of
    // this event-loop turn. Output that follows a write by less than outputCoalesceMs waits for the
    // rest of that time. Under load a client then gets one write per interval instead of one per
    // handler reply, so both processes spend less CPU and the client wakes less often.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      const wait = this.options.outputCoalesceMs - (performance.now() - this.lastFlushAt);
      if (wait <= 0) {
        setImmediate(this.uncork);
      } else {
        setTimeout(this.uncork, wait);
      }
    }
    this.socket.write(encodeFrame(message));
    this.unflushed.push(message);

    if (this.socket.writableLength > this.options.maxBufferedBytes) {
      this.log.warn({ connection: this.id, remote: this.remoteAddress, bufferedBytes: this.socket.writableLength }, "client is not reading its replies; disconnecting it");
      this.closed = true;
      this.socket.destroy();
    }
  }

  onFlushed(callback: (error?: Error) => void): void {
    if (this.sentAfterClose.length > 0) {
      // Those messages never leave; the close handler reports the failure after the session kept them.
      this.flushWaiters.push(callback);
      return;
    }
    if (!this.corked && this.socket.writableLength === 0) {
      // Nothing waits in the process, even if the client closed the connection after reading.
      callback();
      return;
    }
    if (this.closed) {
      callback(new Error(`Connection ${this.id} closed with output unsent.`));
      return;
    }
    this.flushWaiters.push(callback);
    if (!this.corked) {
      this.settleFlushWaiters();
    }
  }

  close(error?: WireError): void {
    if (this.closed) {
      return;
    }
    if (error) {
      this.send({ reply: "error", error });
    }
    this.closed = true;
    if (this.corked) {
      // Write now rather than let end() flush behind the corked flag, so the close handler does
      // not count frames that left as unsent.
      this.uncork();
    }
    endSocketGracefully(this.socket);
  }

  /** Whether the connection ends on its own: it was closed, or its session sends its last replies first. */
  get isEnding(): boolean {
    return this.closed || this.session.isClosing;
  }

  /** Destroys the socket at once, for shutdown. */
  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.lastFlushAt = performance.now();
    this.socket.uncork();
    // Right after the write syscall, so a caller such as the job journal records that the output
    // left the process before anything else runs.
    this.settleFlushWaiters();
  };

  /** Calls the flush callbacks once nothing is buffered; a partial write waits for `drain`. */
  private settleFlushWaiters(): void {
    if (this.socket.writableLength === 0) {
      if (!this.peerEnded) {
        this.unflushed = [];
      }
      for (const callback of this.flushWaiters.splice(0)) {
        callback();
      }
      return;
    }
    if (!this.waitingForDrain) {
      this.waitingForDrain = true;
      this.socket.once("drain", () => {
        this.waitingForDrain = false;
        this.settleFlushWaiters();
      });
    }
  }

  /**
   * Restarts the wait for a frame that reads whole with a big-endian prefix. When no byte follows
   * it in BIG_ENDIAN_STALL_MS and its body parses as a JSON object, the client gets `invalidJson`
   * with the byte order named, and the connection closes, because the next frame boundary is unknown.
   */
  private watchForBigEndianFrame(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    const bigEndian = this.decoder.bigEndianFrameWaiting();
    if (bigEndian === undefined) {
      return;
    }

    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      // A little-endian frame paused on its way can pass the cheap byte checks above, but not a parse.
      if (this.closed || !this.decoder.bigEndianBodyParses(bigEndian)) {
        return;
      }
      const arrived = this.decoder.bufferedBytes - FRAME_HEADER_BYTES;
      const message = `The frame's 4-byte length prefix announces a body of ${this.decoder.announcedLength()} bytes, and ${arrived} arrived with no byte after them in ${BIG_ENDIAN_STALL_MS} ms. Read big-endian, the same bytes give ${bigEndian}, the length of the JSON object that arrived, so the client most likely writes the prefix in network byte order (big-endian): make it write little-endian. The connection closes, because the next frame boundary is unknown.`;
      this.log.info({ connection: this.id, remote: this.remoteAddress, bigEndianLength: bigEndian }, "closing connection whose frame has a big-endian length prefix");
      this.session.receive({ kind: "error", fatal: true, error: { code: "invalidJson", message } });
    }, BIG_ENDIAN_STALL_MS);
    this.stallTimer.unref();
  }
}
