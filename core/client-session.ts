// One connection's request processing, independent of the transport that carries it. Requests run
// concurrently, but replies leave in request order, and auth/register act as barriers so a job
// pipelined after its auth runs as the authenticated user.

import type { Logger } from "pino";
import { BesterError, isInternalError, toWireError, type WireError } from "./errors.js";
import { logRequestFailure } from "./log.js";
import type { AuthDecision, BesterHooks } from "./hooks.js";
import type { JobEngine } from "./jobs/engine.js";
import { formatAddress } from "./jobs/job.js";
import type { DecodedFrame } from "./protocol/frame-codec.js";
import { rawValueAt } from "./protocol/raw-json.js";
import type { RequestValidators } from "./protocol/schemas.js";
import { SessionEvents } from "./session-events.js";
import type { Connection, SessionRegistry } from "./sessions.js";
import { redeliverUnsent } from "./unsent-messages.js";

/** The parts of a Bester instance that a session uses. */
export interface SessionHost {
  readonly serverName: string;
  readonly hooks: BesterHooks;
  readonly engine: JobEngine;
  readonly sessions: SessionRegistry;
  readonly requests: RequestValidators;
  readonly log: Logger;
  /** Called once when the transport reports the connection closed. */
  sessionClosed?(session: ClientSession): void;
  /** `limits.authTimeoutMs`: milliseconds a connection may stay without a successful auth; 0 turns the limit off. */
  readonly config: { readonly limits: { readonly authTimeoutMs: number } };
}

/** Takes over a connection's frames, as a federation handshake does for a peer link. */
export type FrameHandler = (message: Record<string, unknown>) => void;

interface Slot {
  done: boolean;
  reply?: Record<string, unknown>;
  /** Runs right after the reply is sent, e.g. flushing stored messages after auth. */
  after?: () => void;
  promise: Promise<void>;
}

interface HandledRequest {
  reply: Record<string, unknown>;
  after?: () => void;
}

const CORE_REQUESTS = new Set(["auth", "newJob"]);

/** Maximum wait of a session-ending close for the replies still due, in milliseconds. */
const CLOSE_AFTER_REPLIES_MS = 5000;

export class ClientSession {
  /** The authenticated user, once auth succeeded. */
  user: string | undefined;
  private slots: Slot[] = [];
  private barrier: Promise<unknown> = Promise.resolve();
  private takeover: FrameHandler | undefined;
  private takeoverClosed: (() => void) | undefined;
  private closed = false;
  /** Set once the session closes the connection (a fatal framing error, a plugin's close, the auth deadline): later frames are ignored. */
  private closing = false;
  /** Outputs, notifications and stored messages, in the order the client must see them. */
  private readonly events: SessionEvents;
  private authTimer: NodeJS.Timeout | undefined;
  /** Set when the auth deadline closed the connection, so an auth still being checked then fails. */
  private authExpired = false;
  /** The connection handed to the session registry, whose job events pass through `events`. */
  private readonly eventTarget: Connection;

  constructor(
    private readonly host: SessionHost,
    readonly connection: Connection,
  ) {
    this.events = new SessionEvents(connection, () => this.closed);
    this.eventTarget = {
      id: connection.id,
      remoteAddress: connection.remoteAddress,
      send: (message) => this.events.send(message),
      close: (error) => this.closeAfterReplies(error),
      onFlushed: (callback) => this.events.onFlushed(callback),
    };

    // The session enforces the deadline, so every transport gets it without a timer of its own.
    const { authTimeoutMs } = host.config.limits;
    if (authTimeoutMs > 0) {
      this.authTimer = setTimeout(() => this.checkAuthenticated(), authTimeoutMs);
      this.authTimer.unref();
    }
  }

  /** Handles one decoded frame from the transport. */
  receive(decoded: DecodedFrame): void {
    if (this.closed || this.closing) {
      return;
    }
    if (decoded.kind === "error") {
      if (decoded.fatal) {
        this.host.log.warn({ connection: this.connection.id, code: decoded.error.code }, "closing connection after a fatal framing error");
        // The error takes its place in reply order, so earlier requests still get their replies, and the close follows it.
        this.closing = true;
        this.enqueue(Promise.resolve({ reply: errorReply(decoded.error), after: () => this.connection.close() }));
        return;
      }
      this.enqueue(Promise.resolve({ reply: errorReply(decoded.error) }));
      return;
    }
    if (this.takeover) {
      this.takeover(decoded.message);
      return;
    }
    this.handleRequest(decoded.message);
  }

  /**
   * Closes the connection once every request received so far has its reply, with `error` after
   * them. A plugin that ends the session, as after a password change, must not put its error in
   * the place of a reply the client waits for. Requests that arrive meanwhile are ignored.
   */
  closeAfterReplies(error?: WireError): void {
    if (this.closed || this.closing) {
      return;
    }
    this.closing = true;
    if (this.slots.length === 0) {
      this.connection.close(error);
      return;
    }
    // A slot that is ready at once, so it goes out right after the replies before it.
    this.slots.push({ done: true, reply: error ? errorReply(error) : undefined, after: () => this.connection.close(), promise: Promise.resolve() });
    this.flush();
    // A request that never finishes must not keep the session open.
    setTimeout(() => {
      if (!this.closed) {
        this.connection.close(error);
      }
    }, CLOSE_AFTER_REPLIES_MS).unref();
  }

