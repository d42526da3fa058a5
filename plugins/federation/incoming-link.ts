// The accepting side of a peer link: replies to the handshake, and once the peer proved its name,
// processes its messages in order, drops duplicates and acknowledges each message by id. Until the
// handshake finished, any other frame gets notAuthenticated and the link is closed.

import type { TLSSocket } from "node:tls";
import type Keyv from "keyv";
import type { Logger } from "pino";
import type { Bester } from "../../core/bester.js";
import { BesterError, isInternalError, toWireError, type WireError, type WireErrorCode } from "../../core/errors.js";
import type { Connection } from "../../core/sessions.js";
import type { FailureThrottle } from "./failure-throttle.js";
import type { FederationHooks } from "./federation-hooks.js";
import { describeWireError } from "./framed-socket.js";
import { AUTH_REQUEST, channelBinding, createNonce, HELLO_REQUEST, parseAuth, parseHello, transcriptText, type Transcript } from "./handshake.js";
import { signText, verifyText } from "./keys.js";
import type { Peer, PeerDirectory } from "./peers.js";

/**
 * Received message ids are remembered this long, far longer than any retry takes. An hourly sweep
 * (expiry-sweep.ts) removes expired ids, which keyv otherwise drops only when they are read again.
 */
const RECEIVED_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** The keyv namespace of received message ids, for de-duplication across restarts. */
export const RECEIVED_NAMESPACE = "federation-received";

/** State and services shared by every incoming link of one server. */
export interface IncomingContext {
  bester: Bester;
  directory: PeerDirectory;
  hooks: FederationHooks;
  log: Logger;
  received: () => Keyv<unknown>;
  /** Per-peer chains, so messages of one peer run in order even across two links. */
  chains: Map<string, Promise<void>>;
  handshakeTimeoutMs: number;
  /** Failed incoming handshakes per peer, so a peer that keeps failing is not logged every time. */
  failures: FailureThrottle;
  /** Links whose socket is open, so shutdown can tell each peer why its link closes. */
  open: Set<IncomingLink>;
}

type State = "hello" | "challenged" | "up" | "closed";

