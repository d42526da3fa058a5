// One persistent UNIX-socket connection to a handler, used as a scheduler worker. One job is in
// flight at a time: the next job is sent only after the previous reply. The connection reconnects
// with backoff when the socket is missing or closes, which also covers handlers that close after
// every reply.

import net from "node:net";
import type { Logger } from "pino";
import { BesterError } from "../../core/errors.js";
import { formatAddress, type Job } from "../../core/jobs/job.js";
import type { HandlerWorker } from "../../core/jobs/scheduler.js";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { rawOr, rawValueAt, rememberRaw } from "../../core/protocol/raw-json.js";

export interface HandlerConnectionOptions {
  type: string;
  socket: string;
  /** Position in the type's pool, from 1. */
  index: number;
  timeoutMs: number;
  maxFrameBytes: number;
  /** Registers the connection as a worker once connected; returns the function that removes it. */
  addWorker: (worker: HandlerWorker) => () => void;
  /** Called for each final reply to a job, a progress frame excluded. */
  onReply?: () => void;
  /** How long connecting may fail before it is logged; 2 s unless set. */
  connectReportAfterMs?: number;
  log: Logger;
}

const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2000;
/** The time a handler started by hand usually takes to listen again, as after its restart. */
const CONNECT_REPORT_AFTER_MS = 2000;
/** Earlier jobs whose late frames are dropped rather than taken for a protocol error. */
const RECENT_JOB_IDS = 8;

/**
 * One read buffer for every handler connection. The kernel's bytes land here and are copied out
 * at once, in the same synchronous callback, so the connections never see each other's data.
 */
const readBuffer = Buffer.allocUnsafe(64 * 1024);

interface InFlight {
  job: Job;
  resolve: (reply: Record<string, unknown>) => void;
  reject: (error: BesterError) => void;
  onProgress: (progress: unknown) => void;
  timer?: NodeJS.Timeout;
  /** Whether the handler sent any frame for this job, a progress frame included. */
  answered: boolean;
}

/** A handler failure that happened because the link broke, so the job may run again elsewhere. */
export class HandlerLinkError extends BesterError {
  readonly retryable = true;

  /**
   * @param unread set when the handler closed the connection without reading the job, as a
   * handler that closes after each reply does to a job sent before its close arrived.
   */
  constructor(
    code: "handlerFailed",
    message: string,
    readonly unread = false,
  ) {
    super(code, message);
  }
}

export class HandlerConnection implements HandlerWorker {
  readonly name: string;
  private socket: net.Socket | undefined;
  private decoder: FrameDecoder | undefined;
  /** Final replies received on the current socket; none at a timeout hints at a framing fault. */
  private repliesOnSocket = 0;
  /**
   * Ids of the last jobs this connection replied to, newest last, so a late extra reply to one is
   * recognised and the log can name the last one.
   */
  private readonly recentJobIds: string[] = [];
  private removeWorker: (() => void) | undefined;
  private inFlight: InFlight | undefined;
  private backoffMs = MIN_BACKOFF_MS;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private everConnected = false;
  /** Code of the last error on the current socket, e.g. EPIPE. */
  private socketErrorCode: string | undefined;
  /** Code of the last failed connect that was logged, so each cause is logged once until a connect succeeds. */
  private loggedConnectError: string | undefined;
  /** Date.now() of the first failed connect since the last success. */
  private failingSince: number | undefined;

  constructor(private readonly options: HandlerConnectionOptions) {
    this.name = `${options.type}#${options.index}`;
  }

