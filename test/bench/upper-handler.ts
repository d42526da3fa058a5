// The benchmark's message handler: upper-cases a string payload and delivers it back to the
// submitter. Both the naive relay and Bester NG drive this same process over its UNIX socket.

import { deliverTo, serveHandler } from "../../plugins/handler-bridge/serve-handler.js";

const socket = process.env.BENCH_HANDLER_SOCKET ?? process.env.BESTER_SOCKET;

await serveHandler({ type: "upper", socket }, (payload, job) => ({
  payload: typeof payload === "string" ? payload.toUpperCase() : payload,
  director: deliverTo(job.from),
}));
process.stdout.write("ready\n");
