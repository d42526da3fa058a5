// A peer link's socket with the shared frame codec: frames in through a callback, messages out as
// frames. Used by outgoing links and by the TLS peer listener; peer links on the client port go
// through the TCP transport instead.

import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type { WireError } from "../../core/errors.js";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import type { Connection } from "../../core/sessions.js";
import { endSocketGracefully } from "../transport-tcp/end-socket.js";

let nextLinkId = 1;

export class FramedSocket implements Connection {
  readonly id: string;
  readonly remoteAddress: string;
  private closed = false;

  constructor(
    readonly socket: Socket,
    maxFrameBytes: number,
    onMessage: (message: Record<string, unknown>) => void,
    onFramingError: (error: WireError) => void,
  ) {
    this.id = `peer-${nextLinkId++}`;
    this.remoteAddress = `${socket instanceof TLSSocket ? "tls" : "tcp"} ${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);

    const decoder = new FrameDecoder(maxFrameBytes);
    socket.on("data", (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) {
        if (this.closed) {
          return;
        }
        if (decoded.kind === "error") {
          onFramingError(decoded.error);
          if (decoded.fatal) {
            this.close(decoded.error);
          }
          continue;
        }
        onMessage(decoded.message);
      }
    });
    socket.on("close", () => {
      this.closed = true;
    });
  }

  /** The TLS socket, for channel binding; undefined on a plaintext link. */
  get tlsSocket(): TLSSocket | undefined {
    return this.socket instanceof TLSSocket ? this.socket : undefined;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(message: object): void {
    if (!this.closed) {
      this.socket.write(encodeFrame(message));
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
    endSocketGracefully(this.socket);
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

/**
 * Formats an error that a peer sent as `code: "message"`. The quotes mark the peer's own text, which
 * the caller prefixes with the peer's name.
 */
export function describeWireError(error: unknown): string {
  const wire = error as Partial<WireError> | undefined;
  return wire?.code ? `${wire.code}: ${JSON.stringify(wire.message ?? "")}` : "no reason given";
}
