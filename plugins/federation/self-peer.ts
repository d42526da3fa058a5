// Rejects a peer entry that names this server itself. Such a server dials its own listener and
// retries the failing handshake for as long as it runs, or links to itself when the entry has its
// own public key.

import os from "node:os";
import type { FederationPeerConfig } from "../../core/config/types.js";
import { BesterError } from "../../core/errors.js";
import { parseServerAddress } from "./peers.js";

/** One of this server's listeners, with the config key that sets it, such as `listen[0]`. */
export interface OwnListener {
  host: string;
  port: number;
  setting: string;
}

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", ""]);
const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "::1"]);

/**
 * Throws invalidConfig naming the first entry of `peers` whose name is `serverName`, or whose
 * address reaches one of `listeners`.
 */
export function assertNoSelfPeer(peers: readonly FederationPeerConfig[], serverName: string, listeners: readonly OwnListener[]): void {
  for (const [index, peer] of peers.entries()) {
    const where = `federation.peers[${index}] ("${peer.name}")`;
    if (peer.name === serverName) {
      throw new BesterError("invalidConfig", `${where} is the name of this server (server.name ${serverName}). Remove the entry, because a server does not link to itself.`);
    }

    const address = peer.address ?? peer.name;
    const dialed = parseServerAddress(address);
    const listener = dialed && listeners.find((own) => reaches(dialed, own));
    if (listener) {
      throw new BesterError("invalidConfig", `${where} dials ${address}, which is this server's own ${listener.setting} (${listener.host}:${listener.port}). Remove the entry, or set its address to the peer's public host:port.`);
    }
  }
}

/** Returns whether a connection to `dialed` ends at `listener` on this machine. */
function reaches(dialed: { host: string; port: number }, listener: OwnListener): boolean {
  if (dialed.port !== listener.port) {
    return false;
  }
  const host = dialed.host.toLowerCase();
  const bound = listener.host.toLowerCase();
  if (host === bound) {
    return true;
  }
  if (WILDCARD_HOSTS.has(bound)) {
    return isLocalAddress(host);
  }
  // "localhost" usually resolves to 127.0.0.1 or ::1, so it is taken to reach a listener on either.
  return host === "localhost" && LOOPBACK_NAMES.has(bound);
}

/** Returns whether `host` is a loopback name or an address of one of this machine's interfaces. */
function isLocalAddress(host: string): boolean {
  if (LOOPBACK_NAMES.has(host) || host.startsWith("127.")) {
    return true;
  }
  return Object.values(os.networkInterfaces()).some((addresses) => addresses?.some((entry) => entry.address.toLowerCase() === host));
}
