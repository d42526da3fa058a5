// The federation plugin: authenticated links between Bester NG servers. Each server dials one
// outgoing link to every configured peer and sends its own messages on it, so a pair of servers
// uses two links, one per direction. Messages wait in a durable outbox until the peer acknowledges
// them. Delivery is at least once on the wire. The receiver drops a message whose id it processed
// in the last 7 days, so a resend after a lost acknowledgement is not delivered twice.

import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Bester } from "../../core/bester.js";
import type { ResolvedFederationConfig } from "../../core/config/types.js";
import { BesterError, type WireError } from "../../core/errors.js";
import type { ClientRequestContext, PeerEnvelope } from "../../core/hooks.js";
import { formatAddress } from "../../core/jobs/job.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { FailureThrottle } from "./failure-throttle.js";
import { federationHooksOf, type FederationHooks } from "./federation-hooks.js";
import { GrantBook, GRANTS_NAMESPACE, issueGrant, MAX_CHAIN_HOPS, type Grant } from "./grants.js";
import { AUTH_REQUEST, HELLO_REQUEST, HELLO_SCHEMA } from "./handshake.js";
import { startExpirySweep } from "./expiry-sweep.js";
import { IncomingLink, RECEIVED_NAMESPACE, type IncomingContext } from "./incoming-link.js";
import { loadOrCreateServerKey } from "./keys.js";
import { Outbox, OUTBOX_NAMESPACE } from "./outbox.js";
import { OutboxRetry } from "./outbox-retry.js";
import { PeerLink } from "./peer-link.js";
import { parseServerAddress, PeerDirectory } from "./peers.js";
import { tapBuiltinMessages } from "./receive.js";
import { assertNoSelfPeer, type OwnListener } from "./self-peer.js";
import { clearLinkedPeers, logUnconfiguredOutboxes, recordLinkedPeers } from "./stored-outboxes.js";
import { readTlsFiles, TlsPeerListener } from "./tls-listener.js";

export const PLUGIN_NAME = "federation";

export interface FederationOptions extends ResolvedFederationConfig {
  maxFrameBytes: number;
  /** Milliseconds either side waits for the other's handshake step; default 10000. */
  handshakeTimeoutMs?: number;
}

/** Peer requests that are only valid on an authenticated peer link, never from a client. */
const PEER_ONLY_REQUESTS = ["jobOutputDelivery", "jobHandoff"];

export class FederationPlugin implements BesterPlugin {
  readonly name = PLUGIN_NAME;

  constructor(private readonly options: FederationOptions) {}

  /** The federation hooks of one server, for plugins that extend federation. */
  static getHooks(bester: Bester): FederationHooks {
    return federationHooksOf(bester);
  }

