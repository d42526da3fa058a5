// Stops `bester start` with a log line when an error escapes every tap: one thrown in a plugin's
// own timer or event callback, or a promise rejected with no handler. Node would stop the process
// with the stack on stderr only, so the JSON log would not say why the server ended.

import type { Logger } from "../log.js";

/** Milliseconds the log may take to flush before the process exits anyway. */
const FLUSH_LIMIT_MS = 1000;

/**
 * Installs process handlers that log an escaped error as `fatal`, print one line to stderr and
 * exit with code 1. The process does not go on, because after such an error its state is unknown.
 * `describeLeft` returns what becomes of the accepted jobs.
 */
export function stopOnEscapedErrors(log: Logger, describeLeft: () => string): void {
  let stopping = false;
  const stop = (kind: string) => (error: unknown) => {
    // A second error while the log flushes changes nothing: the process already stops.
    if (stopping) {
      log.error({ err: error }, `${kind} while stopping after an earlier one`);
      return;
    }
    stopping = true;

    log.fatal({ err: error }, `${kind}; the server stops`);
    const reason = error instanceof Error ? error.message : String(error);
    process.stderr.write(`bester: ${kind}: ${reason}. The server stops; the log has the stack. ${describeLeft()}\n`);

    const exit = () => process.exit(1);
    setTimeout(exit, FLUSH_LIMIT_MS).unref();
    log.flush(exit);
  };
  process.on("uncaughtException", stop("uncaught exception"));
  process.on("unhandledRejection", stop("unhandled promise rejection"));
}
