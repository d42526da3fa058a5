// An example transport plugin: clients connect over WebSocket (so a browser can be a node) and
// send the same JSON messages as over TCP, one JSON object per text message instead of one per
// length-prefixed frame. Every message goes through the same core session as a TCP connection:
// validation, auth, ordering of replies and delivery of outputs.

import { WebSocketServer } from "ws";
import type { AddressInfo } from "node:net";
import { endConnectionsAtShutdown, validatePluginOptions, type Bester, type BesterPlugin } from "../../index.js";
import { WebSocketConnection } from "./websocket-connection.js";

export const PLUGIN_NAME = "example-transport-websocket";

export interface WebSocketTransportOptions {
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** TCP port; default 2223. 0 picks a free port. */
  port?: number;
  /** URL path clients connect to; default "/". */
  path?: string;
  /**
   * Maximum message size in bytes; default the server's maxFrameBytes, at most 1 GiB. A larger
   * message gets a `frameTooLarge` error, then a close with status 1009 (Message Too Big).
   * NOTE: a message over READ_LIMIT_FACTOR times this size gets the close without the error.
   */
  maxMessageBytes?: number;
}

/**
 * Multiple of maxMessageBytes that ws reads of one message before it closes the connection by
 * itself (its maxPayload). ws 8.23 checks maxPayload when a frame header arrives (lib/receiver.js)
 * and closes with status 1009 before it emits the error (lib/websocket.js), so no reply can go out.
 * A message up to this multiple is therefore read whole and gets the `frameTooLarge` error, and
 * the cap bounds what one connection buffers.
 */
const READ_LIMIT_FACTOR = 2;

/** ws 8 stores maxPayload as a 32-bit signed integer (`maxPayload | 0`), and a larger value turns the limit off. */
const MAX_WS_PAYLOAD = 2 ** 31 - 1;

const OPTIONS_SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    host: { type: "string", minLength: 1 },
    port: { type: "integer", minimum: 0, maximum: 65535 },
    path: { type: "string", pattern: "^/" },
    maxMessageBytes: { type: "integer", minimum: 1, maximum: 1073741824 },
  },
};

export function websocketTransport(options: WebSocketTransportOptions = {}): BesterPlugin {
  // Checked when the config is loaded, so a misspelt option stops start-up with its name.
  validatePluginOptions<WebSocketTransportOptions>(PLUGIN_NAME, OPTIONS_SCHEMA, options);
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const maxMessageBytes = options.maxMessageBytes ?? bester.config.maxFrameBytes;
      const connections = new Set<WebSocketConnection>();
      let server: WebSocketServer | undefined;

      bester.hooks.listen.tapPromise(PLUGIN_NAME, async (addresses) => {
        const host = options.host ?? "127.0.0.1";
        const maxPayload = Math.min(maxMessageBytes * READ_LIMIT_FACTOR, MAX_WS_PAYLOAD);
        const wss = new WebSocketServer({ host, port: options.port ?? 2223, path: options.path, maxPayload });
        await new Promise<void>((resolve, reject) => {
          wss.once("listening", resolve);
          wss.once("error", (error: NodeJS.ErrnoException) => {
            reject(new Error(`WebSocket listening on ${host}:${options.port ?? 2223} failed (${error.code ?? error.message}). Pick a free port in the plugin's port option.`, { cause: error }));
          });
        });
        server = wss;
        wss.on("error", (error) => log.error({ err: error }, "websocket listener error"));

        wss.on("connection", (socket, request) => {
          const remote = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
          const connection = new WebSocketConnection(socket, remote, { maxMessageBytes, maxBufferedBytes: maxMessageBytes + 8 * 1024 * 1024 }, log);
          connections.add(connection);
          socket.once("close", () => connections.delete(connection));
          connection.attach(bester.openSession(connection));
        });

        const bound = wss.address() as AddressInfo;
        const hostPart = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
        const address = `ws://${hostPart}:${bound.port}${options.path ?? "/"}`;
        addresses.push(address);
        log.info({ address }, "listening");
      });

      bester.hooks.stop.tapPromise(PLUGIN_NAME, async () => {
        // Stop accepting; open connections stay so in-flight jobs can still notify.
        server?.close();
      });

      bester.hooks.close.tapPromise(PLUGIN_NAME, async () => {
        // Lets the logged-in clients' shuttingDown frames and last replies out first.
        await endConnectionsAtShutdown(connections);
        await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      });
    },
  };
}