  apply(bester: Bester): void {
    const options = this.options;
    const log = bester.logFor(PLUGIN_NAME);
    const hooks = federationHooksOf(bester);
    const directory = new PeerDirectory(options.peers);
    assertNoSelfPeer(options.peers, bester.serverName, ownListeners(bester, options));
    const grants = new GrantBook(() => bester.store.namespace(GRANTS_NAMESPACE));
    const links = new Map<string, PeerLink>();
    const handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    let tlsListener: TlsPeerListener | undefined;
    let recordedLinks = false;
    const retry = new OutboxRetry({ timeoutMs: options.outboxRetryMs, store: () => bester.store.description, log });

    const incoming: IncomingContext = {
      bester,
      directory,
      hooks,
      log,
      received: () => bester.store.namespace(RECEIVED_NAMESPACE),
      chains: new Map(),
      handshakeTimeoutMs,
      failures: new FailureThrottle(),
      open: new Set(),
    };

    bester.hooks.initialize.tapPromise(PLUGIN_NAME, async () => {
      const key = await loadOrCreateServerKey(options.keyFile);
      directory.setKey(key);
      if (key.created) {
        log.info({ keyFile: options.keyFile }, "created a new federation key; give its public key (bester keys) to each peer");
      }

      const credentials = options.tls ? await readTlsFiles(options.tls) : undefined;
      const outboxStore = bester.store.namespace(OUTBOX_NAMESPACE);
      // Before the outboxes load: `bester outbox drop` reads the record to leave these peers alone.
      await recordLinkedPeers(outboxStore, directory.list().map((peer) => peer.name));
      recordedLinks = true;
      for (const peer of directory.list()) {
        const outbox = new Outbox(outboxStore, peer.name, retry);
        const loaded = await outbox.load();
        if (loaded > 0) {
          log.info({ peer: peer.name, pending: loaded }, "loaded unacknowledged peer messages from the store");
        }
        links.set(peer.name, new PeerLink({
          peer,
          ownName: () => bester.serverName,
          key: () => directory.key,
          outbox,
          tls: credentials && { ...credentials, rejectUnauthorized: credentials.ca !== undefined },
          maxFrameBytes: options.maxFrameBytes,
          reconnect: options.reconnect,
          handshakeTimeoutMs,
          ackTimeoutMs: options.ackTimeoutMs,
          hooks,
          log,
        }));
      }
      await logUnconfiguredOutboxes(outboxStore, directory, log);
      if (credentials && options.listen) {
        tlsListener = new TlsPeerListener(incoming, credentials, options.maxFrameBytes, log);
      }
    });

    // A late stage keeps the client listeners first in the address list.
    bester.hooks.listen.tapPromise({ name: PLUGIN_NAME, stage: 100 }, async (addresses) => {
      if (tlsListener && options.listen) {
        const address = await tlsListener.listen(options.listen);
        addresses.push(`tls ${address}`);
        log.info({ address }, "listening for TLS peer links");
      }
    });

    // Links start once the server name is final: a transport may set it from its real port.
    bester.hooks.ready.tap(PLUGIN_NAME, () => {
      for (const link of links.values()) {
        link.start();
      }
    });

    // A peer that links to this server is up, so an outgoing link to it that waits out its backoff
    // tries at once instead of after up to reconnect.maxDelayMs.
    hooks.linkUp.tap(PLUGIN_NAME, ({ peer, direction }) => {
      if (direction === "incoming") {
        links.get(peer)?.reconnectNow();
      }
    });

    let stopSweep: (() => void) | undefined;
    bester.hooks.ready.tap(PLUGIN_NAME, () => {
      stopSweep = startExpirySweep(() => [incoming.received(), bester.store.namespace(GRANTS_NAMESPACE)], log);
    });

    // Before the handler bridge waits for jobs to finish: from here on an outbox write that runs
    // out of time leaves its job stored for the next start instead of failing it.
    bester.hooks.stop.tap({ name: PLUGIN_NAME, stage: -100 }, () => retry.stop());
    // Before the store closes (stage 100), so that no retry reopens its connection.
    bester.hooks.close.tap({ name: PLUGIN_NAME, stage: 90 }, () => retry.close());

    bester.hooks.stop.tapPromise(PLUGIN_NAME, async () => {
      stopSweep?.();
      for (const link of links.values()) {
        link.stop();
      }
      // The TLS listener's links close here, before the drain, so their peers hear why now.
      for (const link of [...incoming.open]) {
        if (link.overTls) {
          link.shutDown();
        }
      }
      await tlsListener?.close();
      if (recordedLinks) {
        recordedLinks = false;
        await clearLinkedPeers(bester.store.namespace(OUTBOX_NAMESPACE)).catch((error: unknown) => {
          // `bester outbox drop` reads the record only while a server has the store's claim, and
          // the next start replaces it.
          log.warn({ err: error }, "removing the record of linked peers from the store failed");
        });
      }
    });

    // Before the transport's close destroys the sockets, and after the drain, in which peers may
    // still deliver outputs for this server's users.
    bester.hooks.close.tapPromise({ name: PLUGIN_NAME, stage: -10 }, async () => {
      for (const link of [...incoming.open]) {
        link.shutDown();
      }
    });

    tapHandshake(bester, incoming);
    tapBuiltinMessages(bester, PLUGIN_NAME, directory, grants);

    bester.hooks.onPeerSend.tapPromise(PLUGIN_NAME, async (envelope: PeerEnvelope) => {
      const link = links.get(envelope.peer);
      if (!link) {
        const problem = parseServerAddress(envelope.peer) ? "is not a configured peer" : "is not a valid host:port server name";
        throw new BesterError("unknownPeer", `Server "${envelope.peer}" ${problem}. Add it under federation.peers or fix the address.`);
      }

      const id = randomUUID();
      let message = await this.withGrant(bester, envelope, id, directory, grants);
      if (hooks.beforeSend.isUsed()) {
        message = await hooks.beforeSend.promise(message, envelope);
      }
      // A frame over the limit would make the peer close the link, and the outbox would resend it
      // forever; reject it here. Peers are assumed to use the same maxFrameBytes as this server.
      const frameBytes = Buffer.byteLength(JSON.stringify({ ...message, id }));
      if (frameBytes > bester.config.maxFrameBytes) {
        throw new BesterError("directorFailed", `The message for peer ${envelope.peer} is ${frameBytes} bytes, over maxFrameBytes (${bester.config.maxFrameBytes}). Send a smaller output or raise maxFrameBytes on both servers.`);
      }
      await link.enqueue(message, id, { id: envelope.job.id, user: envelope.job.user });
      if (log.isLevelEnabled("debug")) {
        // Checked first, so the hot path builds no log object at the default level.
        logQueued(log, envelope, id);
      }
      return true;
    });

    bester.hooks.onStatus.tap(PLUGIN_NAME, (status) => {
      status.sections.peers = { title: "Peer links", rows: [...links.values()].map((link) => link.describe()) };
      return status;
    });

    bester.hooks.onJobDone.tapPromise(PLUGIN_NAME, async (job) => {
      if (job.origin !== bester.serverName) {
        await grants.forget(job.id);
      }
    });
  }

