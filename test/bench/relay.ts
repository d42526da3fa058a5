// The naive relay: the least a Node.js daemon must do for the benchmark workload. It reads client
// frames, queues each job, hands it to a free handler connection and sends the handler's payload
// back as jobSubmission + jobOutput. No auth, store, hooks or validation: a floor to compare with.
// Usage: node --import tsx relay.ts <handlerSocket> <connections>; prints "ready <port>".

import { randomUUID } from "node:crypto";
import net from "node:net";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";

interface QueuedJob {
  id: string;
  data: unknown;
  client: net.Socket;
}

const [socketPath, connectionCount = "4"] = process.argv.slice(2);
if (!socketPath) {
  throw new Error("Usage: relay.ts <handlerSocket> <connections>");
}

const waiting: QueuedJob[] = [];
const free: net.Socket[] = [];
const current = new Map<net.Socket, QueuedJob>();

function onFrames(socket: net.Socket, onMessage: (message: Record<string, unknown>) => void): void {
  const decoder = new FrameDecoder();
  socket.on("data", (chunk: Buffer) => {
    for (const decoded of decoder.push(chunk)) {
      if (decoded.kind === "frame") {
        onMessage(decoded.message);
      }
    }
  });
}

function dispatch(): void {
  while (waiting.length > 0 && free.length > 0) {
    const worker = free.pop()!;
    const job = waiting.shift()!;
    current.set(worker, job);
    worker.write(encodeFrame({ payload: job.data, job: { jobID: job.id, type: "upper", from: "bench@relay", priority: 0 } }));
  }
}

for (let index = 0; index < Number(connectionCount); index += 1) {
  const worker = net.createConnection(socketPath);
  onFrames(worker, (reply) => {
    const job = current.get(worker)!;
    current.delete(worker);
    const output = { reply: "jobOutput", job: { jobID: `${job.id}:bench@relay`, payload: { type: "upper", data: reply.payload } } };
    job.client.write(encodeFrame(output));
    free.push(worker);
    dispatch();
  });
  worker.on("connect", () => {
    free.push(worker);
    dispatch();
  });
}

const server = net.createServer((client) => {
  client.setNoDelay(true);
  client.on("error", () => undefined);
  onFrames(client, (message) => {
    if (message.request === "auth") {
      client.write(encodeFrame({ reply: "auth", auth: { status: "ok", address: "bench@relay" } }));
      return;
    }
    const job = message.job as { payload: { data: unknown } } | undefined;
    if (message.request !== "newJob" || !job) {
      return;
    }
    const id = randomUUID();
    client.write(encodeFrame({ reply: "jobSubmission", submission: { status: "accepted", jobID: id }, tag: message.tag }));
    waiting.push({ id, data: job.payload.data, client });
    dispatch();
  });
});
server.maxConnections = 20_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`ready ${(server.address() as net.AddressInfo).port}\n`);
});
