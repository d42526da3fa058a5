// BesterClient: a typed client for the TCP protocol, used by `bester submit`, `bester listen` and by
// programs that submit jobs. Replies arrive in request order, so each request waits in a FIFO for
// its reply. jobOutput, jobNotification and jobProgress arrive at any time and become events.

import { EventEmitter, once } from "node:events";
import net from "node:net";
import type tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { encodeLongString } from "../../core/protocol/long-string.js";
import type { WireError } from "../../core/errors.js";
import type { ServerStatus } from "../../core/status.js";
import { isStoreOutageReply, RECONNECT_DEFAULTS, reconnectDelayMs, retryWhileServerDown, type ReconnectOptions } from "./client-backoff.js";
import { BesterClientError } from "./client-error.js";
import { openClientSocket } from "./client-socket.js";
import { PendingRequests } from "./client-requests.js";
import { runJob, type RunOptions, type RunResult } from "./client-run.js";
import { iterateEvents, NotifiedJobs, type ClientEvents, type JobNotificationEvent, type JobOutputEvent, type JobProgressEvent } from "./client-events.js";

export { RECONNECT_DEFAULTS, reconnectDelayMs, type ReconnectOptions } from "./client-backoff.js";
export { BesterClientError, type ClientErrorCode, type ClientOnlyErrorCode } from "./client-error.js";
export type { ClientEvents, JobNotificationEvent, JobOutputEvent, JobProgressEvent } from "./client-events.js";
export type { RunOptions, RunResult } from "./client-run.js";

export interface ClientOptions {
  host?: string;
  port?: number;
  /** `node:tls` options; when given the connection uses TLS, as a listener with `listen.tls` expects. */
  tls?: tls.ConnectionOptions;
  maxFrameBytes?: number;
  /**
   * Reconnects after a lost connection and logs in again with the credentials of the last
   * successful auth(). Requests made while reconnecting wait for the new connection; requests
   * in flight when the connection broke reject with `connectionClosed`.
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * How many notified job ids the client remembers to drop a repeated `jobNotification`; default
   * 100 000. The daemon may repeat a notification after it crashed (see docs/reliability.md).
   */
  rememberNotifications?: number;
  /** Milliseconds a connection attempt may take before it fails with `connectFailed`; default 10 000, 0 for no limit. */
  connectTimeoutMs?: number;
  /**
   * Milliseconds connect() keeps retrying while the server is down, with the reconnect delays;
   * default 0, a single attempt. Infinity waits without limit. The server counts as down while
   * connecting is refused, reset, timed out or unreachable, or its name lookup fails for now
   * (EAI_AGAIN). Other errors, such as TLS trust errors, reject at once.
   */
  waitForServerMs?: number;
  /**
   * Milliseconds a request may wait for its reply, counted from when its frame was written; default
   * 30 000, 0 for no limit. A request without a reply in time fails with `timedOut`, and the client
   * closes the connection (and reconnects, when `reconnect` is on), because a late reply would be
   * taken for the next request's. close() waits at most this long for the server to close its
   * side. Waiting for a job's notification is not a request: see `RunOptions.timeoutMs`.
   */
  requestTimeoutMs?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * Returns whether an `error` message sent outside any request ends the session for good. The server
 * sends `notAuthenticated` that way only right before it closes the connection: the user's account
 * was removed, or the connection sent no auth in time. The client then reports that reason instead
 * of reconnecting, whose login would hide it behind `invalidCredentials` or end the same way.
 */
export function endsSession(error: WireError): boolean {
  return error.code === "notAuthenticated";
}

export class BesterClient extends EventEmitter<ClientEvents> {
  private socket!: net.Socket;
  private pending!: PendingRequests;
  private credentials: { username: string; password: string } | undefined;
  /** Set while reconnecting; resolves once requests may be sent again. */
  private reconnecting: Promise<void> | undefined;
  private closing = false;
  /** True while the reconnect loop runs, so a socket it opens and loses starts no second loop. */
  private inReconnectLoop = false;
  private closedError: BesterClientError | undefined;
  /** The error the server sent on the current connection before ending the session, which becomes the reason of the close. */
  private sessionEndedBy: BesterClientError | undefined;
  /** Set when the server announced with shuttingDown that it closes the connection because it stops. */
  private serverStopping = false;
  /** Whether the current connection logged in; a later notAuthenticated then ends the session. */
  private loggedIn = false;
  private readonly reconnectOptions: Required<ReconnectOptions> | undefined;
  private readonly notified: NotifiedJobs;

  private constructor(private readonly options: ClientOptions) {
    super();
    // Each concurrent run() adds its own listeners, so many jobs at once is normal use.
    this.setMaxListeners(0);
    this.notified = new NotifiedJobs(options.rememberNotifications ?? 100_000);
    const reconnect = options.reconnect === true ? {} : options.reconnect || undefined;
    this.reconnectOptions = reconnect && {
      retries: reconnect.retries ?? Number.POSITIVE_INFINITY,
      delayMs: reconnect.delayMs ?? RECONNECT_DEFAULTS.delayMs,
      maxDelayMs: reconnect.maxDelayMs ?? RECONNECT_DEFAULTS.maxDelayMs,
    };
  }