  /**
   * Signs a grant into each handoff, and attaches the stored chain of grants to outputs and
   * handoffs of a job this server runs for another server's user.
   */
  private async withGrant(bester: Bester, envelope: PeerEnvelope, id: string, directory: PeerDirectory, grants: GrantBook): Promise<Record<string, unknown>> {
    const { job, peer } = envelope;
    const message = { ...envelope.message };

    const chain = job.origin === bester.serverName ? [] : await lookupGrants(bester, grants, job.id, bester.logFor(PLUGIN_NAME));

    if (message.request === "jobHandoff") {
      if (!chain) {
        throw new BesterError("notPermitted", `Job ${job.id} runs for ${formatAddress(job.user, job.origin)}, but ${job.origin} sent no handoff grant for it, so no other server would accept it from here. Deliver its output with userDelivery instead.`);
      }
      if (chain.length + 1 > MAX_CHAIN_HOPS) {
        throw new BesterError("chainTooLong", `Job ${job.id} was already handed off ${chain.length} times; a job may pass through at most ${MAX_CHAIN_HOPS} handoffs. Check the handlers' handoff directors for a loop.`);
      }
      const handoff = message.handoff as Record<string, unknown>;
      const grant = issueGrant(directory.key.privateKey, { from: String(handoff.from), to: peer, type: String(handoff.type), id });
      message.handoff = chain.length > 0 ? { ...handoff, grant, via: chain } : { ...handoff, grant };
    }

    if (message.request === "jobOutputDelivery" && chain && chain.length > 0) {
      message.grant = chain[chain.length - 1];
      if (chain.length > 1) {
        message.via = chain.slice(0, -1);
      }
    }
    return message;
  }
}

/**
 * Logs a message stored for a peer with the ids that link it to the job here and to the peer's log
 * lines, which name the message id.
 */
function logQueued(log: Logger, envelope: PeerEnvelope, id: string): void {
  const { job, peer, message } = envelope;
  const fields = { peer, id, jobId: job.id, user: job.user };
  if (message.request === "jobHandoff") {
    const handoff = message.handoff as { type: string };
    log.debug({ ...fields, target: `${handoff.type}@${peer}` }, "queued a handoff for a peer");
  } else if (message.request === "jobOutputDelivery") {
    const users = message.users as string[];
    log.debug({ ...fields, target: users.map((user) => formatAddress(user, peer)) }, "queued an output for a peer");
  } else {
    log.debug({ ...fields, request: message.request }, "queued a peer message");
  }
}

/**
 * Reads the stored grant chain of a job. A failed read fails the job with a message for its
 * submitter, and the log line names the store and the reason.
 */
async function lookupGrants(bester: Bester, grants: GrantBook, jobId: string, log: Logger): Promise<Grant[] | undefined> {
  try {
    return await grants.lookup(jobId);
  } catch (error) {
    log.error({ err: error, jobId, store: bester.store.description }, "reading a job's handoff grants from the store failed, so its job fails");
    throw new BesterError("directorFailed", `Reading the handoff grants of job ${jobId} failed; the server log has the details.`, { cause: error });
  }
}

/** Lists the client listeners and the TLS peer listener, which a peer entry must not dial. */
function ownListeners(bester: Bester, options: FederationOptions): OwnListener[] {
  const listen = bester.config.listen;
  const listeners = listen.map((entry, index) => ({ host: entry.host, port: entry.port, setting: listen.length === 1 ? "listen" : `listen[${index}]` }));
  if (options.listen) {
    listeners.push({ ...options.listen, setting: "federation.listen" });
  }
  return listeners;
}

/** Creates the federation plugin from the resolved `federation` config. */
export function federationPlugin(options: FederationOptions): FederationPlugin {
  return new FederationPlugin(options);
}

/**
 * Handles peer links on the client port. The first frame is a peerHello request, which gets its
 * reply here, and then the plugin takes over the connection's frames. Peer-only requests sent as client requests get
 * notAuthenticated and the connection is closed.
 */
function tapHandshake(bester: Bester, incoming: IncomingContext): void {
  bester.requests.define(HELLO_REQUEST, { ...HELLO_SCHEMA, properties: { ...HELLO_SCHEMA.properties, tag: { type: "string" } } }, { public: true });

  bester.hooks.onClientRequest.for(HELLO_REQUEST).tap(PLUGIN_NAME, ({ request, connection, user, session }) => {
    if (user !== undefined) {
      return { reply: "error", error: { code: "alreadyAuthenticated", message: `This connection is logged in as ${user}. Open a new connection for a peer link.` } };
    }
    const link = new IncomingLink(incoming, connection);
    const reply = link.hello(request);
    session.takeOver((message) => link.receive(message), () => link.closed());
    return reply;
  });

  const refuse = ({ request, connection }: ClientRequestContext) => {
    const error: WireError = { code: "notAuthenticated", message: `Request "${String(request.request)}" is accepted only on an authenticated peer link. Start with a ${HELLO_REQUEST} handshake.` };
    incoming.log.warn({ remote: connection.remoteAddress, request: request.request }, "peer request on a connection without a peer handshake; closing it");
    connection.close(error);
    return { reply: "error", error };
  };
  for (const name of [...PEER_ONLY_REQUESTS, AUTH_REQUEST]) {
    bester.requests.define(name, { type: "object" }, { public: true });
    bester.hooks.onClientRequest.for(name).tap(PLUGIN_NAME, refuse);
  }
}
