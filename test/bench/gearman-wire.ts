// The few Gearman binary-protocol packets the benchmark needs: submit a job and wait for its
// result (client), and take jobs and return results (worker). A packet is a 4-byte magic
// ("\0REQ" or "\0RES"), a big-endian type and size, then arguments separated by NUL bytes.

import net from "node:net";

export const GearmanPacket = {
  CAN_DO: 1,
  PRE_SLEEP: 4,
  NOOP: 6,
  SUBMIT_JOB: 7,
  JOB_CREATED: 8,
  GRAB_JOB: 9,
  NO_JOB: 10,
  JOB_ASSIGN: 11,
  WORK_COMPLETE: 13,
} as const;

const HEADER_BYTES = 12;
const REQUEST_MAGIC = Buffer.from([0, 0x52, 0x45, 0x51]);

/** Encodes one request packet. */
export function gearmanPacket(type: number, args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  args.forEach((arg, index) => {
    if (index > 0) {
      parts.push(Buffer.from([0]));
    }
    parts.push(typeof arg === "string" ? Buffer.from(arg) : arg);
  });
  const body = Buffer.concat(parts);
  const header = Buffer.alloc(HEADER_BYTES);
  REQUEST_MAGIC.copy(header, 0);
  header.writeUInt32BE(type, 4);
  header.writeUInt32BE(body.length, 8);
  return Buffer.concat([header, body]);
}

/** Calls `onPacket` with each response packet's type and body as they complete. */
export function readGearmanPackets(socket: net.Socket, onPacket: (type: number, body: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= HEADER_BYTES) {
      const size = pending.readUInt32BE(8);
      if (pending.length < HEADER_BYTES + size) {
        break;
      }
      onPacket(pending.readUInt32BE(4), pending.subarray(HEADER_BYTES, HEADER_BYTES + size));
      pending = pending.subarray(HEADER_BYTES + size);
    }
  });
}

/** Connects to 127.0.0.1:port with Nagle off. */
export function connectLoopback(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: "127.0.0.1", port }, () => {
      socket.setNoDelay(true);
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/** A Gearman worker connection that upper-cases every `upper` job. */
export async function startGearmanWorker(port: number): Promise<net.Socket> {
  const socket = await connectLoopback(port);
  readGearmanPackets(socket, (type, body) => {
    if (type === GearmanPacket.NO_JOB) {
      socket.write(gearmanPacket(GearmanPacket.PRE_SLEEP, []));
    } else if (type === GearmanPacket.NOOP) {
      socket.write(gearmanPacket(GearmanPacket.GRAB_JOB, []));
    } else if (type === GearmanPacket.JOB_ASSIGN) {
      // JOB_ASSIGN carries handle, function name, workload.
      const first = body.indexOf(0);
      const second = body.indexOf(0, first + 1);
      const handle = body.subarray(0, first).toString();
      const result = body.subarray(second + 1).toString().toUpperCase();
      socket.write(Buffer.concat([gearmanPacket(GearmanPacket.WORK_COMPLETE, [handle, result]), gearmanPacket(GearmanPacket.GRAB_JOB, [])]));
    }
  });
  socket.write(gearmanPacket(GearmanPacket.CAN_DO, ["upper"]));
  socket.write(gearmanPacket(GearmanPacket.GRAB_JOB, []));
  return socket;
}
