// The configured peers and this server's own key: who may link to this server, and with which
// public key each one must prove its name.

import type { KeyObject } from "node:crypto";
import type { FederationPeerConfig } from "../../core/config/types.js";
import { BesterError } from "../../core/errors.js";
import { parsePublicKey, type ServerKey } from "./keys.js";

export interface Peer {
  /** The peer's server name, `host:port`; it is signed in every handshake. */
  name: string;
  publicKey: KeyObject;
  /** Host that outgoing links connect to. */
  host: string;
  port: number;
}

/** Splits `host:port` or `[ipv6]:port`; undefined when the text is not such an address. */
export function parseServerAddress(address: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^@:\s[\]]+)):([0-9]{1,5})$/.exec(address);
  if (!match) {
    return undefined;
  }
  const port = Number(match[3]);
  if (port < 1 || port > 65535) {
    return undefined;
  }
  return { host: match[1] ?? match[2]!, port };
}

export class PeerDirectory {
  private readonly peers = new Map<string, Peer>();
  private ownKey: ServerKey | undefined;

  constructor(configs: FederationPeerConfig[]) {
    for (const [index, config] of configs.entries()) {
      const where = `federation.peers[${index}]`;
      if (this.peers.has(config.name)) {
        throw new BesterError("invalidConfig", `${where} repeats peer "${config.name}". List each peer once.`);
      }
      const address = parseServerAddress(config.address ?? config.name);
      if (!address) {
        throw new BesterError("invalidConfig", `${where} has address "${config.address ?? config.name}", which is not host:port. Use the peer's public host:port.`);
      }
      const publicKey = parsePublicKey(config.publicKey, `${where}.publicKey of "${config.name}"`);
      this.peers.set(config.name, { name: config.name, publicKey, ...address });
    }
  }

  /** This server's key, once the plugin loaded it during initialize. */
  get key(): ServerKey {
    if (!this.ownKey) {
      throw new BesterError("internalError", "The federation key is used before the server initialized.");
    }
    return this.ownKey;
  }

  setKey(key: ServerKey): void {
    this.ownKey = key;
  }

  get(name: string): Peer | undefined {
    return this.peers.get(name);
  }

  list(): Peer[] {
    return [...this.peers.values()];
  }

  /**
   * The key that signs grants issued by `server`: a peer's configured key, or this server's own
   * key when `server` is this server.
   */
  publicKeyOf(server: string, ownName: string): KeyObject | undefined {
    if (server === ownName) {
      return this.ownKey?.publicKey;
    }
    return this.peers.get(server)?.publicKey;
  }
}