  /** Whether a job is on this connection now. */
  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  connect(): void {
    if (this.stopped) {
      return;
    }
    const decoder = new FrameDecoder(this.options.maxFrameBytes);
    this.decoder = decoder;
    this.repliesOnSocket = 0;
    // `onread` hands each read to the callback without the stream's 'data' machinery and without a
    // fresh 64 KiB allocation per read. That saved about 1.5 us of CPU per read in a standalone
    // ping-pong of 150-byte frames over a UNIX socket (Node.js 20, AMD EPYC).
    const socket = net.createConnection({
      path: this.options.socket,
      onread: {
        buffer: readBuffer,
        callback: (bytes: number, buffer: Uint8Array) => {
          // The copy is what the decoder may keep: part of a frame, or a large payload's bytes.
          this.receiveBytes(decoder, Buffer.from(buffer.subarray(0, bytes)));
          return true;
        },
      },
    });
    this.socket = socket;

    socket.on("connect", () => {
      this.backoffMs = MIN_BACKOFF_MS;
      this.socketErrorCode = undefined;
      this.loggedConnectError = undefined;
      this.failingSince = undefined;
      if (!this.everConnected) {
        this.everConnected = true;
        this.options.log.debug({ worker: this.name, socket: this.options.socket }, "handler connection open");
      }
      this.removeWorker = this.options.addWorker(this);
    });
    socket.on("end", () => {
      // The handler closed its side, as handlers that close after each reply do: take no more jobs here.
      this.removeWorker?.();
      this.removeWorker = undefined;
      socket.end();
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      this.socketErrorCode = error.code;
      this.options.log.debug({ worker: this.name, code: error.code }, "handler socket error");
    });
    socket.on("close", () => this.handleClose(socket));
  }

  run(job: Job, onProgress: (progress: unknown) => void): Promise<Record<string, unknown>> {
    const socket = this.socket;
    if (!socket || socket.destroyed || this.inFlight) {
      return Promise.reject(new HandlerLinkError("handlerFailed", `Handler connection ${this.name} is not ready.`));
    }

    let frame: Buffer;
    try {
      frame = encodeFrame({
        payload: rawOr(job, "data"),
        job: { jobID: job.id, type: job.type, from: formatAddress(job.user, job.origin), priority: job.priority },
      });
    } catch (error) {
      // Only data a plugin put into the job can fail to encode, such as a BigInt or a cycle. No job
      // is in flight yet, so the connection stays usable.
      return Promise.reject(new BesterError("handlerFailed", `Job ${job.id} could not be sent to handler "${job.type}" because its data is not valid JSON (${(error as Error).message}). Check the plugins that change job data.`));
    }

    return new Promise((resolve, reject) => {
      const inFlight: InFlight = { job, resolve, reject, onProgress, answered: false };
      this.inFlight = inFlight;

      if (this.options.timeoutMs > 0) {
        inFlight.timer = setTimeout(() => {
          // A handler that wrote a wrong length prefix looks like a slow one, so the message counts the partial frame.
          const partial = this.decoder?.describePartialFrame("the handler");
          const faster = `Make the handler faster or raise handlers.${job.type}.timeoutMs.`;
          // A handler that misreads the daemon's frames never replies at all, which also looks slow.
          // A progress frame for this job shows that it read the job frame, so it gets no such hint.
          const neverReplied = this.repliesOnSocket === 0 && !inFlight.answered ? ` It has not replied to any job on this connection; if it never does, check that it reads the 4-byte length prefix of the daemon's frames as little-endian and serves all its connections at once.` : "";
          const advice = partial ? `${faster} ${partial}` : `${faster}${neverReplied}`;
          // Discard the connection so a late reply is never taken for the next job.
          this.discard(new BesterError("handlerTimeout", `Handler "${job.type}" did not reply within ${this.options.timeoutMs} ms. ${advice}`));
        }, this.options.timeoutMs);
      }

      // The frame waits for the check phase, so the jobs for all connections freed in one poll are
      // written back to back and the handler process wakes once for them, not once per job.
      socket.cork();
      socket.write(frame);
      setImmediate(uncork, socket);
    });
  }

