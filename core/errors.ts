// Every error code Bester NG sends on the wire or raises to an embedding program.
// The protocol test checks that each wire code here is documented in docs/protocol.md.

/** Codes a client, handler or peer can receive in an `error` object. */
export const WIRE_ERROR_CODES = {
  frameTooLarge: "The frame length exceeds maxFrameBytes; the connection is closed.",
  invalidJson: "The frame is not valid UTF-8 JSON holding one object.",
  invalidRequest: "The message does not match the schema for its request type.",
  unknownRequest: "The request name is not one this server handles.",
  notAuthenticated: "The request needs a successful auth first.",
  alreadyAuthenticated: "The connection already authenticated.",
  invalidCredentials: "The username or password is wrong.",
  registrationDisabled: "This server does not accept registrations.",
  userExists: "The username is already registered.",
  invalidUsername: "The username is not 1-64 characters of [A-Za-z0-9._-].",
  rateLimited: "Too many failed logins; retry later.",
  noHandler: "No handler is registered for the job type.",
  queueFull: "The queue for the job type holds its maximum number of jobs.",
  handlerFailed: "The handler replied with an error, or its connection failed mid-job after all retries.",
  handlerTimeout: "The handler took longer than its timeoutMs.",
  handlerUnavailable: "No handler connection came up before the job's wait limit.",
  invalidHandlerOutput: "The handler's reply does not match the handler reply schema.",
  directorFailed: "A director raised an error while carrying out the handler's output.",
  unknownDirector: "No plugin handles the director type the handler named.",
  chainTooLong: "The job passed through more handlers than maxChainLength.",
  unknownPeer: "The recipient or handoff names a server that is not a configured peer.",
  peerAuthFailed: "The peer handshake failed: wrong server name, wrong key or an invalid signature.",
  invalidOrigin: "A peer message names an origin server other than the authenticated peer, without a valid handoff grant.",
  unknownUser: "A recipient is not a registered user of this server.",
  notPermitted: "The account may not make this request.",
  shuttingDown: "The server is shutting down and accepts no new work.",
  storeUnavailable: "The server's store is unreachable at the moment, so the request failed. Retry in a few seconds.",
  internalError: "The server failed unexpectedly; the log has the details.",
} as const;

/**
 * A code of WIRE_ERROR_CODES. NOTE: a server of a later version may send a code this union lacks,
 * so a program that branches on codes should keep a default branch.
 */
export type WireErrorCode = keyof typeof WIRE_ERROR_CODES;

/** Codes that only an embedding program or the CLI receives, never a remote party. */
export const HOST_ERROR_CODES = {
  invalidConfig: "The configuration does not match its schema.",
  configNotFound: "No configuration file was found.",
  invalidPlugin: "A plugin has no name or no apply function.",
  pluginFailed: "A plugin's tap raised an error.",
  storeFailed: "The store could not be opened or written.",
  dataDirInUse: "Another running server uses the data folder.",
  storeInUse: "Another running server uses the store's job journal.",
  outboxInUse: "A running server links to the peer, so its stored messages cannot be dropped.",
  outboxEmpty: "The store contains no messages for the peer.",
} as const;

export type HostErrorCode = keyof typeof HOST_ERROR_CODES;

export type ErrorCode = WireErrorCode | HostErrorCode;

/** The `error` object carried by replies and notifications. */
export interface WireError {
  code: WireErrorCode;
  message: string;
}

export interface BesterErrorOptions {
  cause?: unknown;
  /** Name of the plugin whose tap raised the error. */
  plugin?: string;
  /** Name of the hook that was running. */
  hook?: string;
}

/** Marks BesterError instances; Symbol.for gives every copy of this module the same symbol. */
const BESTER_ERROR_BRAND = Symbol.for("bester-ng.BesterError");

/** An error with a stable code; the only error type Bester NG raises on purpose. */
export class BesterError extends Error {
  readonly [BESTER_ERROR_BRAND] = true;
  readonly code: ErrorCode;
  readonly plugin?: string;
  readonly hook?: string;

