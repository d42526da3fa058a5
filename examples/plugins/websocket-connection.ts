// One WebSocket client of the example WebSocket transport. Each text message is one JSON request,
// validated by the core's frame parser, and each reply goes out as one text message.

import type { Logger } from "pino";
import type { WebSocket } from "ws";
import { parseFrameBody, type Connection, type WireError } from "../../index.js";

/** The part of the core's session that the connection uses; `Bester.openSession()` returns one. */
export interface FrameReceiver {
  readonly user: string | undefined;
  readonly isTakenOver: boolean;
  receive(decoded: ReturnType<typeof parseFrameBody>): void;
  closedByTransport(): void;
}

export interface WebSocketConnectionOptions {
  /** Bytes of unsent output after which a client that does not read is disconnected. */
  maxBufferedBytes: number;
  /** Milliseconds a connection may stay unauthenticated; 0 turns the limit off. */
  authTimeoutMs: number;
}

let nextConnectionId = 1;

export class WebSocketConnection implements Connection {
  readonly id: string;
  readonly remoteAddress: string;
  private session!: FrameReceiver;
  private closed = false;
  private authTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: WebSocket,
    remoteAddress: string,
    private readonly options: WebSocketConnectionOptions,
    private readonly log: Logger,
  ) {
    this.id = `ws-${nextConnectionId++}`;
    this.remoteAddress = `ws ${remoteAddress}`;
  }

  /** Wires the socket to `session` and starts the authentication deadline. */
  attach(session: FrameReceiver): void {
    this.session = session;

    this.socket.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      const body = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      this.session.receive(parseFrameBody(body));
    });
    this.socket.on("error", (error) => {
      // ws reports protocol violations here, such as a message over maxPayload, and then closes.
      this.log.info({ connection: this.id, err: error }, "websocket error; closing the connection");
    });
    this.socket.on("close", () => {
      this.closed = true;
      clearTimeout(this.authTimer);
      // NOTE: messages that ws still buffered at the close are not passed on as unsent, so they are
      // lost. The TCP transport tracks each write and passes them back for offline delivery.
      this.session.closedByTransport();
    });

    if (this.options.authTimeoutMs > 0) {
      this.authTimer = setTimeout(() => this.checkAuthenticated(), this.options.authTimeoutMs);
      this.authTimer.unref();
    }
  }

  send(message: object): void {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) {
      return;
    }
    this.socket.send(JSON.stringify(message));

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
    this.socket.close(1000);
    // A client that never completes the closing handshake would keep the socket open.
    setTimeout(() => this.socket.terminate(), 2000).unref();
  }

  /** Drops the connection at once, for shutdown. */
  destroy(): void {
    this.closed = true;
    this.socket.terminate();
  }

  private checkAuthenticated(): void {
    if (this.session.user === undefined && !this.session.isTakenOver) {
      this.log.info({ connection: this.id, remote: this.remoteAddress }, "closing websocket that did not authenticate in time");
      this.close({ code: "notAuthenticated", message: `No successful auth within ${this.options.authTimeoutMs} ms. Send auth right after connecting.` });
    }
  }
}
