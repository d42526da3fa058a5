// A client for reliability tests: logs in, submits many jobs pipelined, and counts every
// jobOutput and jobNotification per job id across reconnections and daemon restarts.

import net from "node:net";
import { encodeFrame, FrameDecoder } from "../core/protocol/frame-codec.js";

export class JobTracker {
  /** Notifications per job id, over every connection this tracker used. */
  readonly notifications = new Map<string, Array<Record<string, unknown>>>();
  /** Outputs per job id (the part of the output id before `:`). */
  readonly outputs = new Map<string, number>();
  readonly accepted: string[] = [];
  readonly rejected: Array<Record<string, unknown>> = [];
  private socket: net.Socket | undefined;
  private replies: Array<Record<string, unknown>> = [];
  private replyWaiters: Array<(reply: Record<string, unknown>) => void> = [];

  async connect(port: number): Promise<void> {
    const socket = net.createConnection({ port, host: "127.0.0.1" });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const decoder = new FrameDecoder(64 * 1024 * 1024);
    socket.on("data", (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) {
        if (decoded.kind === "frame") {
          this.receive(decoded.message);
        }
      }
    });
    socket.on("error", () => undefined);
    this.socket = socket;
    this.replies = [];
    this.replyWaiters = [];
  }

  /** Logs in, registering first when `register` is set; throws unless auth succeeds. */
  async login(username: string, password: string, register: boolean): Promise<void> {
    if (register) {
      await this.request({ request: "register", account: { username, password } });
    }
    const reply = await this.request({ request: "auth", account: { username, password } });
    if ((reply.auth as { status?: string } | undefined)?.status !== "ok") {
      throw new Error(`Login failed: ${JSON.stringify(reply)}`);
    }
  }

  /** Submits `count` jobs at once and resolves when every submission reply arrived. */
  async submit(type: string, count: number, data: (index: number) => unknown = (index) => ({ index })): Promise<string[]> {
    const pending: Array<Promise<Record<string, unknown>>> = [];
    for (let index = 0; index < count; index += 1) {
      pending.push(this.request({ request: "newJob", job: { payload: { type, data: data(index) } } }));
    }
    const ids: string[] = [];
    for (const reply of await Promise.all(pending)) {
      const submission = reply.submission as { status: string; jobID?: string };
      if (submission?.status === "accepted") {
        ids.push(submission.jobID!);
      } else {
        this.rejected.push(reply);
      }
    }
    this.accepted.push(...ids);
    return ids;
  }

  /** Number of accepted jobs with at least one notification. */
  finishedCount(ids: string[] = this.accepted): number {
    return ids.filter((id) => this.notifications.has(id)).length;
  }

  /** Polls until `condition` holds, failing after `timeoutMs`. */
  async waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for ${what}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Resolves once the server closed the connection and every byte it sent was read. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.closed) {
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("The server did not close the connection")), timeoutMs);
      socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private request(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.socket!.write(encodeFrame(message));
    return new Promise((resolve) => this.replyWaiters.push(resolve));
  }

  private receive(message: Record<string, unknown>): void {
    const job = message.job as { jobID?: string } | undefined;
    if (message.reply === "jobNotification" && job?.jobID) {
      this.notifications.set(job.jobID, [...(this.notifications.get(job.jobID) ?? []), job]);
      return;
    }
    if (message.reply === "jobOutput" && job?.jobID) {
      const id = job.jobID.slice(0, job.jobID.indexOf(":"));
      this.outputs.set(id, (this.outputs.get(id) ?? 0) + 1);
      return;
    }
    if (message.reply === "jobProgress") {
      return;
    }
    // Replies to requests arrive in request order.
    const waiter = this.replyWaiters.shift();
    if (waiter) {
      waiter(message);
    } else {
      this.replies.push(message);
    }
  }
}
