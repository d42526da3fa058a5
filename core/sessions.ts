// The session registry: which connections belong to which user. A user may have several live
// connections, and each receives the user's outputs and notifications. Transports create the
// connections, so the registry itself uses no sockets.

import type { WireError } from "./errors.js";

/** One client or peer link, as a transport exposes it to the core. */
export interface Connection {
  /**
   * Unique per daemon process across all transports, because logs name the connection by it and
   * the accounts plugin keys the connection's login by it.
   */
  readonly id: string;
  /**
   * Transport name and remote address, for logs and rate limits, e.g. `ws 127.0.0.1:50312`. The
   * built-in TCP transport leaves out its name. The login limit counts failures per host, the
   * address without the name and the trailing `:port`, so it spans transports. It counts an
   * IPv4-mapped address (`::ffff:10.0.0.5`) as the IPv4 address.
   */
  readonly remoteAddress: string;
  /** Sends one message; the transport frames and buffers it. */
  send(message: object): void;
  /** Closes the link, after sending `error` when one is given. */
  close(error?: WireError): void;
  /**
   * Calls `callback` once every message sent so far has left the process (was handed to the
   * operating system), synchronously right after the write when it completes at once, or with an
   * error when the link closes first. Optional: without it, a send counts as done.
   */
  onFlushed?(callback: (error?: Error) => void): void;
}

/**
 * The part of the session registry the core and plugins use. It is an interface so a shared
 * implementation can fan out to connections held by other daemon processes.
 */
export interface SessionRegistry {
  add(user: string, connection: Connection): void;
  remove(connection: Connection): void;
  /** Sends to every live connection of `user` and returns how many received it. */
  sendToUser(user: string, message: object): number;
  isOnline(user: string): boolean;
  /** The live connections of `user`; empty when the user is offline. */
  connectionsOf(user: string): Connection[];
  /** Users with at least one live connection, with their connection counts. */
  list(): Array<{ user: string; connections: number }>;
  /**
   * Returns the live connections of `user` that did not receive `message` through sendToUser(),
   * because they were added after it was sent. A message that sendToUser() never sent, such as a
   * stored offline message sent to one connection, reached none of them.
   */
  connectionsMissing(user: string, message: object): Connection[];
}

/** The number of logins before a message went out through sendToUser(). */
const SENT_AT = Symbol("sentAt");
type Stamped = { [SENT_AT]?: number };

export class MemorySessionRegistry implements SessionRegistry {
  private byUser = new Map<string, Set<Connection>>();
  /** Each live connection's user, and the value of `generation` when it was added. */
  private added = new Map<Connection, { user: string; generation: number }>();
  /** Counts add() calls, so a message's send time and a connection's add time compare. */
  private generation = 0;

  add(user: string, connection: Connection): void {
    let connections = this.byUser.get(user);
    if (!connections) {
      connections = new Set();
      this.byUser.set(user, connections);
    }
    connections.add(connection);
    this.generation += 1;
    this.added.set(connection, { user, generation: this.generation });
  }

  remove(connection: Connection): void {
    const user = this.added.get(connection)?.user;
    if (user === undefined) {
      return;
    }
    this.added.delete(connection);
    const connections = this.byUser.get(user);
    connections?.delete(connection);
    if (connections && connections.size === 0) {
      this.byUser.delete(user);
    }
  }

  sendToUser(user: string, message: object): number {
    const connections = this.byUser.get(user);
    if (!connections) {
      return 0;
    }
    // A symbol-keyed property, which JSON leaves out, instead of a WeakMap entry per message that
    // the collector would have to process.
    (message as Stamped)[SENT_AT] = this.generation;
    for (const connection of connections) {
      connection.send(message);
    }
    return connections.size;
  }

  isOnline(user: string): boolean {
    return this.byUser.has(user);
  }

  connectionsOf(user: string): Connection[] {
    return [...(this.byUser.get(user) ?? [])];
  }

  connectionsMissing(user: string, message: object): Connection[] {
    const sentAt = (message as Stamped)[SENT_AT] ?? -1;
    return this.connectionsOf(user).filter((connection) => this.added.get(connection)!.generation > sentAt);
  }

  list(): Array<{ user: string; connections: number }> {
    return [...this.byUser].map(([user, connections]) => ({ user, connections: connections.size }));
  }
}
