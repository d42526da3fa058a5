// The public API of the bester-ng package.

export { Bester, type BesterOptions, type StartStep } from "./core/bester.js";
export { createBester, builtinPlugins } from "./core/config/builtins.js";
export { loadConfig } from "./core/config/loader.js";
export { resolveConfig } from "./core/config/schema.js";
export { validatePluginOptions } from "./core/config/plugin-options.js";
export { defineConfig, type BesterConfig, type HandlerConfig, type ResolvedConfig } from "./core/config/types.js";
export { BesterError, WIRE_ERROR_CODES, type WireError, type WireErrorCode } from "./core/errors.js";
export { createHooks, type BesterHooks } from "./core/hooks.js";
export type * from "./core/hooks.js";
export type {
  Job,
  Director,
  BuiltinDirector,
  UserDeliveryDirector,
  HandlerDirector,
  HandoffDirector,
  PluginDirector,
  HandlerOutput,
  JobOutcome,
} from "./core/jobs/job.js";
export { formatOutputId, parseOutputId, parseRecipient } from "./core/jobs/job.js";
export { perInstance, type BesterPlugin } from "./core/plugin.js";
export type { Connection, SessionRegistry } from "./core/sessions.js";
export { endConnectionsAtShutdown, SHUTDOWN_GRACE_MS, type ShutdownConnection } from "./core/connection-shutdown.js";
export type { StoreProvider } from "./core/store.js";
export { offlineHooksOf, type OfflineHooks } from "./plugins/offline/offline-hooks.js";
export { encodeFrame, FrameDecoder } from "./core/protocol/frame-codec.js";
export type { ServerStatus, StatusSection } from "./core/status.js";
export type { JobTypeStats } from "./core/jobs/scheduler.js";
export { parseFrameBody, type DecodedFrame, type ParseFrameBodyOptions } from "./core/protocol/frame-codec.js";

// Client SDK: submit jobs and receive outputs over TCP.
export {
  BesterClient,
  BesterClientError,
  type ClientErrorCode,
  type ClientOnlyErrorCode,
  type ClientOptions,
  type ClientEvents,
  type ReconnectOptions,
  type RunOptions,
  type RunResult,
  type JobOutputEvent,
  type JobNotificationEvent,
  type JobProgressEvent,
} from "./plugins/transport-tcp/client.js";

// Handler SDK: write a message handler in a few lines.
export {
  serveHandler,
  deliverTo,
  pipeTo,
  handOff,
  type HandlerFunction,
  type HandlerJob,
  type HandlerReply,
  type HandlerTools,
  type ServeHandlerOptions,
} from "./plugins/handler-bridge/serve-handler.js";
