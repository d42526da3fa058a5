// Opens the daemon's side of a handler connection directly, for unit tests of its reads and writes.

import { pino } from "pino";
import { HandlerConnection } from "../plugins/handler-bridge/handler-connection.js";

/** Opens a HandlerConnection of `type` to `socketPath` and resolves once it is ready for jobs. */
export async function openHandlerConnection(socketPath: string, options: { type: string; index: number; timeoutMs?: number; maxFrameBytes?: number }): Promise<HandlerConnection> {
  let ready!: () => void;
  const connected = new Promise<void>((resolve) => (ready = resolve));
  const connection = new HandlerConnection({
    type: options.type,
    socket: socketPath,
    index: options.index,
    timeoutMs: options.timeoutMs ?? 5000,
    maxFrameBytes: options.maxFrameBytes ?? 4 * 1024 * 1024,
    addWorker: () => {
      ready();
      return () => undefined;
    },
    log: pino({ level: "silent" }),
  });
  connection.connect();
  await connected;
  return connection;
}
