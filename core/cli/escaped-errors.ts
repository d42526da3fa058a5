// Stops `bester start` with a log line when an error escapes every tap: one thrown in a plugin's
// own timer or event callback, or a promise rejected with no handler. Node would stop the process
// with the stack on stderr only, so the JSON log would not say why the server ended.

import type { Logger } from "../log.js";

/** Milliseconds the log may take to flush before the process exits anyway. */
const FLUSH_LIMIT_MS = 1000;

/** The accepted jobs a stop leaves, counted and in words. */
export interface LeftJobs {
  running: number;
  queued: number;
  /** The fate of those jobs, as a sentence for the terminal. */
  text: string;
}

/**
 * Installs process handlers that log an escaped error as `fatal`, print one line to stderr and
 * exit with code 1. The process does not go on, because after such an error its state is unknown.
 * `logTarget` names where the log goes, and `leftJobs` counts the accepted jobs left.
 */
export function stopOnEscapedErrors(log: Logger, logTarget: string, leftJobs: () => LeftJobs): void {
  let stopping = false;
  const stop = (kind: string) => (error: unknown) => {
    // A second error while the log flushes changes nothing: the process already stops.
    if (stopping) {
      log.error({ err: error }, `${kind} while stopping after an earlier one`);
      return;
    }
    stopping = true;

    const { running, queued, text } = leftJobs();
    log.fatal({ err: error, unfinishedJobs: { running, queued } }, `${kind}; the server stops`);
    const reason = error instanceof Error ? error.message : String(error);
    process.stderr.write(`bester: ${kind}: ${reason}. The server stops; the log (${logTarget}) has the stack. ${text}\n`);

    const exit = () => process.exit(1);
    setTimeout(exit, FLUSH_LIMIT_MS).unref();
    log.flush(exit);
  };
  process.on("uncaughtException", stop("uncaught exception"));
  process.on("unhandledRejection", stop("unhandled promise rejection"));
}