  constructor(code: ErrorCode, message: string, options: BesterErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "BesterError";
    this.code = code;
    this.plugin = options.plugin;
    this.hook = options.hook;
  }

  /**
   * Recognises BesterErrors created by another copy of this module, as when a config file loaded
   * through tsx imports the package a second time. Subclasses keep the usual prototype check.
   */
  static [Symbol.hasInstance](value: unknown): boolean {
    if (this !== BesterError) {
      return Function.prototype[Symbol.hasInstance].call(this, value);
    }
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BESTER_ERROR_BRAND] === true;
  }

  /**
   * Converts to the wire shape. `storeUnavailable` gets its fixed message, so no detail of the
   * store leaks, and so does a host-only error caused by an unreachable store. Other host-only
   * codes become `internalError`. Any other wire code keeps its message, which its author wrote
   * for the client.
   */
  toWire(): WireError {
    if (this.code === "storeUnavailable") {
      return { code: "storeUnavailable", message: WIRE_ERROR_CODES.storeUnavailable };
    }
    if (isWireCode(this.code)) {
      return { code: this.code, message: this.message };
    }
    if (isStoreUnavailable(this)) {
      return { code: "storeUnavailable", message: WIRE_ERROR_CODES.storeUnavailable };
    }
    return { code: "internalError", message: WIRE_ERROR_CODES.internalError };
  }
}

/** Ends a message with a period unless it already ends a sentence, so a following sentence reads right. */
export function endSentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

export function isWireCode(code: string): code is WireErrorCode {
  return Object.hasOwn(WIRE_ERROR_CODES, code);
}

/**
 * Wraps an error thrown inside a plugin's tap so the log and the caller see which plugin and
 * hook failed. A BesterError keeps its code, because a tap may reject on purpose with one.
 */
export function wrapTapError(error: unknown, plugin: string, hook: string): BesterError {
  return wrapPluginError(error, plugin, `hook ${hook}`, hook);
}

/**
 * Wraps an error thrown by plugin code, at `place` (such as "apply()"), as wrapTapError does for
 * taps: a plain error becomes `pluginFailed` naming the plugin and place.
 */
export function wrapPluginError(error: unknown, plugin: string, place: string, hook?: string): BesterError {
  if (error instanceof BesterError) {
    if (error.plugin) {
      return error;
    }
    return new BesterError(error.code, error.message, { cause: error.cause, plugin, hook });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new BesterError("pluginFailed", `Plugin "${plugin}" failed in ${place}: ${message}`, {
    cause: error,
    plugin,
    hook,
  });
}

/** How many causes isStoreUnavailable() follows, so a cyclic cause chain cannot loop. */
const MAX_CAUSE_DEPTH = 8;

/**
 * Returns whether `error`, or an error in its `cause` chain, is a BesterError with the code
 * `storeUnavailable`. The store plugin raises that code when its store is unreachable, and taps and
 * plugins that wrap the error (as `pluginFailed` or `storeFailed`) keep it as the cause.
 */
export function isStoreUnavailable(error: unknown): boolean {
  let current = error;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current instanceof Error; depth += 1) {
    if (current instanceof BesterError && current.code === "storeUnavailable") {
      return true;
    }
    current = current.cause;
  }
  return false;
}

/**
 * Returns whether a thrown value reaches a client with a fixed message while its details exist
 * only in the log, so the code that catches it must log it. That is `internalError` (any value
 * that is not a BesterError, and a BesterError with a host-only code such as `pluginFailed`) and
 * `storeUnavailable`.
 */
export function isInternalError(error: unknown): boolean {
  return !(error instanceof BesterError) || !isWireCode(error.code) || isStoreUnavailable(error);
}

/** Converts any thrown value to a wire error, keeping a BesterError's code. */
export function toWireError(error: unknown, fallback: WireErrorCode = "internalError"): WireError {
  if (error instanceof BesterError) {
    return error.toWire();
  }
  if (isStoreUnavailable(error)) {
    return { code: "storeUnavailable", message: WIRE_ERROR_CODES.storeUnavailable };
  }
  if (fallback === "internalError") {
    return { code: fallback, message: WIRE_ERROR_CODES.internalError };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: fallback, message };
}