  /**
   * Connects to a server; rejects with `connectFailed` when the connection cannot be opened. With
   * `waitForServerMs` it first retries for that long while the server is down.
   */
  static async connect(options: ClientOptions = {}): Promise<BesterClient> {
    const client = new BesterClient(options);
    const waitMs = options.waitForServerMs ?? 0;
    const backoff = client.reconnectOptions ?? RECONNECT_DEFAULTS;
    const socket = waitMs > 0 ? await retryWhileServerDown(() => client.openSocket(), waitMs, backoff) : await client.openSocket();
    client.attach(socket);
    return client;
  }

  /** Whether the client is closed for good. */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Whether close() was called, as opposed to the connection being lost. */
  get closedByCaller(): boolean {
    return this.closing;
  }

  /** Sends one request and resolves with its reply, whatever its kind. */
  async request(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.reconnecting) {
      await this.reconnecting;
    }
    return this.send(message);
  }

  /** Logs in and resolves with the address `user@server`; rejects with the server's error code on failure. */
  async auth(username: string, password: string): Promise<string> {
    const address = await this.login(username, password);
    this.credentials = { username, password };
    return address;
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
    const job: Record<string, unknown> = { payload: { type, data: encodeLongString(data) } };
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

  /**
   * Submits a job and resolves once its notification arrives, with every output it produced for
   * this connection's user. A failed job resolves too: check `notification.status`.
   */
  run(type: string, data: unknown, options: RunOptions = {}): Promise<RunResult> {
    return runJob(this, type, data, options);
  }

  /** Reads the server status; needs an admin account, otherwise rejects with `notPermitted`. */
  async status(): Promise<ServerStatus> {
    const reply = await this.request({ request: "status" });
    return expectReply(reply, "status").status as ServerStatus;
  }

  /** Iterates over every job output from now on, until the client closes. */
  outputs(): AsyncIterableIterator<JobOutputEvent> {
    return iterateEvents<JobOutputEvent>(this, "output", "close", () => this.closed);
  }

  /** Iterates over every job notification from now on, until the client closes. */
  notifications(): AsyncIterableIterator<JobNotificationEvent> {
    return iterateEvents<JobNotificationEvent>(this, "notification", "close", () => this.closed);
  }

  /** Iterates over every progress report from now on, until the client closes. */
  progress(): AsyncIterableIterator<JobProgressEvent> {
    return iterateEvents<JobProgressEvent>(this, "progress", "close", () => this.closed);
  }

  /**
   * Closes the connection after pending writes and stops reconnecting. It waits for the server to
   * close its side, so messages already on their way are read, but at most requestTimeoutMs: a
   * server that stopped responding never does.
   */
  async close(): Promise<void> {
    this.closing = true;
    if (this.closed) {
      return;
    }
    const closed = once(this, "close");
    if (this.socket.destroyed) {
      // The reconnect loop is waiting between sockets, so end the client here; the loop checks `closing` and stops.
      this.end();
    } else {
      this.socket.end();
    }

    const limitMs = this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const socket = this.socket;
    const timer = limitMs > 0 ? setTimeout(() => socket.destroy(), limitMs) : undefined;
    try {
      await closed;
    } finally {
      clearTimeout(timer);
    }
  }

  private openSocket(): Promise<net.Socket> {
    return openClientSocket(this.options);
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    this.sessionEndedBy = undefined;
    this.serverStopping = false;
    this.loggedIn = false;
    const decoder = new FrameDecoder(this.options.maxFrameBytes ?? 16 * 1024 * 1024);
    const closedPlainly = new BesterClientError("connectionClosed", "The connection to the server closed.");
    let lost: Error = closedPlainly;
    const requestTimeoutMs = this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.pending = new PendingRequests(requestTimeoutMs, (timedOut) => {
      lost = new BesterClientError("connectionClosed", `The client closed the connection, because a request got no reply within ${requestTimeoutMs} ms.`, { cause: timedOut });
      socket.destroy();
    });

    socket.on("data", (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) {
        if (decoded.kind === "error") {
          lost = new BesterClientError(decoded.error.code, `The server sent a bad frame: ${decoded.error.message}`);
          socket.destroy();
          return;
        }
        this.receive(decoded.message);
      }
    });
    socket.on("error", (error) => {
      lost = new BesterClientError("connectionClosed", `The connection to the server failed (${(error as NodeJS.ErrnoException).code ?? error.message}).`, { cause: error });
    });
    socket.on("close", () => {
      // A socket from a failed reconnect attempt closes late; only the current socket counts.
      if (socket !== this.socket) {
        return;
      }
      if (lost === closedPlainly && this.serverStopping) {
        lost = new BesterClientError("connectionClosed", "The server closed the connection because it is stopping.");
      }
      this.pending.rejectAll(lost);
      if (this.closedError) {
        return;
      }
      const endedBy = this.sessionEndedBy;
      if (this.closing || !this.reconnectOptions || endedBy) {
        this.end(this.closing ? undefined : endedBy ?? lost);
        return;
      }
      if (this.inReconnectLoop) {
        return;
      }
      this.emit("disconnect", lost);
      const reconnecting = this.reconnect();
      // Callers of request() see the rejection; this catch only keeps it from being unhandled.
      reconnecting.catch(() => undefined);
      this.reconnecting = reconnecting;
    });
  }

