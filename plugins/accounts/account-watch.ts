// Ends the sessions of users removed, or given a new password, while they are logged in. `bester
// user` edits the store from another process, so the server reads the store's change mark every
// few seconds. When it changed, the server checks that each logged-in user's account is still the
// version they logged in to.

import type { Logger } from "pino";
import { logRequestFailure } from "../../core/log.js";
import type { Connection, SessionRegistry } from "../../core/sessions.js";
import type { AccountStore, AccountVersion } from "./account-store.js";

/** How often the server reads the change mark, so about the longest a removed user stays connected. */
export const ACCOUNT_CHECK_MS = 5000;

export class AccountWatch {
  private timer: NodeJS.Timeout | undefined;
  private lastMark: string | undefined;
  private checking = false;

  constructor(
    private readonly accounts: () => AccountStore,
    private readonly sessions: SessionRegistry,
    /** Ids of the connections the accounts plugin logged in, with their account's version; only they are checked. */
    private readonly authenticated: Map<string, AccountVersion>,
    private readonly log: Logger,
    private readonly intervalMs = ACCOUNT_CHECK_MS,
  ) {}

  /** Reads the current mark, so changes made before this server started close nothing, and starts the checks. */
  async start(): Promise<void> {
    this.lastMark = await this.accounts().readChangeMark();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Closes the connections whose account is gone, was added again or has a new password, once the mark changed. */
  async check(): Promise<void> {
    if (this.checking) {
      return;
    }
    this.checking = true;
    try {
      this.forgetClosedConnections();
      const mark = await this.accounts().readChangeMark();
      if (mark === this.lastMark) {
        return;
      }
      for (const { user } of this.sessions.list()) {
        const checked = this.sessions.connectionsOf(user).filter((connection) => this.authenticated.has(connection.id));
        if (checked.length === 0) {
          continue;
        }
        // Not the kept record: a read that fails must fail the check, so the next one tries again.
        const current = await this.accounts().versionOf(user, { useKept: false });
        for (const connection of checked) {
          const reason = staleReason(this.authenticated.get(connection.id)!, current);
          if (reason) {
            this.close(user, connection, reason);
          }
        }
      }
      // After the sessions, so closing a removed user's connections does not wait for up to 10 000 reads.
      await this.accounts().refreshLastRead();
      // Only once every user was checked: after a failed read, the next check must try again.
      this.lastMark = mark;
    } catch (error) {
      // Through logRequestFailure, so a store outage warns once per 10 s rather than at every check.
      logRequestFailure(this.log, error, {}, "checking for removed users and new passwords failed; the next check tries again");
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

  private close(user: string, connection: Connection, reason: "removed" | "passwordChanged"): void {
    this.authenticated.delete(connection.id);
    if (reason === "removed") {
      this.log.info({ user, connection: connection.id }, "closing a connection of a removed user");
      connection.close({ code: "notAuthenticated", message: `The account "${user}" was removed, so this connection closes.` });
      return;
    }
    this.log.info({ user, connection: connection.id }, "closing a connection logged in with a replaced password");
    connection.close({ code: "notAuthenticated", message: `The password of "${user}" was changed, so this connection closes. Log in again with the new password.` });
  }
}

/**
 * Returns why a session bound to `bound` must end, or undefined while it may stay. A removed
 * account that was added again under the same name has a new creation time.
 */
function staleReason(bound: AccountVersion, current: AccountVersion | undefined): "removed" | "passwordChanged" | undefined {
  if (current === undefined || current.createdAt !== bound.createdAt) {
    return "removed";
  }
  return current.passwordSetAt !== bound.passwordSetAt ? "passwordChanged" : undefined;
}
