// Closing a stream socket politely without trusting the other side to cooperate.

import type { Socket } from "node:net";

/** Milliseconds a half-closed socket may wait for the other side before it is destroyed. */
export const CLOSE_GRACE_MS = 2000;

/**
 * Ends the socket so buffered frames (such as a final error) still go out, then destroys it after
 * a grace period, because a peer that never reads would keep a half-closed socket open forever.
 */
export function endSocketGracefully(socket: Socket, graceMs: number = CLOSE_GRACE_MS): void {
  socket.end();
  setTimeout(() => socket.destroy(), graceMs).unref();
}
