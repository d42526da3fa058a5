// One client connection per system, behind one small interface the load loop drives: submit a
// payload, get called back when its output arrives. Bester NG and the naive relay share the Bester
// wire protocol; gearmand speaks its own binary protocol.

import type net from "node:net";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { encodeLongString } from "../../core/protocol/long-string.js";
import { connectLoopback, GearmanPacket, gearmanPacket, readGearmanPackets } from "./gearman-wire.js";

export interface JobLink {
  /** Sends one job; `done` runs when its output reaches this connection. */
  submit(payload: string, done: () => void): void;
  close(): void;
}

export interface Login {
  username: string;
  password: string;
  /** Register the account first (ignoring "already exists"). */
  register?: boolean;
}

/** A Bester-protocol link: replies come back in request order, outputs at any time. */
export class BesterLink implements JobLink {
  private replies: Array<(message: Record<string, unknown>) => void> = [];
  private waitingOutput = new Map<string, () => void>();
  /** Outputs that arrived before their submission reply named the job. */
  private earlyOutputs = new Set<string>();

  private constructor(private readonly socket: net.Socket) {
    const decoder = new FrameDecoder(64 * 1024 * 1024);
    socket.on("data", (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) {
        if (decoded.kind === "error") {
          throw new Error(`Bad frame from the server: ${decoded.error.message}`);
        }
        this.receive(decoded.message);
      }
    });
  }

  static async open(port: number, login?: Login): Promise<BesterLink> {
    const link = new BesterLink(await connectLoopback(port));
    if (login?.register) {
      await link.request({ request: "register", account: { username: login.username, password: login.password } });
    }
    if (login) {
      const reply = await link.request({ request: "auth", account: { username: login.username, password: login.password } });
      if ((reply.auth as { status?: string } | undefined)?.status !== "ok") {
        throw new Error(`Login as ${login.username} failed: ${JSON.stringify(reply)}`);
      }
    }
    return link;
  }

  request(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.replies.push(resolve);
      this.socket.write(encodeFrame(message));
    });
  }

  submit(payload: string, done: () => void): void {
    this.replies.push((reply) => {
      const submission = reply.submission as { status: string; jobID: string } | undefined;
      if (submission?.status !== "accepted") {
        throw new Error(`Job rejected: ${JSON.stringify(reply)}`);
      }
      if (this.earlyOutputs.delete(submission.jobID)) {
        done();
      } else {
        this.waitingOutput.set(submission.jobID, done);
      }
    });
    // The same encoding as BesterClient.submit, which pre-encodes a long string payload.
    this.socket.write(encodeFrame({ request: "newJob", job: { payload: { type: "upper", data: encodeLongString(payload) } } }));
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(message: Record<string, unknown>): void {
    if (message.reply === "jobOutput") {
      const outputId = (message.job as { jobID: string }).jobID;
      const jobId = outputId.slice(0, outputId.indexOf(":"));
      const done = this.waitingOutput.get(jobId);
      if (done) {
        this.waitingOutput.delete(jobId);
        done();
      } else {
        this.earlyOutputs.add(jobId);
      }
      return;
    }
    if (message.reply === "jobNotification" || message.reply === "jobProgress") {
      return;
    }
    this.replies.shift()?.(message);
  }
}

/** A Gearman client link: JOB_CREATED answers submissions in order, WORK_COMPLETE names the handle. */
export class GearmanLink implements JobLink {
  private created: Array<() => void> = [];
  private waitingOutput = new Map<string, () => void>();

  private constructor(private readonly socket: net.Socket) {
    readGearmanPackets(socket, (type, body) => {
      if (type === GearmanPacket.JOB_CREATED) {
        this.waitingOutput.set(body.toString(), this.created.shift()!);
      } else if (type === GearmanPacket.WORK_COMPLETE) {
        const handle = body.subarray(0, body.indexOf(0)).toString();
        const done = this.waitingOutput.get(handle);
        this.waitingOutput.delete(handle);
        done?.();
      }
    });
  }

  static async open(port: number): Promise<GearmanLink> {
    return new GearmanLink(await connectLoopback(port));
  }

  submit(payload: string, done: () => void): void {
    this.created.push(done);
    this.socket.write(gearmanPacket(GearmanPacket.SUBMIT_JOB, ["upper", "", payload]));
  }

  close(): void {
    this.socket.destroy();
  }
}
