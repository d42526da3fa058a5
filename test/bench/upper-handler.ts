// The benchmark's message handler: upper-cases a string payload and delivers it back to the
// submitter. Both the naive relay and Bester NG drive this same process over its UNIX socket.
// It loads serveHandler from dist/, the JavaScript a handler gets from the package, like the daemon.

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const { deliverTo, serveHandler } = (await import(pathToFileURL(path.join(root, "dist", "plugins", "handler-bridge", "serve-handler.js")).href)) as typeof import("../../plugins/handler-bridge/serve-handler.js");

const socket = process.env.BENCH_HANDLER_SOCKET ?? process.env.BESTER_SOCKET;

await serveHandler({ type: "upper", socket }, (payload, job) => ({
  payload: typeof payload === "string" ? payload.toUpperCase() : payload,
  director: deliverTo(job.from),
}));
// A clean exit lets --cpu-prof write the handler's profile when the daemon stops it.
process.on("SIGTERM", () => process.exit(0));
process.stdout.write("ready\n");
