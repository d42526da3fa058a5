// Log lines for a person at a terminal: `bester start` copies warnings and errors to stderr in this
// form, while the log file keeps the JSON lines.

import type { DestinationStream } from "pino";
import pinoPretty from "pino-pretty";

/**
 * Returns a pino-pretty stream that writes one line per entry: time, level, plugin and message,
 * then the other fields. An entry with an error adds the error's type and message below it. The
 * writes are synchronous, so the lines before an exit are not lost.
 */
export function terminalLogStream(destination: number | NodeJS.WritableStream = 2, colorize = process.stderr.isTTY): DestinationStream {
  return pinoPretty({
    destination,
    sync: true,
    colorize,
    singleLine: true,
    translateTime: "HH:MM:ss",
    messageFormat: "{if plugin}{plugin}: {end}{msg}",
    // A stack helps in the log file, not at a glance; the message and the error's message stay.
    ignore: "plugin,err.stack",
  });
}