  /** Closes a connection that is neither logged in nor taken over by a plugin when its auth deadline passes. */
  private checkAuthenticated(): void {
    if (this.closed || this.user !== undefined || this.takeover !== undefined) {
      return;
    }
    this.host.log.info({ connection: this.connection.id, remote: this.connection.remoteAddress }, "closing connection that did not authenticate in time");
    // The transport passes on frames until its socket closes, and an auth may still be checked.
    // Neither may log in a connection whose client received notAuthenticated.
    this.authExpired = true;
    this.closing = true;
    this.connection.close(this.authTimeoutError());
  }

  private authTimeoutError(): WireError {
    return { code: "notAuthenticated", message: `No successful auth within ${this.host.config.limits.authTimeoutMs} ms. Send auth right after connecting.` };
  }

  /** Whether the session is closing the connection once the replies still due have been sent. */
  get isClosing(): boolean {
    return this.closing && !this.closed;
  }

  /** Whether a plugin took over the frames, as for an authenticated peer link. */
  get isTakenOver(): boolean {
    return this.takeover !== undefined;
  }

  /**
   * Hands every later frame to `handler`; the federation plugin uses this for peer links.
   * `onClosed` runs once when the transport reports the connection closed.
   */
  takeOver(handler: FrameHandler, onClosed?: () => void): void {
    this.takeover = handler;
    this.takeoverClosed = onClosed;
  }

  /**
   * Cleans up after the transport saw the connection close. `unsent` lists the messages the
   * transport could not confirm as handed to the operating system. The outputs and notifications
   * among them and the events still held here go to the user's other live connections that never
   * received them, or to the user's offline messages when no connection is live.
   */
  closedByTransport(unsent: object[] = []): void {
    if (!this.closed) {
      this.host.sessionClosed?.(this);
    }
    this.closed = true;
    clearTimeout(this.authTimer);
    this.host.sessions.remove(this.eventTarget);
    this.takeoverClosed?.();

    const neverSent = this.events.takeUnsent();
    if (this.user !== undefined) {
      redeliverUnsent(this.host, this.connection.id, this.user, [...unsent, ...neverSent]);
    }
    this.events.endWaits();
  }

  private handleRequest(message: Record<string, unknown>): void {
    const name = message.request;
    const tag = typeof message.tag === "string" ? message.tag : undefined;

    if (typeof name !== "string") {
      const problem = name === undefined ? "/request is required" : "/request must be string";
      this.enqueue(Promise.resolve({ reply: withTag(errorReply({ code: "invalidRequest", message: `Invalid request: ${problem}. Every request names its type in "request".` }), tag) }));
      return;
    }

    const isBarrier = name === "auth" || name === "register";
    // An untagged request, the usual case, skips the extra promise that adds the tag.
    const run = tag === undefined ? () => this.process(name, message) : () => this.process(name, message).then((handled) => ({ ...handled, reply: withTag(handled.reply, tag) }));
    const promise = isBarrier
      ? Promise.allSettled(this.slots.map((slot) => slot.promise)).then(run)
      : this.barrier.then(run);
    if (isBarrier) {
      this.barrier = promise.catch(() => undefined);
    }
    this.enqueue(promise);
  }

  private async process(name: string, message: Record<string, unknown>): Promise<HandledRequest> {
    const { hooks, requests } = this.host;
    const pluginHook = CORE_REQUESTS.has(name) ? undefined : hooks.onClientRequest.get(name);

    if (!CORE_REQUESTS.has(name) && !pluginHook?.isUsed()) {
      return { reply: errorReply({ code: "unknownRequest", message: `Unknown request "${name}". This server handles: ${this.knownRequests().join(", ")}.` }) };
    }
    if (this.user === undefined && !requests.isPublic(name)) {
      return { reply: errorReply({ code: "notAuthenticated", message: `Request "${name}" needs a successful auth first. Send {"request":"auth"} with your account.` }) };
    }
    const problem = requests.validate(name, message);
    if (problem) {
      return { reply: errorReply({ code: "invalidRequest", message: `Invalid ${name} request: ${problem}.` }) };
    }

    try {
      if (name === "auth") {
        return await this.auth(message);
      }
      if (name === "newJob") {
        return await this.newJob(message);
      }
      const reply = await pluginHook!.promise({ request: message, connection: this.connection, user: this.user, session: this });
      if (reply === undefined) {
        return { reply: errorReply({ code: "unknownRequest", message: `No plugin handled request "${name}".` }) };
      }
      return { reply };
    } catch (error) {
      if (isInternalError(error)) {
        logRequestFailure(this.host.log, error, { request: name, connection: this.connection.id }, "request handler failed");
      }
      return { reply: errorReply(toWireError(error)) };
    }
  }

