// Logging with pino: one root logger per daemon and a child logger per plugin, so every line names
// the plugin that wrote it. Secrets are redacted by path as a second line of defence, but code must
// still never pass a password to the logger.

import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

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
