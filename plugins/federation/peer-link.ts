// The outgoing link to one peer: one persistent connection that carries this server's messages to
// the peer. It authenticates both sides, sends the outbox in order with a window of unacknowledged
// messages, and reconnects with exponential backoff. After a reconnect it sends again from the
// oldest unacknowledged message; the receiver drops the copies it already processed.

import net from "node:net";
import tls from "node:tls";
import type { Logger } from "pino";
import type { WireError } from "../../core/errors.js";
import type { FederationHooks } from "./federation-hooks.js";
import { FailureThrottle } from "./failure-throttle.js";
import { describeWireError, FramedSocket } from "./framed-socket.js";
import { AUTH_REQUEST, channelBinding, createNonce, HANDSHAKE_VERSION, HELLO_REQUEST, parseChallenge, transcriptText, type Transcript } from "./handshake.js";
import { signText, verifyText, type ServerKey } from "./keys.js";
import type { Outbox, OutboxJob } from "./outbox.js";
import type { Peer } from "./peers.js";

/** Maximum number of messages sent but not yet acknowledged on one link. */
const SEND_WINDOW = 256;

/**
 * Error codes after which the message is kept and sent again after a reconnect; any other code
 * drops it. NOTE: a receiver that fails the same message with internalError every time blocks this
 * peer's queue, retried with backoff, until its operator fixes it.
 */
const RETRYABLE_CODES = new Set(["shuttingDown", "queueFull", "storeUnavailable", "internalError"]);

export interface PeerLinkOptions {
  peer: Peer;
  ownName: () => string;
  key: () => ServerKey;
  outbox: Outbox;
  /** TLS options for the connection; plaintext when undefined. */
  tls?: tls.ConnectionOptions;
  maxFrameBytes: number;
  reconnect: { minDelayMs: number; maxDelayMs: number };
  handshakeTimeoutMs: number;
  /** Milliseconds without an acknowledgement, while messages are outstanding, before the link reconnects; 0 for no limit. */
  ackTimeoutMs: number;
  hooks: FederationHooks;
  log: Logger;
}

type State = "idle" | "connecting" | "handshaking" | "authenticating" | "up" | "stopped";

export class PeerLink {
  private state: State = "idle";
  private link: FramedSocket | undefined;
  private transcript: Transcript | undefined;
  /** Outbox entries at the front of the outbox that were sent on the current connection. */
  private sentCount = 0;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  /**
   * Runs while sent messages wait for acknowledgement and restarts at each one. A connection whose
   * peer host vanished accepts writes for many minutes, until TCP gives up retransmitting (about
   * 15 minutes with Linux's default net.ipv4.tcp_retries2 of 15), and this notices it sooner.
   */
  private ackTimer: NodeJS.Timeout | undefined;
  private lastFailure = "";
  private readonly failures = new FailureThrottle();

  constructor(private readonly options: PeerLinkOptions) {}

  get peer(): string {
    return this.options.peer.name;
  }

  get isUp(): boolean {
    return this.state === "up";
  }

  /** Describes the link's state and backlog for the status report. */
  describe(): { peer: string; state: string; tls: boolean; backlog: number; attempts: number } {
    return { peer: this.peer, state: this.state, tls: this.options.tls !== undefined, backlog: this.options.outbox.size, attempts: this.attempts };
  }

  /** Opens the link; it stays open, reconnecting after failures, until stop(). */
  start(): void {
    if (this.state === "idle") {
      this.connect();
    }
  }

