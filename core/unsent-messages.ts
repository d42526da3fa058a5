// Messages a closed connection never sent. Outputs and notifications must reach their user, so
// they go to the user's connections that did not get them, or to the offline store.

import type { SessionHost } from "./client-session.js";

/**
 * Passes the job outputs and notifications among `messages`, which never left the process for a
 * closed connection, on to the user's other connections or offline messages.
 */
export function redeliverUnsent(host: SessionHost, connectionId: string, user: string, messages: object[]): void {
  const lasting = messages.filter((message) => {
    const reply = (message as { reply?: unknown }).reply;
    return reply === "jobOutput" || reply === "jobNotification";
  });
  if (lasting.length === 0) {
    return;
  }
  if (host.sessions.isOnline(user)) {
    // A connection that was live when a message was sent received it too, but one that logged in
    // later did not, so only the later ones get it now.
    let resent = 0;
    for (const message of lasting) {
      for (const connection of host.sessions.connectionsMissing(user, message)) {
        connection.send(message);
        resent += 1;
      }
    }
    if (resent > 0) {
      host.log.info({ user, connection: connectionId, messages: resent }, "connection closed with messages unsent; sending them to the user's newer connections");
    }
    return;
  }
  host.log.info({ user, connection: connectionId, messages: lasting.length }, "connection closed with messages unsent; keeping them for the user's next login");
  for (const message of lasting) {
    host.engine.deliverToKnownUser(user, message as Record<string, unknown>).catch((error: unknown) => {
      host.log.error({ err: error, user }, "keeping an unsent message failed");
    });
  }
}