  /** Stops reconnecting and closes the socket; an in-flight job fails as retryable. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.socket?.destroy();
  }

  private receiveBytes(decoder: FrameDecoder, chunk: Buffer): void {
    for (const decoded of decoder.push(chunk)) {
      if (decoded.kind === "error") {
        this.discard(new BesterError("invalidHandlerOutput", `Handler "${this.options.type}" sent a bad frame: ${decoded.error.message}`));
        return;
      }
      this.receive(decoded.message);
    }
  }

  private receive(message: Record<string, unknown>): void {
    const inFlight = this.inFlight;
    if (!inFlight) {
      this.options.log.warn({ worker: this.name, type: this.options.type, jobId: this.recentJobIds.at(-1) }, "handler sent a frame after its reply to the last job; closing the connection");
      this.discard(new BesterError("invalidHandlerOutput", "unexpected frame"));
      return;
    }

    // Replies need not name their job. One that names an earlier job of this connection is a late
    // second reply to it: taking it as this job's reply would send that output under this job's id.
    const named = (message.job as { jobID?: unknown } | undefined)?.jobID;
    if (named !== undefined && named !== inFlight.job.id) {
      const fields = { worker: this.name, type: this.options.type, jobId: inFlight.job.id, frameJobId: named };
      if (this.recentJobIds.includes(named as string)) {
        this.options.log.warn(fields, "handler sent another frame for an earlier job; dropped it and kept waiting for the reply to the job in flight");
        return;
      }
      this.discard(new BesterError("invalidHandlerOutput", `Handler "${this.options.type}" sent a frame naming job ${JSON.stringify(named)} while job ${inFlight.job.id} was in flight. A reply that names its job must give the jobID of the job frame in job.jobID.`));
      return;
    }

    inFlight.answered = true;
    if ("progress" in message && !("director" in message) && !("error" in message)) {
      inFlight.onProgress(message.progress);
      return;
    }
    this.inFlight = undefined;
    this.repliesOnSocket += 1;
    this.recentJobIds.push(inFlight.job.id);
    if (this.recentJobIds.length > RECENT_JOB_IDS) {
      this.recentJobIds.shift();
    }
    clearTimeout(inFlight.timer);
    this.options.onReply?.();
    // Keeps a large payload's bytes so the jobOutput frame can reuse them.
    rememberRaw(message, "payload", rawValueAt(message, ["payload"]));
    inFlight.resolve(message);
  }

  /**
   * Takes the connection out of the pool before failing its job, so the scheduler cannot hand the
   * next job to a socket that is about to close. The close handler then reconnects.
   */
  private discard(error: BesterError): void {
    this.removeWorker?.();
    this.removeWorker = undefined;
    this.failInFlight(error);
    this.socket?.destroy();
  }

  private failInFlight(error: BesterError): void {
    const inFlight = this.inFlight;
    if (!inFlight) {
      return;
    }
    this.inFlight = undefined;
    clearTimeout(inFlight.timer);
    inFlight.reject(error);
  }

  private handleClose(socket: net.Socket): void {
    if (this.socket !== socket) {
      return;
    }
    this.socket = undefined;
    this.removeWorker?.();
    this.removeWorker = undefined;

    const wasConnected = !socket.connecting && socket.bytesWritten + socket.bytesRead > 0;
    // On Linux, writing to a UNIX socket the handler already closed fails with EPIPE, and a handler
    // that closes with the job still unread in its buffer makes our side fail with ECONNRESET. A
    // handler that read the job and then crashed gives a plain end of stream instead.
    // NOTE: only checked on Linux. Where the kernel reports these cases differently, such jobs
    // fall back to the normal `retries`.
    const unread = this.inFlight !== undefined && !this.inFlight.answered && (this.socketErrorCode === "EPIPE" || this.socketErrorCode === "ECONNRESET");
    this.failInFlight(new HandlerLinkError("handlerFailed", `The connection to handler "${this.options.type}" closed before it replied.`, unread));
    if (this.stopped) {
      return;
    }

    // Only the first connection of a type reports, so a pool of several does not repeat the line,
    // and only after failing for connectReportAfterMs, so a handler that is still starting is not reported.
    if (!wasConnected) {
      this.failingSince ??= Date.now();
    }
    const reportAfterMs = this.options.connectReportAfterMs ?? CONNECT_REPORT_AFTER_MS;
    if (!wasConnected && this.options.index === 1 && Date.now() - this.failingSince! >= reportAfterMs && this.socketErrorCode !== this.loggedConnectError) {
      this.loggedConnectError = this.socketErrorCode;
      const reason = this.socketErrorCode === "ENOENT" ? "the socket file does not exist" : this.socketErrorCode === "ECONNREFUSED" ? "nothing listens on the socket" : `connecting failed (${this.socketErrorCode ?? "closed"})`;
      this.options.log.warn({ type: this.options.type, socket: this.options.socket, code: this.socketErrorCode }, `cannot connect to handler "${this.options.type}": ${reason}; retrying until it is up. Check that the handler runs and listens on handlers.${this.options.type}.socket`);
    }

    // A handler that closes after each reply reconnects at once; a missing socket backs off.
    const delay = wasConnected ? 0 : this.backoffMs;
    if (!wasConnected) {
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    }
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.reconnectTimer.unref();
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}
