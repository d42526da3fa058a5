// BesterClient: a typed client for the TCP protocol, used by `bester submit` and by programs that
// submit jobs. Replies arrive in request order, so each request waits in a FIFO for its reply;
// jobOutput, jobNotification and jobProgress arrive at any time and become events.

import { EventEmitter, once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import type { WireError } from "../../core/errors.js";

export interface ClientOptions {
  host?: string;
  port?: number;
  /** TLS options; when given the connection uses TLS. */
  tls?: tls.ConnectionOptions;
  maxFrameBytes?: number;
}

export interface JobOutputEvent {
  /** `<jobID>:<user>@<server>` */
  jobID: string;
  payload: { type: string; data: unknown };
}

export interface JobNotificationEvent {
  jobID: string;
  status: "completed" | "failed";
  error?: WireError;
}

export interface JobProgressEvent {
  jobID: string;
  progress: unknown;
}

export interface RunResult {
  jobID: string;
  outputs: JobOutputEvent[];
  notification: JobNotificationEvent;
}

/** A request that the server answered with an error; `code` is the wire error code. */
export class BesterClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "BesterClientError";
  }
}

interface Pending {
  resolve: (reply: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

export class BesterClient extends EventEmitter {
  private pending: Pending[] = [];
  private closedError: Error | undefined;

  private constructor(private readonly socket: net.Socket, maxFrameBytes: number) {
    super();
    const decoder = new FrameDecoder(maxFrameBytes);
    socket.on("data", (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) {
        if (decoded.kind === "error") {
          this.fail(new BesterClientError(decoded.error.code, `The server sent a bad frame: ${decoded.error.message}`));
          socket.destroy();
          return;
        }
        this.receive(decoded.message);
      }
    });
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => {
      this.fail(new BesterClientError("connectionClosed", "The connection to the server closed."));
      this.emit("close");
    });
  }

  /** Connects to a server; rejects when the connection fails. */
  static async connect(options: ClientOptions = {}): Promise<BesterClient> {
    const host = options.host ?? "127.0.0.1";
    const port = options.port ?? 2222;
    const socket = options.tls ? tls.connect({ host, port, ...options.tls }) : net.createConnection({ host, port });
    socket.setNoDelay(true);
    await once(socket, options.tls ? "secureConnect" : "connect");
    return new BesterClient(socket, options.maxFrameBytes ?? 16 * 1024 * 1024);
  }

  /** Sends one request and resolves with its reply, whatever its kind. */
  request(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.closedError) {
      return Promise.reject(this.closedError);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(encodeFrame(message));
    });
  }

  /** Logs in; rejects with the server's error code on failure. */
  async auth(username: string, password: string): Promise<string> {
    const reply = await this.request({ request: "auth", account: { username, password } });
    const auth = expectReply(reply, "auth").auth as { status: string; address?: string; error?: WireError };
    if (auth.status !== "ok") {
      throw new BesterClientError(auth.error?.code ?? "invalidCredentials", auth.error?.message ?? "Login failed.");
    }
    return auth.address!;
  }

  /** Creates an account; rejects with the server's error code on failure. */
  async register(username: string, password: string): Promise<void> {
    const reply = await this.request({ request: "register", account: { username, password } });
    const register = expectReply(reply, "register").register as { status: string; error?: WireError };
    if (register.status !== "ok") {
      throw new BesterClientError(register.error?.code ?? "internalError", register.error?.message ?? "Registration failed.");
    }
  }

  /** Submits a job and resolves with its id once accepted; rejects with the rejection code. */
  async submit(type: string, data: unknown, options: { priority?: number; tag?: string } = {}): Promise<string> {
    const job: Record<string, unknown> = { payload: { type, data } };
    if (options.priority !== undefined) {
      job.priority = options.priority;
    }
    const message: Record<string, unknown> = { request: "newJob", job };
    if (options.tag !== undefined) {
      message.tag = options.tag;
    }
    const reply = await this.request(message);
    const submission = expectReply(reply, "jobSubmission").submission as { status: string; jobID?: string; error?: WireError };
    if (submission.status !== "accepted") {
      throw new BesterClientError(submission.error?.code ?? "internalError", submission.error?.message ?? "The job was rejected.");
    }
    return submission.jobID!;
  }

  /** Submits a job and resolves once its notification arrives, with every output it produced for this connection's user. */
  async run(type: string, data: unknown, options: { priority?: number; onProgress?: (progress: unknown) => void } = {}): Promise<RunResult> {
    const outputs: JobOutputEvent[] = [];
    let jobID: string | undefined;
    let resolveDone!: (notification: JobNotificationEvent) => void;
    const done = new Promise<JobNotificationEvent>((resolve) => (resolveDone = resolve));
    // Events that arrive before the submission reply (when an earlier request was slow) wait here.
    const early: Array<{ kind: string; event: JobOutputEvent | JobNotificationEvent }> = [];

    const onOutput = (event: JobOutputEvent) => (jobID ? matchOutput(event) : early.push({ kind: "output", event }));
    const onNotification = (event: JobNotificationEvent) => (jobID ? matchNotification(event) : early.push({ kind: "notification", event }));
    const onProgress = (event: JobProgressEvent) => event.jobID === jobID && options.onProgress?.(event.progress);
    const matchOutput = (event: JobOutputEvent) => event.jobID.startsWith(`${jobID}:`) && outputs.push(event);
    const matchNotification = (event: JobNotificationEvent) => event.jobID === jobID && resolveDone(event);

    this.on("output", onOutput);
    this.on("notification", onNotification);
    this.on("progress", onProgress);
    try {
      jobID = await this.submit(type, data, { priority: options.priority });
      for (const { kind, event } of early) {
        kind === "output" ? matchOutput(event as JobOutputEvent) : matchNotification(event as JobNotificationEvent);
      }
      const closed = once(this, "close").then(() => {
        throw new BesterClientError("connectionClosed", `The connection closed before job ${jobID} finished.`);
      });
      const notification = await Promise.race([done, closed]);
      return { jobID, outputs, notification };
    } finally {
      this.off("output", onOutput);
      this.off("notification", onNotification);
      this.off("progress", onProgress);
    }
  }

  /** Closes the connection after pending writes. */
  async close(): Promise<void> {
    if (this.socket.destroyed) {
      return;
    }
    this.socket.end();
    await once(this.socket, "close");
  }

  private receive(message: Record<string, unknown>): void {
    const job = message.job as Record<string, unknown> | undefined;
    switch (message.reply) {
      case "jobOutput":
        this.emit("output", job as unknown as JobOutputEvent);
        return;
      case "jobNotification":
        this.emit("notification", job as unknown as JobNotificationEvent);
        return;
      case "jobProgress":
        this.emit("progress", job as unknown as JobProgressEvent);
        return;
    }

    const pending = this.pending.shift();
    if (pending) {
      pending.resolve(message);
    } else {
      // An error with no request waiting, such as an authentication timeout before a close.
      this.emit("serverError", message.error as WireError);
    }
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    for (const pending of this.pending.splice(0)) {
      pending.reject(error);
    }
  }
}

function expectReply(reply: Record<string, unknown>, name: string): Record<string, unknown> {
  if (reply.reply === name) {
    return reply;
  }
  const error = reply.error as WireError | undefined;
  throw new BesterClientError(error?.code ?? "unexpectedReply", error?.message ?? `Expected a ${name} reply, got ${JSON.stringify(reply.reply)}.`);
}
