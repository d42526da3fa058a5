// Advice for a listener that failed to bind, shared by the client and the peer listeners.

/** Returns the advice for a failed listen by its error code; `setting` names where the address is set. */
export function listenAdvice(code: string | undefined, setting: string): string {
  switch (code) {
    case "EADDRINUSE":
      return `Another process uses the port: pick a free one in ${setting}, or stop the other process.`;
    case "EACCES":
      return `This user may not bind that port (ports below 1024 need extra privileges): pick a port of 1024 or more in ${setting}.`;
    case "EADDRNOTAVAIL":
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `The host is not an address of this machine: set ${setting} to one of its addresses, such as 127.0.0.1 or 0.0.0.0.`;
    default:
      return `Check the host and port in ${setting}.`;
  }
}
