// The error BesterClient raises. `code` is the wire error code the server sent (such as
// `invalidCredentials`, `noHandler` or `notPermitted`), or one of the client-side codes below.

import type { WireErrorCode } from "../../core/errors.js";

/**
 * Client-side codes, which never come from the server:
 * - `connectFailed`: the TCP (or TLS) connection could not be opened.
 * - `connectionClosed`: the connection closed before the reply arrived, or the client is closed.
 * - `timedOut`: a request got no reply within `requestTimeoutMs`, or run() passed its `timeoutMs`.
 * - `unexpectedReply`: the server sent a reply of another kind.
 * - `invalidArgument`: the CLI got an option value it cannot use.
 */
export type ClientOnlyErrorCode = "connectFailed" | "connectionClosed" | "timedOut" | "unexpectedReply" | "invalidArgument";

/** Every code a BesterClientError can carry: a wire code the server sent, or a client-side code. */
export type ClientErrorCode = WireErrorCode | ClientOnlyErrorCode;

export class BesterClientError extends Error {
  /** The job an error of run() is about, once the server accepted it. */
  readonly jobID?: string;

  constructor(
    readonly code: ClientErrorCode,
    message: string,
    options: { cause?: unknown; jobID?: string } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "BesterClientError";
    if (options.jobID !== undefined) {
      this.jobID = options.jobID;
    }
  }
}
