// The client's connection: TCP or TLS, opened within a time limit, or a connectFailed error that names
// what to check.

import { once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { BesterClientError } from "./client-error.js";

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Connection settings, a subset of ClientOptions. */
export interface SocketOptions {
  host?: string;
  port?: number;
  tls?: tls.ConnectionOptions;
  connectTimeoutMs?: number;
}

/** Opens a connection to the server; rejects with `connectFailed` when it cannot be opened in time. */
export async function openClientSocket(options: SocketOptions): Promise<net.Socket> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 2222;
  const socket = options.tls ? tls.connect({ host, port, ...options.tls }) : net.createConnection({ host, port });
  socket.setNoDelay(true);

  // Without a limit, a connection to an address that drops packets waits out the kernel's SYN
  // retries: about 127 s with Linux's default net.ipv4.tcp_syn_retries of 6.
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  let timedOut = false;
  const timer = connectTimeoutMs > 0 ? setTimeout(() => {
    timedOut = true;
    // ETIMEDOUT is what the kernel reports for the same case, so callers can treat both alike.
    socket.destroy(Object.assign(new Error(`No connection within ${connectTimeoutMs} ms.`), { code: "ETIMEDOUT" }));
  }, connectTimeoutMs) : undefined;
  try {
    await once(socket, options.tls ? "secureConnect" : "connect");
  } catch (error) {
    socket.destroy();
    const code = (error as NodeJS.ErrnoException).code;
    const tlsReason = `${code ?? "TLS"}: ${(error as Error).message}`;
    const reason = timedOut ? `timed out: no connection within ${connectTimeoutMs} ms` : options.tls ? tlsReason : code ?? (error as Error).message;
    const hint = options.tls ? "Check that the server runs, listens with TLS there, and that its certificate is trusted (tls.ca)." : "Check that the server runs and listens there.";
    throw new BesterClientError("connectFailed", `Connecting to ${host}:${port} failed (${reason}). ${hint}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
  return socket;
}
