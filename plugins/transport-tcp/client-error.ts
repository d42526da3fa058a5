// The error BesterClient raises. `code` is the wire error code the server sent (such as
// `invalidCredentials`, `noHandler` or `notPermitted`), or one of the client-side codes below.

/**
 * Client-side codes, which never come from the server:
 * - `connectFailed`: the TCP (or TLS) connection could not be opened.
 * - `connectionClosed`: the connection closed before the reply arrived, or the client is closed.
 * - `unexpectedReply`: the server sent a reply of another kind.
 * - `invalidArgument`: the CLI got an option value it cannot use.
 */
export class BesterClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "BesterClientError";
  }
}
