// Ends the sessions of users removed while they are logged in. `bester user remove` edits the store
// from another process, so the server reads the store's removal mark every few seconds. When it
// changed, the server checks that each logged-in user's account is still the one they logged in to.

import type { Logger } from "pino";
import type { Connection, SessionRegistry } from "../../core/sessions.js";
import type { AccountStore } from "./account-store.js";

/** How often the server reads the removal mark, so about the longest a removed user stays connected. */
export const REMOVAL_CHECK_MS = 5000;

export class RemovalWatch {
  private timer: NodeJS.Timeout | undefined;
  private lastMark: string | undefined;
  private checking = false;

  constructor(
    private readonly accounts: () => AccountStore,
    private readonly sessions: SessionRegistry,
    /** Ids of the connections the accounts plugin logged in, with their account's creation time; only they are checked. */
    private readonly authenticated: Map<string, number>,
    private readonly log: Logger,
    private readonly intervalMs = REMOVAL_CHECK_MS,
  ) {}

  /** Reads the current mark, so removals made before this server started close nothing, and starts the checks. */
  async start(): Promise<void> {
    this.lastMark = await this.accounts().removalMark();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Closes the connections whose account is gone or was added again, once the mark changed. */
  async check(): Promise<void> {
    if (this.checking) {
      return;
    }
    this.checking = true;
    try {
      this.forgetClosedConnections();
      const mark = await this.accounts().removalMark();
      if (mark === this.lastMark) {
        return;
      }
      this.lastMark = mark;
      for (const { user } of this.sessions.list()) {
        const checked = this.sessions.connectionsOf(user).filter((connection) => this.authenticated.has(connection.id));
        if (checked.length === 0) {
          continue;
        }
        // A removed account that was added again under the same name has a new creation time.
        const createdAt = await this.accounts().createdAtOf(user);
        const stale = checked.filter((connection) => this.authenticated.get(connection.id) !== createdAt);
        if (stale.length > 0) {
          this.close(user, stale);
        }
      }
    } catch (error) {
      // A store outage is logged by the store itself; the next check tries again.
      this.log.debug({ err: error }, "checking for removed users failed");
    } finally {
      this.checking = false;
    }
  }

  /**
   * Drops the ids of connections that have closed. The registry has no close event for plugins, so
   * this runs once the map has grown well past the live connections, which keeps it cheap.
   */
  private forgetClosedConnections(): void {
    const live = this.sessions.list().reduce((sum, entry) => sum + entry.connections, 0);
    if (this.authenticated.size <= 2 * live + 100) {
      return;
    }
    const ids = new Set<string>();
    for (const { user } of this.sessions.list()) {
      for (const connection of this.sessions.connectionsOf(user)) {
        ids.add(connection.id);
      }
    }
    for (const id of this.authenticated.keys()) {
      if (!ids.has(id)) {
        this.authenticated.delete(id);
      }
    }
  }

  private close(user: string, connections: Connection[]): void {
    this.log.info({ user, connections: connections.length }, "closing the connections of a removed user");
    for (const connection of connections) {
      this.authenticated.delete(connection.id);
      connection.close({ code: "notAuthenticated", message: `The account "${user}" was removed, so this connection closes.` });
    }
  }
}
