// Ends the sessions of users removed while they are logged in. `bester user remove` edits the store
// from another process, so the server reads the store's removal mark every few seconds and, when
// it changed, checks which logged-in users still have an account.

import type { Logger } from "pino";
import type { SessionRegistry } from "../../core/sessions.js";
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
    /** Users the accounts plugin logged in; only they are checked. */
    private readonly authenticated: Set<string>,
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

  /** Closes the connections of every logged-in user whose account is gone, once the mark changed. */
  async check(): Promise<void> {
    if (this.checking) {
      return;
    }
    this.checking = true;
    try {
      const mark = await this.accounts().removalMark();
      if (mark === this.lastMark) {
        return;
      }
      this.lastMark = mark;
      for (const { user } of this.sessions.list()) {
        if (this.authenticated.has(user) && !(await this.accounts().exists(user))) {
          this.authenticated.delete(user);
          this.closeSessionsOf(user);
        }
      }
    } catch (error) {
      // A store outage is logged by the store itself; the next check tries again.
      this.log.debug({ err: error }, "checking for removed users failed");
    } finally {
      this.checking = false;
    }
  }

  private closeSessionsOf(user: string): void {
    const connections = this.sessions.connectionsOf(user);
    this.log.info({ user, connections: connections.length }, "closing the connections of a removed user");
    for (const connection of connections) {
      connection.close({ code: "notAuthenticated", message: `The account "${user}" was removed, so this connection closes.` });
    }
  }
}
