// Logging with pino: one root logger per daemon and a child logger per plugin, so every line names
// the plugin that wrote it. Secrets are redacted by path as a second line of defence, but code must
// still never pass a password to the logger.

import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";
import { isStoreUnavailable } from "./errors.js";

export type { Logger };

export interface LogOptions {
  level?: LevelWithSilent;
  /** File descriptor or path for log lines; default 1 (stdout). Ignored when `stream` is given. */
  destination?: number | string;
  /** A ready stream, such as a pino multistream. */
  stream?: DestinationStream;
}

const REDACTED_PATHS = [
  "password",
  "*.password",
  "account.password",
  "request.account.password",
  "message.account.password",
  "privateKey",
  "*.privateKey",
];

export function createLogger(options: LogOptions = {}): Logger {
  const destination = options.stream ?? pino.destination({ dest: options.destination ?? 1, sync: false, mkdir: true });
  return pino(
    {
      level: options.level ?? "info",
      base: undefined,
      // The default error serializer appends each cause's message to the error's own, which
      // repeats it for errors that already quote their cause. This one logs the cause as a field.
      serializers: { err: pino.stdSerializers.errWithCause },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    },
    destination,
  );
}

/** Creates a logger that writes nothing, for embedding and unit tests. */
export function createSilentLogger(): Logger {
  return pino({ level: "silent" });
}

/** How often one kind of request failure caused by a store outage is logged at warn level. */
const OUTAGE_WARN_INTERVAL_MS = 10_000;
const outageWarnedAt = new WeakMap<Logger, Map<string, number>>();

/**
 * Logs a failed request: at error level, unless a store outage caused it. The store plugin logs
 * the outage itself, so each kind of failure it causes warns once per 10 s and the rest go to
 * debug. A busy server would otherwise write a line for every request rejected during the outage.
 */
export function logRequestFailure(log: Logger, error: unknown, fields: Record<string, unknown>, message: string): void {
  if (!isStoreUnavailable(error)) {
    log.error({ err: error, ...fields }, message);
    return;
  }

  let warned = outageWarnedAt.get(log);
  if (!warned) {
    warned = new Map();
    outageWarnedAt.set(log, warned);
  }
  const now = Date.now();
  if (now - (warned.get(message) ?? 0) < OUTAGE_WARN_INTERVAL_MS) {
    log.debug({ err: error, ...fields }, message);
    return;
  }
  warned.set(message, now);
  log.warn({ err: error, ...fields }, message);
}
