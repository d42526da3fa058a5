// The TCP transport: listens on each configured address and turns every connection into a core
// session. Clients and peers share the listener, and the first frame distinguishes them.

import { readFile } from "node:fs/promises";
import net from "node:net";
import tls from "node:tls";
import type { Bester } from "../../core/bester.js";
import type { ResolvedListenConfig } from "../../core/config/types.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { endConnectionsAtShutdown } from "../../core/connection-shutdown.js";
import { TcpConnection } from "./tcp-connection.js";
import { listenAdvice } from "./listen-advice.js";

export const PLUGIN_NAME = "transport-tcp";

export interface TcpTransportOptions {
  listen: ResolvedListenConfig[];
  maxFrameBytes: number;
  /** Connections beyond this are closed at once; default 20000. */
  maxConnections?: number;
  /** Unsent bytes per connection before a non-reading client is cut off; default maxFrameBytes + 8 MiB. */
  maxBufferedBytes?: number;
  /** Milliseconds a busy connection's output may wait to leave in one write with later output; default 1. */
  outputCoalesceMs?: number;
  /** Whether the first listener's real address becomes the server name (config had port 0 and no server.name). */
  nameFromListener?: boolean;
}

export function transportTcp(options: TcpTransportOptions): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const servers: net.Server[] = [];
      const connections = new Set<TcpConnection>();
      const connectionOptions = {
        maxFrameBytes: options.maxFrameBytes,
        maxBufferedBytes: options.maxBufferedBytes ?? options.maxFrameBytes + 8 * 1024 * 1024,
        outputCoalesceMs: options.outputCoalesceMs ?? 1,
      };

      const accept = (socket: net.Socket) => {
        const connection = new TcpConnection(socket, connectionOptions, log);
        connections.add(connection);
        socket.once("close", () => connections.delete(connection));
        connection.attach(bester.openSession(connection));
      };

      // A port in use would otherwise show only after every handler process started, which takes
      // seconds. Another process may still take the port in between; listen then reports it.
      bester.hooks.initialize.tapPromise(PLUGIN_NAME, async () => {
        for (const entry of options.listen) {
          if (entry.port !== 0) {
            await probePort(entry.host, entry.port);
          }
        }
      });

      bester.hooks.listen.tapPromise(PLUGIN_NAME, async (addresses) => {
        for (const [index, entry] of options.listen.entries()) {
          const server = entry.tls ? await createTlsServer(entry.tls, accept) : net.createServer({ noDelay: true }, accept);
          server.maxConnections = options.maxConnections ?? 20_000;
          server.on("drop", (dropped) => log.warn({ remote: dropped?.remoteAddress }, "connection limit reached; dropped a connection"));

          await new Promise<void>((resolve, reject) => {
            server.once("error", reject);
            server.listen(entry.port, entry.host, () => {
              server.off("error", reject);
              resolve();
            });
          }).catch((error: NodeJS.ErrnoException) => {
            throw listenError(entry.host, entry.port, error);
          });
          server.on("error", (error) => log.error({ err: error }, "listener error"));
          servers.push(server);

          const bound = server.address() as net.AddressInfo;
          const address = `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
          addresses.push(address);
          if (index === 0 && options.nameFromListener) {
            bester.setServerName(address);
          }
          log.info({ address }, "listening");
        }
      });

      bester.hooks.stop.tapPromise(PLUGIN_NAME, async () => {
        // Stop accepting but keep open connections so in-flight jobs can still notify.
        for (const server of servers) {
          server.close();
        }
      });

      bester.hooks.close.tapPromise(PLUGIN_NAME, async () => {
        // Lets the logged-in clients' shuttingDown frames and last replies out first.
        await endConnectionsAtShutdown(connections);
        await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
      });
    },
  };
}

/** Creates a listener that accepts only TLS, reading the key and certificate files once at start-up. */
async function createTlsServer(files: { key: string; cert: string }, accept: (socket: net.Socket) => void): Promise<net.Server> {
  const [key, cert] = await Promise.all([readFile(files.key), readFile(files.cert)]).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`Reading the TLS key or certificate failed (${error.code ?? error.message}: ${error.path ?? ""}). Check listen.tls.key and listen.tls.cert.`, { cause: error });
  });
  return tls.createServer({ key, cert }, accept);
}

function listenError(host: string, port: number, error: NodeJS.ErrnoException): Error {
  return new Error(`Listening on ${host}:${port} failed (${error.code ?? error.message}). ${listenAdvice(error.code, "listen (or bester start --listen)")}`, { cause: error });
}

/** Binds `host:port` and lets it go again, or rejects with the error listening would give. */
async function probePort(host: string, port: number): Promise<void> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", reject);
    probe.listen(port, host, () => probe.close(() => resolve()));
  }).catch((error: NodeJS.ErrnoException) => {
    throw listenError(host, port, error);
  });
}
