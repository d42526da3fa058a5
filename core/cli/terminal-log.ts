// Log lines for a person at a terminal: `bester start` copies warnings and errors to stderr in this
// form, while the log file keeps the JSON lines.

import type { DestinationStream } from "pino";
import pinoPretty from "pino-pretty";

/**
 * Returns a pino-pretty stream that writes one line per entry: time, level, plugin and message,
 * then the other fields. An entry with an error adds one line with the error's type and message,
 * without its stack or causes. The writes are synchronous, so the lines before an exit are not lost.
 */
export function terminalLogStream(destination: number | NodeJS.WritableStream = 2, colorize = process.stderr.isTTY): DestinationStream {
  return pinoPretty({
    destination,
    sync: true,
    colorize,
    singleLine: true,
    translateTime: "HH:MM:ss",
    messageFormat: "{if plugin}{plugin}: {end}{msg}",
    ignore: "plugin",
    // Stacks and nested causes help in the log file, not at a glance: a port in use printed 40
    // lines before the one with the fix. The error's own message names the fix.
    errorLikeObjectKeys: [],
    customPrettifiers: { err: (value) => describeError(value) },
  });
}

function describeError(value: unknown): string {
  if (typeof value !== "object" || value === null) {
    return String(value);
  }
  const { type, message, code } = value as { type?: string; message?: string; code?: string };
  return `${type ?? "Error"}${code ? ` [${code}]` : ""}: ${message ?? ""}`;
}