export class IncomingLink {
  private state: State = "hello";
  private peer: Peer | undefined;
  private transcript: Transcript | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly context: IncomingContext,
    private readonly connection: Connection,
    private readonly tlsSocket?: TLSSocket,
  ) {
    context.open.add(this);
  }

  /** Whether the link came in on the federation TLS listener rather than on a client port. */
  get overTls(): boolean {
    return this.tlsSocket !== undefined;
  }

  /** Closes the link with `shuttingDown`, so the peer logs why instead of "connection closed". */
  shutDown(): void {
    if (this.state === "closed") {
      return;
    }
    this.close("shuttingDown", `${this.context.bester.serverName} is shutting down. Messages for it stay in the sender's outbox until it is back.`);
  }

  /** Checks the first frame, which must be a peerHello, and returns the reply to send. */
  hello(message: Record<string, unknown>): Record<string, unknown> {
    const { bester, directory } = this.context;
    const parsed = parseHello(message);
    if ("problem" in parsed) {
      return this.reject("invalidRequest", `Invalid ${HELLO_REQUEST} sent to ${bester.serverName}: ${parsed.problem}.`, undefined);
    }

    const { from, to, nonce } = parsed.hello.peerHello;
    const peer = directory.get(from);
    if (!peer) {
      return this.reject("unknownPeer", `Server ${from} is not a configured peer of ${bester.serverName}. Add ${from} under federation.peers in the config of ${bester.serverName}.`, from);
    }
    if (to !== bester.serverName) {
      return this.reject("peerAuthFailed", `${from} sent its ${HELLO_REQUEST} for ${to} to ${bester.serverName}. Fix the name of ${bester.serverName} in federation.peers on ${from}, or set server.name on ${bester.serverName} to ${to} if that is its public address.`, from);
    }

    this.peer = peer;
    this.transcript = {
      initiator: from,
      responder: bester.serverName,
      initiatorNonce: nonce,
      responderNonce: createNonce(),
      channel: channelBinding(this.tlsSocket),
    };
    this.state = "challenged";
    this.timer = setTimeout(() => {
      if (this.state === "challenged") {
        this.logFailure(from, { reason: `${from} sent no ${AUTH_REQUEST} within ${this.context.handshakeTimeoutMs} ms` });
        this.close("notAuthenticated", `${bester.serverName} received no ${AUTH_REQUEST} from ${from} within ${this.context.handshakeTimeoutMs} ms.`);
      }
    }, this.context.handshakeTimeoutMs);
    this.timer.unref();

    const signature = signText(directory.key.privateKey, transcriptText(this.transcript, "responder"));
    return { reply: HELLO_REQUEST, peerHello: { from: bester.serverName, nonce: this.transcript.responderNonce, signature } };
  }

  /** Handles every frame after the hello. */
  receive(message: Record<string, unknown>): void {
    if (this.state === "up") {
      this.enqueue(message);
      return;
    }
    if (this.state === "challenged" && message.request === AUTH_REQUEST) {
      this.finishHandshake(message);
      return;
    }
    if (this.state === "challenged" && message.reply === "error") {
      // The dialing server rejected this server's reply and sends the reason before it closes the link.
      const error = message.error as Partial<WireError> | undefined;
      const reason = `${this.peer!.name} rejected the handshake reply of ${this.context.bester.serverName} with ${describeWireError(error)}`;
      this.logFailure(this.peer!.name, { code: error?.code, reason });
      this.end();
      this.connection.close();
      return;
    }
    if (this.state !== "closed") {
      this.context.log.warn({ peer: this.peer?.name, remote: this.connection.remoteAddress, request: message.request }, "frame before the peer handshake finished; closing the link");
      this.close("notAuthenticated", `Request ${JSON.stringify(message.request)} needs a finished peer handshake with ${this.context.bester.serverName} first.`);
    }
  }

  /** Marks the link closed, after the transport saw the socket close. */
  closed(): void {
    if (this.state === "challenged") {
      // Logged now, because the handshake timer that would report it is cleared below.
      this.logFailure(this.peer!.name, { reason: `${this.peer!.name} closed the connection before sending ${AUTH_REQUEST}` });
    }
    this.end();
  }

  private end(): void {
    this.state = "closed";
    clearTimeout(this.timer);
    this.context.open.delete(this);
  }

  private finishHandshake(message: Record<string, unknown>): void {
    const peer = this.peer!;
    const self = this.context.bester.serverName;
    const parsed = parseAuth(message);
    const valid = !("problem" in parsed) && verifyText(peer.publicKey, transcriptText(this.transcript!, "initiator"), parsed.auth.peerAuth.signature);
    if (!valid) {
      this.reject("peerAuthFailed", `The ${AUTH_REQUEST} signature of ${peer.name} does not verify with the key configured for it on ${self}. Check the publicKey of ${peer.name} in federation.peers on ${self} against \`bester keys\` on ${peer.name}.`, peer.name);
      return;
    }

    clearTimeout(this.timer);
    this.state = "up";
    this.context.failures.reset(peer.name);
    this.connection.send({ reply: AUTH_REQUEST, peerAuth: { status: "ok" } });
    this.context.log.info({ peer: peer.name, remote: this.connection.remoteAddress, tls: this.tlsSocket !== undefined }, "incoming peer link up");
    this.context.hooks.linkUp.call({ peer: peer.name, direction: "incoming", tls: this.tlsSocket !== undefined });
  }

  private enqueue(message: Record<string, unknown>): void {
    const peer = this.peer!.name;
    const id = message.id;
    if (typeof message.request !== "string" || typeof id !== "string" || id.length === 0 || id.length > 128) {
      this.connection.send({ reply: "error", id: typeof id === "string" ? id : undefined, error: { code: "invalidRequest", message: "Every peer message needs a string request and an id of 1-128 characters." } });
      return;
    }
    const previous = this.context.chains.get(peer) ?? Promise.resolve();
    const next = previous.then(() => this.process(peer, id, message));
    this.context.chains.set(peer, next);
    void next.then(() => {
      if (this.context.chains.get(peer) === next) {
        this.context.chains.delete(peer);
      }
    });
  }

  /** Runs one message and acknowledges it; never rejects. */
  private async process(peer: string, id: string, message: Record<string, unknown>): Promise<void> {
    const { bester, hooks, log } = this.context;
    const key = `${peer} ${id}`;
    const name = message.request as string;

    try {
      if (await this.context.received().get(key)) {
        log.debug({ peer, id, request: name }, "dropped a duplicate peer message");
        this.connection.send({ reply: "ack", id, duplicate: true });
        return;
      }

      const checked = hooks.onReceive.isUsed() ? await hooks.onReceive.promise(message, peer) : message;
      const hook = bester.hooks.onPeerMessage.get(name);
      const result = hook?.isUsed() ? await hook.promise({ message: checked, peer, connection: this.connection }) : undefined;
      if (result === undefined) {
        throw new BesterError("unknownRequest", `No plugin on ${bester.serverName} handles peer request "${name}".`);
      }

      await this.context.received().set(key, true, RECEIVED_TTL_MS);
      this.connection.send({ reply: "ack", id, result });
    } catch (error) {
      if (isInternalError(error)) {
        log.error({ err: error, peer, id, request: name }, "processing a peer message failed");
      } else {
        log.warn({ peer, id, request: name, code: (error as BesterError).code, reason: (error as BesterError).message }, "rejected a peer message");
      }
      this.connection.send({ reply: "error", id, error: toWireError(error) });
    }
  }

  private reject(code: WireErrorCode, message: string, peer: string | undefined): Record<string, unknown> {
    this.logFailure(peer, { code, reason: message });
    this.close(code, message);
    return { reply: "error", error: { code, message } };
  }

  /** Logs a failed handshake, throttled per peer, or per remote host for a sender with no valid name. */
  private logFailure(peer: string | undefined, fields: Record<string, unknown>): void {
    const remote = this.connection.remoteAddress;
    const key = peer ?? remote.replace(/:\d+$/, "");
    this.context.failures.log(this.context.log, key, { peer, remote, ...fields }, "peer handshake failed");
  }

  private close(code: WireErrorCode, message: string): void {
    this.end();
    const error: WireError = { code, message };
    this.connection.close(error);
  }
}
