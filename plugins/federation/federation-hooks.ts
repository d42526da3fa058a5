// The federation plugin's own hooks, one frozen object per Bester instance. A third party adds a
// peer message type by sending it through `bester.hooks.onPeerSend` and processing it with a tap on
// `bester.hooks.onPeerMessage.for(name)`. These hooks let it change or check messages on the way.

import { AsyncSeriesWaterfallHook, SyncHook } from "tapable";
import type { Bester } from "../../core/bester.js";
import type { PeerEnvelope } from "../../core/hooks.js";
import { perInstance } from "../../core/plugin.js";

export interface LinkEvent {
  /** The peer's server name. */
  peer: string;
  /** `outgoing`: this server dialed; `incoming`: the peer dialed. */
  direction: "outgoing" | "incoming";
  /** Whether the link is encrypted with TLS. */
  tls: boolean;
}

export function createFederationHooks() {
  return Object.freeze({
    /** Sees each peer message before it is written to the outbox; returns the message, possibly changed. */
    beforeSend: new AsyncSeriesWaterfallHook<[Record<string, unknown>, PeerEnvelope]>(["message", "envelope"]),
    /**
     * Sees each message from an authenticated peer, after de-duplication and before
     * `onPeerMessage` processes it. Returns the message, possibly changed. A thrown BesterError
     * rejects it with that code.
     */
    onReceive: new AsyncSeriesWaterfallHook<[Record<string, unknown>, string]>(["message", "peer"]),
    /** Runs when a link finished its handshake. */
    linkUp: new SyncHook<[LinkEvent]>(["event"]),
    /** Runs when an authenticated link closed. */
    linkDown: new SyncHook<[LinkEvent]>(["event"]),
  });
}

export type FederationHooks = ReturnType<typeof createFederationHooks>;

/** Returns the federation hooks of one Bester instance, creating them on first use. */
export const federationHooksOf: (bester: Bester) => FederationHooks = perInstance(createFederationHooks);
