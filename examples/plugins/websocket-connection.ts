// One WebSocket client of the example WebSocket transport. Each text message is one JSON request,
// validated by the core's frame parser, and each reply goes out as one text message.

import type { Logger } from "pino";
import type { WebSocket } from "ws";
import { parseFrameBody, type Connection, type WireError } from "../../index.js";

/** The part of the core's session that the connection uses; `Bester.openSession()` returns one. */
export interface FrameReceiver {
  /** Whether the session closes the connection once the replies still due are sent. */
  readonly isClosing: boolean;
  receive(decoded: ReturnType<typeof parseFrameBody>): void;
  /** Ends the session. `unsent` lists the messages that never reached the operating system. */
  closedByTransport(unsent?: object[]): void;
}

export interface WebSocketConnectionOptions {
  /** Maximum message size in bytes; a larger message gets a `frameTooLarge` error, then the close. */
  maxMessageBytes: number;
  /** Bytes of unsent output after which a client that does not read is disconnected. */
  maxBufferedBytes: number;
}

let nextConnectionId = 1;

export class WebSocketConnection implements Connection {
  readonly id: string;
  readonly remoteAddress: string;
  private session!: FrameReceiver;
  private closed = false;
  /** Set by the socket's close event, after which the session is no longer registered. */
  private socketClosed = false;
  /** WebSocket close status sent by close(): 1000, or 1009 (Message Too Big) after an oversized message. */
  private closeStatus = 1000;
  /** Messages sent but not yet handed to the operating system, by send number, in order. */
  private unflushed = new Map<number, object>();
  private sent = 0;
  private flushed = 0;
  private flushWaiters: Array<{ upTo: number; callback: (error?: Error) => void }> = [];

  constructor(
    private readonly socket: WebSocket,
    remoteAddress: string,
    private readonly options: WebSocketConnectionOptions,
    private readonly log: Logger,
  ) {
    this.id = `ws-${nextConnectionId++}`;
    this.remoteAddress = `ws ${remoteAddress}`;
  }

  /** Wires the socket to `session`, which enforces the authentication deadline. */
  attach(session: FrameReceiver): void {
    this.session = session;

    this.socket.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      const body = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (body.length > this.options.maxMessageBytes) {
        this.rejectTooLarge(body.length);
        return;
      }
      // A WebSocket message has no length prefix, so the parser leaves out advice about one.
      this.session.receive(parseFrameBody(body, { lengthPrefixed: false }));
    });
    this.socket.on("error", (error) => {
      // ws reports protocol violations here and has already begun the close. One of them is a
      // message over its maxPayload, which the transport sets above maxMessageBytes as a hard cap.
      this.log.info({ connection: this.id, err: error }, "websocket error; closing the connection");
    });
    this.socket.on("close", () => {
      this.closed = true;
      this.socketClosed = true;
      // Messages ws still buffered go back to the session, which passes job outputs and
      // notifications on to the user's other connections or to the next login.
      const unsent = [...this.unflushed.values()];
      this.unflushed.clear();
      this.session.closedByTransport(unsent);
      for (const waiter of this.flushWaiters.splice(0)) {
        waiter.callback(new Error(`Connection ${this.id} closed with output unsent.`));
      }
    });
  }

  send(message: object): void {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) {
      if (!this.socketClosed) {
        // The session stays registered until the close event, so the message goes back to it then.
        this.unflushed.set(++this.sent, message);
      }
      return;
    }

    const number = ++this.sent;
    this.unflushed.set(number, message);
    // ws calls back once the frame was handed to the operating system, in send order.
    this.socket.send(JSON.stringify(message), (error) => {
      if (!error) {
        this.markFlushed(number);
      }
    });

    if (this.socket.bufferedAmount > this.options.maxBufferedBytes) {
      this.log.warn({ connection: this.id, remote: this.remoteAddress, bufferedBytes: this.socket.bufferedAmount }, "websocket client is not reading its replies; disconnecting it");
      this.destroy();
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
    this.socket.close(this.closeStatus);
    // A client that never completes the closing handshake would keep the socket open.
    setTimeout(() => this.socket.terminate(), 2000).unref();
  }

  /** Calls `callback` once every message sent so far has left the process, or with an error at close. */
  onFlushed(callback: (error?: Error) => void): void {
    if (this.socketClosed) {
      callback(new Error(`Connection ${this.id} is closed.`));
    } else if (this.flushed >= this.sent) {
      callback();
    } else {
      this.flushWaiters.push({ upTo: this.sent, callback });
    }
  }

  private markFlushed(number: number): void {
    this.unflushed.delete(number);
    this.flushed = number;
    while (this.flushWaiters.length > 0 && this.flushWaiters[0]!.upTo <= number) {
      this.flushWaiters.shift()!.callback();
    }
  }

  /** Whether the connection ends on its own: it was closed, or its session sends its last replies first. */
  get isEnding(): boolean {
    return this.closed || this.session.isClosing;
  }

  /** Drops the connection at once, for shutdown. */
  destroy(): void {
    this.closed = true;
    this.socket.terminate();
  }

  /**
   * Rejects a message over maxMessageBytes as the TCP transport rejects an oversized frame: the
   * session sends `frameTooLarge` after the replies to earlier requests, then calls close().
   */
  private rejectTooLarge(length: number): void {
    // 1009 also gives the reason to WebSocket clients that only look at the close status.
    this.closeStatus = 1009;
    this.session.receive({
      kind: "error",
      fatal: true,
      error: {
        code: "frameTooLarge",
        message: `The message length ${length} exceeds maxMessageBytes (${this.options.maxMessageBytes}) of the WebSocket transport. Split the data or raise maxMessageBytes in the plugin's options.`,
      },
    });
  }
}
