// The TLS listener for peer links. TLS links get their own port (federation.listen) because the
// client port speaks plain frames from the first byte, and telling a TLS ClientHello from a frame
// length there would mean guessing. Only peers connect here: the first frame must be a peerHello.

import { readFile } from "node:fs/promises";
import type { AddressInfo, Socket } from "node:net";
import tls from "node:tls";
import type { Logger } from "pino";
import type { ListenConfig } from "../../core/config/types.js";
import { BesterError } from "../../core/errors.js";
import { listenAdvice } from "../transport-tcp/listen-advice.js";
import { FramedSocket } from "./framed-socket.js";
import { IncomingLink, type IncomingContext } from "./incoming-link.js";

export interface TlsFiles {
  key: string;
  cert: string;
  ca?: string;
}

/** Reads the PEM files named in federation.tls. */
export async function readTlsFiles(files: TlsFiles): Promise<{ key: Buffer; cert: Buffer; ca?: Buffer }> {
  const read = async (file: string, key: string) => {
    try {
      return await readFile(file);
    } catch (error) {
      throw new BesterError("invalidConfig", `Reading federation.tls.${key} (${file}) failed: ${(error as Error).message}. Check the path.`, { cause: error });
    }
  };
  return {
    key: await read(files.key, "key"),
    cert: await read(files.cert, "cert"),
    ca: files.ca === undefined ? undefined : await read(files.ca, "ca"),
  };
}

export class TlsPeerListener {
  private server: tls.Server | undefined;
  private readonly links = new Set<FramedSocket>();
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly context: IncomingContext,
    private readonly credentials: { key: Buffer; cert: Buffer; ca?: Buffer },
    private readonly maxFrameBytes: number,
    private readonly log: Logger,
  ) {}

  /** Listens and resolves with the bound `host:port`. */
  async listen(address: Required<ListenConfig>): Promise<string> {
    const { key, cert, ca } = this.credentials;
    // With a CA, both sides must present a certificate it signed. Without one TLS only encrypts, and
    // the handshake's channel binding still ties the peer's identity to this TLS session.
    const server = tls.createServer({ key, cert, ca, requestCert: ca !== undefined, rejectUnauthorized: ca !== undefined }, (socket) => this.accept(socket));
    server.on("tlsClientError", (error) => this.log.warn({ err: error }, "TLS handshake with a peer failed"));
    // Raw sockets are tracked too, so close() also cuts connections still in the TLS handshake.
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    this.server = server;

    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(address.port, address.host, () => {
        server.off("error", reject);
        resolve();
      });
    }).catch((error: NodeJS.ErrnoException) => {
      throw new BesterError("invalidConfig", `Listening for TLS peer links on ${address.host}:${address.port} failed (${error.code ?? error.message}). ${listenAdvice(error.code, "federation.listen")}`, { cause: error });
    });
    server.on("error", (error) => this.log.error({ err: error }, "TLS peer listener error"));

    const bound = server.address() as AddressInfo;
    return `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
  }

  async close(): Promise<void> {
    for (const link of this.links) {
      link.destroy();
    }
    for (const socket of this.sockets) {
      socket.destroy();
    }
    await new Promise((resolve) => (this.server ? this.server.close(resolve) : resolve(undefined)));
  }

  private accept(socket: tls.TLSSocket): void {
    let incoming: IncomingLink | undefined;
    const link = new FramedSocket(
      socket,
      this.maxFrameBytes,
      (message) => {
        if (incoming) {
          incoming.receive(message);
          return;
        }
        incoming = new IncomingLink(this.context, link, socket);
        const reply = incoming.hello(message);
        link.send(reply);
      },
      (error) => link.send({ reply: "error", error }),
    );
    this.links.add(link);
    socket.on("error", (error) => this.log.debug({ err: error, connection: link.id }, "peer socket error"));
    socket.once("close", () => {
      this.links.delete(link);
      incoming?.closed();
    });
  }
}