  /** Opens a new connection with backoff and logs in again; ends the client when every attempt fails. */
  private async reconnect(): Promise<void> {
    this.inReconnectLoop = true;
    try {
      await this.reconnectWithBackoff();
    } finally {
      this.inReconnectLoop = false;
    }
  }

  private async reconnectWithBackoff(): Promise<void> {
    const { retries } = this.reconnectOptions!;
    // A store outage fails every login attempt until it ends, so it is reported once per loop.
    let reportedStoreOutage = false;
    for (let attempt = 1; attempt <= retries; attempt += 1) {
      await sleep(reconnectDelayMs(attempt, this.reconnectOptions!));
      // The server may also have ended the session on a connection this loop opened.
      if (this.closing || this.closedError) {
        break;
      }

      let socket: net.Socket;
      try {
        socket = await this.openSocket();
      } catch {
        continue;
      }
      this.attach(socket);

      if (this.credentials) {
        try {
          await this.login(this.credentials.username, this.credentials.password);
        } catch (error) {
          // Wrong credentials stay wrong; any other failure is worth another attempt.
          if (error instanceof BesterClientError && error.code === "invalidCredentials") {
            this.emit("serverError", { code: error.code, message: error.message });
            // Ended before the socket closes, so its close event starts no new reconnect and
            // `close` carries the reason.
            this.end(error);
            socket.destroy();
            throw error;
          }
          if (isStoreOutageReply(error) && !reportedStoreOutage) {
            reportedStoreOutage = true;
            this.emit("serverError", { code: "storeUnavailable", message: (error as Error).message });
          }
          socket.destroy();
          continue;
        }
      }
      this.reconnecting = undefined;
      this.emit("reconnect", { attempt });
      return;
    }
    this.end(new BesterClientError("connectionClosed", `The connection to the server was lost and ${retries} attempts to reconnect failed.`));
    throw this.closedError;
  }

  private async login(username: string, password: string): Promise<string> {
    const reply = await this.send({ request: "auth", account: { username, password } });
    const auth = expectReply(reply, "auth").auth as { status: string; address?: string; error?: WireError };
    if (auth.status !== "ok") {
      throw new BesterClientError(auth.error?.code ?? "invalidCredentials", auth.error?.message ?? "Login failed.");
    }
    this.loggedIn = true;
    return auth.address!;
  }

  private send(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.closedError) {
      return Promise.reject(this.closedError);
    }
    if (this.socket.destroyed) {
      return Promise.reject(new BesterClientError("connectionClosed", "The connection to the server closed."));
    }
    const { reply, written } = this.pending.add(String(message.request));
    this.socket.write(encodeFrame(message), written);
    return reply;
  }

  private receive(message: Record<string, unknown>): void {
    const job = message.job as Record<string, unknown> | undefined;
    switch (message.reply) {
      case "jobOutput":
        this.emit("output", job as unknown as JobOutputEvent);
        return;
      case "jobNotification":
        if (this.notified.first(job as unknown as JobNotificationEvent)) {
          this.emit("notification", job as unknown as JobNotificationEvent);
        }
        return;
      case "jobProgress":
        this.emit("progress", job as unknown as JobProgressEvent);
        return;
    }

    const error = message.reply === "error" ? (message.error as WireError) : undefined;
    const waited = this.pending.resolveNext(message);
    // notAuthenticated with no request waiting ends the session, as before an authentication
    // timeout's close. After a login it can only mean the same, even as the reply to a request
    // the server ignored because it was closing.
    if (error !== undefined && endsSession(error) && (this.loggedIn || !waited)) {
      this.sessionEndedBy = new BesterClientError(error.code, error.message);
    }
    if (error?.code === "shuttingDown") {
      // The server sends it only right before it closes the connection. The close reports it as
      // the reason the connection was lost.
      this.serverStopping = true;
      if (!waited) {
        return;
      }
    }
    if (!waited) {
      this.emit("serverError", message.error as WireError);
    }
  }

  /** Marks the client closed for good and emits `close` with why the connection was `lost`, which also ends the iterators. */
  private end(lost?: Error): void {
    if (this.closedError) {
      return;
    }
    this.closedError = new BesterClientError("connectionClosed", "The client is closed. Connect again with BesterClient.connect().");
    this.reconnecting = undefined;
    this.emit("close", lost);
  }
}

/** Returns the reply when it is the expected kind; throws the server's error otherwise. */
function expectReply(reply: Record<string, unknown>, name: string): Record<string, unknown> {
  if (reply.reply === name) {
    return reply;
  }
  const error = reply.error as WireError | undefined;
  throw new BesterClientError(error?.code ?? "unexpectedReply", error?.message ?? `Expected a ${name} reply, got ${JSON.stringify(reply.reply)}.`);
}

