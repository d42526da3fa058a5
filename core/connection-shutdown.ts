// The end of a transport's client connections when the server stops. Right before the close hook
// runs, the core closes every logged-in session with a shuttingDown error, sent after the replies
// that session still owes. This helper gives those frames time to leave and ends the rest.

/** Milliseconds that connections still ending on their own get at shutdown before they are destroyed. */
export const SHUTDOWN_GRACE_MS = 500;

/** The part of a transport's connection that endConnectionsAtShutdown uses. */
export interface ShutdownConnection {
  /**
   * True while the connection ends on its own: it was closed (its last frames are leaving and the
   * client may close its side), or its session sends the replies still due before it closes.
   */
  readonly isEnding: boolean;
  /** Drops the connection at once. */
  destroy(): void;
}

/**
 * Ends a transport's connections in its `close` hook. After one event-loop turn, in which the
 * frames already queued are written, connections that are not ending are destroyed. The others
 * get up to SHUTDOWN_GRACE_MS to close, and whatever is left then is destroyed. `connections` is
 * the transport's live set, from which each connection removes itself when its socket closes.
 */
export async function endConnectionsAtShutdown(connections: ReadonlySet<ShutdownConnection>, graceMs: number = SHUTDOWN_GRACE_MS): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));

  for (const connection of connections) {
    if (!connection.isEnding) {
      connection.destroy();
    }
  }

  // Polling keeps the helper free of any transport's close events; the grace is short anyway.
  const deadline = Date.now() + graceMs;
  while (connections.size > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }

  for (const connection of connections) {
    connection.destroy();
  }
}