  private async auth(message: Record<string, unknown>): Promise<HandledRequest> {
    if (this.user !== undefined) {
      return { reply: errorReply({ code: "alreadyAuthenticated", message: `This connection is already authenticated as ${this.user}. Open a new connection to log in as another user.` }) };
    }

    const account = message.account as { username: string; password: string };
    let decision: AuthDecision | undefined;
    try {
      decision = this.host.hooks.onAuth.isUsed()
        ? await this.host.hooks.onAuth.promise({ username: account.username, password: account.password, connection: this.connection })
        : undefined;
    } catch (error) {
      // A failing tap (such as an unreachable store) still gets an auth-shaped reply, as the protocol
      // gives every failed login, so clients that match replies by kind keep working.
      if (isInternalError(error)) {
        logRequestFailure(this.host.log, error, { username: account.username, connection: this.connection.id }, "login failed with an error");
      }
      decision = { ok: false, error: toWireError(error) };
    }
    const final: AuthDecision = decision ?? { ok: false, error: { code: "invalidCredentials", message: "The username or password is wrong." } };
    if (final.ok && this.authExpired) {
      this.host.log.info({ user: final.user, connection: this.connection.id }, "login ended after the auth deadline closed the connection; the connection stays logged out");
      return { reply: { reply: "auth", auth: { status: "failed", error: this.authTimeoutError() } } };
    }

    if (!final.ok) {
      const error = final.error;
      this.host.log.info({ username: account.username, remote: this.connection.remoteAddress, code: error.code }, "login failed");
      return { reply: { reply: "auth", auth: { status: "failed", error } } };
    }

    this.user = final.user;
    this.host.log.info({ user: final.user, connection: this.connection.id }, "user authenticated");
    const reply = { reply: "auth", auth: { status: "ok", address: formatAddress(final.user, this.host.serverName) } };
    const after = () => {
      if (this.closed) {
        return;
      }
      this.host.sessions.add(final.user, this.eventTarget);
      if (this.host.hooks.onSessionStart.isUsed()) {
        this.events.startBacklog();
        this.host.hooks.onSessionStart
          .promise(final.user, this.connection)
          .catch((error: unknown) => {
            this.host.log.error({ err: error, user: final.user }, "onSessionStart tap failed");
          })
          .finally(() => this.events.releaseBacklog());
      }
    };
    return { reply, after };
  }

  private async newJob(message: Record<string, unknown>): Promise<HandledRequest> {
    const job = message.job as { payload: { type: string; data: unknown }; priority?: number };
    let queuedID: string | undefined;
    let accepted;
    try {
      accepted = await this.host.engine.submit({
        user: this.user!,
        type: job.payload.type,
        data: job.payload.data,
        rawData: rawValueAt(message, ["job", "payload", "data"]),
        priority: job.priority,
        // The job runs from here on, and its events must wait until the reply below has left.
        onQueued: (queued) => {
          queuedID = queued.id;
          this.events.hold(queued.id);
        },
      });
    } catch (error) {
      if (queuedID !== undefined) {
        this.events.discard(queuedID);
      }
      if (isInternalError(error)) {
        logRequestFailure(this.host.log, error, { type: job.payload.type, user: this.user }, "job submission failed");
      } else {
        this.host.log.debug({ code: (error as BesterError).code, reason: (error as BesterError).message, type: job.payload.type, user: this.user }, "job submission rejected");
      }
      return { reply: { reply: "jobSubmission", submission: { status: "rejected", error: toWireError(error) } } };
    }

    const jobID = accepted.id;
    return { reply: { reply: "jobSubmission", submission: { status: "accepted", jobID } }, after: () => this.events.release(jobID) };
  }

  private knownRequests(): string[] {
    const names = new Set(CORE_REQUESTS);
    for (const name of this.host.requests.names()) {
      if (this.host.hooks.onClientRequest.get(name)?.isUsed()) {
        names.add(name);
      }
    }
    return [...names];
  }

  /** Adds a reply slot in request order and sends every finished reply at the head. */
  private enqueue(handled: Promise<HandledRequest>): void {
    const slot: Slot = { done: false, promise: Promise.resolve() };
    const settle = () => {
      slot.done = true;
      this.flush();
    };
    // Both callbacks settle the slot themselves: a finally() would cost two more closures and a promise per request.
    slot.promise = handled.then(
      (result) => {
        slot.reply = result.reply;
        slot.after = result.after;
        settle();
      },
      (error: unknown) => {
        try {
          this.host.log.error({ err: error, connection: this.connection.id }, "request failed unexpectedly");
          slot.reply = errorReply(toWireError(error));
        } finally {
          settle();
        }
      },
    );
    this.slots.push(slot);
  }

  private flush(): void {
    while (this.slots.length > 0 && this.slots[0]!.done) {
      const slot = this.slots.shift()!;
      if (!this.closed) {
        if (slot.reply) {
          this.connection.send(slot.reply);
        }
        slot.after?.();
      }
    }
  }
}

function errorReply(error: WireError): Record<string, unknown> {
  return { reply: "error", error };
}

function withTag(reply: Record<string, unknown>, tag: string | undefined): Record<string, unknown> {
  return tag === undefined ? reply : { ...reply, tag };
}
