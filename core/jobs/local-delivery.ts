// Delivery of messages to this server's users: to every live connection of an online user, or to
// the onUndelivered taps (the offline store) for a later login.

import type { Logger } from "pino";
import { BesterError } from "../errors.js";
import type { BesterHooks } from "../hooks.js";
import type { SessionRegistry } from "../sessions.js";

/** A shared settled promise: an online recipient, the usual case, costs no promise of its own. */
const DELIVERED: Promise<void> = Promise.resolve();

export class LocalDelivery {
  constructor(
    private readonly hooks: BesterHooks,
    private readonly sessions: SessionRegistry,
    private readonly log: Logger,
    /** Read at each use, because the server learns its name when its first listener is up. */
    private readonly server: { serverName: string },
  ) {}

  /**
   * Sends a message to a local user, or hands it to onUndelivered when the user is offline.
   * Rejects with `unknownUser` when the user is offline and onUserLookup finds no such account,
   * because a message stored under a name with no account (a typo, or a full address) would go to
   * the next user to register that name.
   */
  deliverToUser(user: string, message: Record<string, unknown>): Promise<void> {
    if (this.sessions.isOnline(user) || !this.hooks.onUserLookup.isUsed()) {
      return this.deliverToKnownUser(user, message);
    }
    return this.hooks.onUserLookup.promise(user).then((exists) => {
      if (exists === false) {
        throw new BesterError("unknownUser", `"${user}" is not a user of ${this.server.serverName}, so the message was not stored for a later login. Pass a local user name: parseRecipient() splits a "name@host:port" address.`);
      }
      return this.deliverToKnownUser(user, message);
    });
  }

  /**
   * Delivers as deliverToUser does, without the account check, for a user known to exist (a job's
   * submitter, a connection's own user, a recipient already checked). An offline message is thus
   * handed to onUndelivered in the same event-loop turn, which the journal relies on: it removes
   * an ended job in that turn, so both writes commit together.
   */
  deliverToKnownUser(user: string, message: Record<string, unknown>): Promise<void> {
    try {
      if (this.sessions.sendToUser(user, message) > 0) {
        return DELIVERED;
      }
    } catch (error) {
      // Callers expect a failure as a rejection, not as an exception.
      return Promise.reject(error);
    }
    return this.deliverOffline(user, message);
  }

  private async deliverOffline(user: string, message: Record<string, unknown>): Promise<void> {
    if (this.hooks.onUndelivered.isUsed()) {
      const stored = await this.hooks.onUndelivered.promise(user, message);
      if (stored) {
        return;
      }
    }
    this.log.warn({ user, reply: message.reply }, "user is offline and no store keeps offline messages; message dropped");
  }
}