  stop(): void {
    this.state = "stopped";
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.handshakeTimer);
    this.stopAckTimer();
    this.link?.destroy();
  }

  /** Starts the next attempt now when the link waits between attempts; does nothing otherwise. */
  reconnectNow(): void {
    if (this.state !== "idle" || this.reconnectTimer === undefined) {
      return;
    }
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.options.log.info({ peer: this.peer, pending: this.options.outbox.size }, "peer linked to this server; reconnecting now");
    this.connect();
  }

  get outbox(): Outbox {
    return this.options.outbox;
  }

  /** Stores a message in the outbox and sends it when the link is up; resolves once it is stored. */
  async enqueue(message: Record<string, unknown>, id: string, job?: OutboxJob): Promise<void> {
    await this.options.outbox.append(message, id, job);
    this.flush();
  }

  /** Sends stored messages when the link is up; otherwise they wait for the next connection. */
  flush(): void {
    if (this.state !== "up") {
      return;
    }
    const pending = this.options.outbox.pending();
    while (this.sentCount < pending.length && this.sentCount < SEND_WINDOW) {
      this.link!.send(pending[this.sentCount]!.message);
      this.sentCount += 1;
    }
    if (this.sentCount === 0) {
      this.stopAckTimer();
    } else if (!this.ackTimer && this.options.ackTimeoutMs > 0) {
      this.ackTimer = setTimeout(() => this.fail(`sent no acknowledgement within ${this.options.ackTimeoutMs} ms (federation.ackTimeoutMs)`), this.options.ackTimeoutMs);
      this.ackTimer.unref();
    }
  }

  private stopAckTimer(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  private connect(): void {
    const { peer, maxFrameBytes } = this.options;
    this.state = "connecting";
    this.sentCount = 0;

    const socket = this.options.tls
      ? tls.connect({ host: peer.host, port: peer.port, ...this.options.tls })
      : net.createConnection({ host: peer.host, port: peer.port });
    const link = new FramedSocket(socket, maxFrameBytes, (message) => this.receive(message), (error) => this.fail(`sent a bad frame (${error.code})`));
    this.link = link;

    socket.once(this.options.tls ? "secureConnect" : "connect", () => this.sendHello(link));
    socket.on("error", (error: NodeJS.ErrnoException) => {
      this.lastFailure = error.code ?? error.message;
    });
    socket.once("close", () => this.closed(link));
  }

  private sendHello(link: FramedSocket): void {
    if (link !== this.link || this.state !== "connecting") {
      return;
    }
    this.state = "handshaking";
    this.transcript = {
      initiator: this.options.ownName(),
      responder: this.peer,
      initiatorNonce: createNonce(),
      responderNonce: "",
      channel: channelBinding(link.tlsSocket),
    };
    link.send({ request: HELLO_REQUEST, peerHello: { version: HANDSHAKE_VERSION, from: this.transcript.initiator, to: this.peer, nonce: this.transcript.initiatorNonce } });

    this.handshakeTimer = setTimeout(() => this.fail("did not finish the handshake in time"), this.options.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  private receive(message: Record<string, unknown>): void {
    switch (this.state) {
      case "handshaking":
        this.checkChallenge(message);
        return;
      case "authenticating":
        this.checkAccepted(message);
        return;
      case "up":
        this.handleReply(message);
        return;
    }
  }

  /** Verifies the peer's signature over both nonces, then proves this server's own name. */
  private checkChallenge(message: Record<string, unknown>): void {
    if (message.reply === "error") {
      this.fail(`rejected the handshake with ${describeWireError(message.error)}`);
      return;
    }
    const parsed = parseChallenge(message);
    if ("problem" in parsed) {
      this.fail(`sent an invalid ${HELLO_REQUEST} reply (${parsed.problem})`, { code: "invalidRequest", message: `Invalid ${HELLO_REQUEST} reply: ${parsed.problem}.` });
      return;
    }
    const { from, nonce, signature } = parsed.challenge.peerHello;
    const transcript = { ...this.transcript!, responderNonce: nonce };
    // In both checks the peer hears why, so its log names the rejection instead of a closed connection.
    const own = this.options.ownName();
    if (from !== this.peer) {
      this.fail(`replied as ${from}`, {
        code: "peerAuthFailed",
        message: `${own} dialed ${this.peer}, but the server at ${this.options.peer.host}:${this.options.peer.port} replied as ${from}. Fix the address of ${this.peer} in federation.peers on ${own}.`,
      });
      return;
    }
    if (!verifyText(this.options.peer.publicKey, transcriptText(transcript, "responder"), signature)) {
      this.fail("sent a signature that does not verify with its configured public key", {
        code: "peerAuthFailed",
        message: `The ${HELLO_REQUEST} signature of ${this.peer} does not verify with the key configured for it on ${own}. Check the publicKey of ${this.peer} in federation.peers on ${own} against \`bester keys\` on ${this.peer}.`,
      });
      return;
    }

    this.transcript = transcript;
    this.state = "authenticating";
    const proof = signText(this.options.key().privateKey, transcriptText(transcript, "initiator"));
    this.link!.send({ request: AUTH_REQUEST, peerAuth: { signature: proof } });
  }

  private checkAccepted(message: Record<string, unknown>): void {
    const status = (message.peerAuth as { status?: unknown } | undefined)?.status;
    if (message.reply !== AUTH_REQUEST || status !== "ok") {
      this.fail(`rejected the proof of ${this.options.ownName()} with ${describeWireError(message.error)}`);
      return;
    }

    clearTimeout(this.handshakeTimer);
    this.state = "up";
    const tlsLink = this.link!.tlsSocket !== undefined;
    this.options.log.info({ peer: this.peer, tls: tlsLink, pending: this.options.outbox.size, attempts: this.attempts }, "peer link up");
    this.attempts = 0;
    this.failures.reset(this.peer);
    this.options.hooks.linkUp.call({ peer: this.peer, direction: "outgoing", tls: tlsLink });
    this.flush();
  }

  /** Removes acknowledged messages; keeps retryable rejections, drops the others with an error log. */
  private handleReply(message: Record<string, unknown>): void {
    const id = message.id;
    const pending = this.options.outbox.pending();
    const index = typeof id === "string" ? pending.findIndex((entry) => entry.id === id) : -1;
    if (index === -1 || index >= this.sentCount) {
      if (message.reply === "error") {
        this.fail(`reported ${describeWireError(message.error)}`);
      }
      return;
    }

    const entry = pending[index]!;
    if (message.reply === "error") {
      const error = message.error as WireError | undefined;
      if (error && RETRYABLE_CODES.has(error.code)) {
        // Keep the order: reconnect later and send again from the oldest unacknowledged message.
        this.fail(`cannot take message ${String(id)} now (${error.code})`);
        return;
      }
      // The reason is the peer's own text, so it names the peer that wrote it.
      const reason = `${this.peer} sent: ${error?.message ?? "no reason given"}`;
      this.options.log.error({ peer: this.peer, id, request: entry.message.request, jobId: entry.job?.id, user: entry.job?.user, code: error?.code, reason }, "peer rejected a message; dropped it");
    } else {
      const unknownUsers = (message.result as { unknownUsers?: string[] } | undefined)?.unknownUsers;
      if (unknownUsers && unknownUsers.length > 0) {
        this.options.log.warn({ peer: this.peer, id, jobId: entry.job?.id, user: entry.job?.user, unknownUsers }, "peer has no such users; their output was not delivered");
      }
    }

    this.sentCount -= 1;
    // The peer is alive and working through the window, so the wait starts again.
    this.ackTimer?.refresh();
    this.options.outbox.remove(id as string).catch((error: unknown) => {
      this.options.log.error({ err: error, peer: this.peer, id }, "removing an acknowledged message from the outbox failed");
    });
    this.flush();
  }

  /**
   * Logs why the link failed and closes it, after sending `error` to the peer when one is given.
   * The close handler schedules the reconnect.
   */
  private fail(reason: string, error?: WireError): void {
    if (this.state === "stopped" || this.state === "idle") {
      return;
    }
    const handshake = this.state !== "up";
    this.lastFailure = reason;
    if (handshake) {
      this.failures.log(this.options.log, this.peer, { peer: this.peer, reason: `${this.peer} ${reason}` }, "peer handshake failed");
    }
    if (error) {
      this.link?.close(error);
    } else {
      this.link?.destroy();
    }
  }

  private closed(link: FramedSocket): void {
    if (link !== this.link) {
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.stopAckTimer();
    const wasUp = this.state === "up";
    if (wasUp) {
      this.options.log.warn({ peer: this.peer, reason: this.lastFailure || "connection closed", pending: this.options.outbox.size }, "peer link down");
      this.options.hooks.linkDown.call({ peer: this.peer, direction: "outgoing", tls: link.tlsSocket !== undefined });
    }
    if (this.state === "stopped") {
      return;
    }
    this.state = "idle";
    this.lastFailure ||= "connection closed";
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const { minDelayMs, maxDelayMs } = this.options.reconnect;
    this.attempts += 1;
    const exponential = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(this.attempts - 1, 30));
    // Jitter spreads the reconnects of many servers after a shared outage.
    const delayMs = Math.round(exponential * (0.5 + Math.random() * 0.5));

    // Logs the first attempts, then every tenth, so a long outage does not flood the log.
    const level = this.attempts <= 3 || this.attempts % 10 === 0 ? "info" : "debug";
    this.options.log[level]({ peer: this.peer, attempt: this.attempts, delayMs, reason: this.lastFailure || undefined, pending: this.options.outbox.size }, "peer link retry scheduled");
    this.lastFailure = "";

    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.state === "idle") {
        this.connect();
      }
    }, delayMs);
    this.reconnectTimer.unref();
  }
}
