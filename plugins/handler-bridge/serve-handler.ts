// serveHandler: write a message handler in a few lines. It listens on the handler's UNIX socket,
// replies to each job frame with one frame in order, turns thrown errors into `{error}` replies
// and lets the function report progress before its reply.

import { rm } from "node:fs/promises";
import net from "node:net";
import type { BuiltinDirector, HandlerDirector, HandoffDirector, PluginDirector, UserDeliveryDirector } from "../../core/jobs/job.js";
import { encodeFrame, FrameDecoder } from "../../core/protocol/frame-codec.js";
import { isProcessRunning } from "../../core/process-state.js";
import { encodeLongString, LONG_STRING_CHARS } from "../../core/protocol/long-string.js";

/** The context the daemon sends with each job. */
export interface HandlerJob {
  jobID: string;
  type: string;
  /** Submitter as `user@server`. */
  from: string;
  priority: number;
}

/**
 * A handler's reply. `director` is one of the built-in directors, whose options are type-checked,
 * or a `Custom` director of a plugin: name its shape, such as `{ type: "fileSink"; path: string }`,
 * or PluginDirector to accept any `{ type, ... }` without checks.
 */
export interface HandlerReply<Custom extends { type: string } = never> {
  payload: unknown;
  director: BuiltinDirector | Custom;
}

export interface HandlerTools {
  /** Sends a `progress` frame, forwarded to the submitter as `jobProgress`. */
  progress(progress: unknown): void;
  /**
   * Signal aborted when the daemon closes the job's connection before the reply is sent, as it does
   * once the job passes `handlers.<type>.timeoutMs` or when it stops mid-job. The reply would be
   * dropped, so the function may stop its work. The reason is a DOMException named `AbortError`.
   * It is never aborted after the reply was sent.
   */
  readonly signal: AbortSignal;
}

export type HandlerFunction<Custom extends { type: string } = never> = (
  payload: any,
  job: HandlerJob,
  tools: HandlerTools,
) => HandlerReply<Custom> | Promise<HandlerReply<Custom>>;

export interface ServeHandlerOptions {
  /** Handler type, for messages. */
  type: string;
  /** Socket path; default the BESTER_SOCKET variable the daemon sets when it spawns the handler. */
  socket?: string;
  maxFrameBytes?: number;
}

/** Builds a userDelivery director that sends the output to these users (`name` or `name@host:port`). */
export function deliverTo(users: string | string[]): UserDeliveryDirector {
  return { type: "userDelivery", users: Array.isArray(users) ? users : [users] };
}

/** Builds a handler director that feeds the output into another local handler. */
export function pipeTo(handler: string): HandlerDirector {
  return { type: "handler", handler };
}

/** Builds a handoff director that sends the output one way to `type@host:port`. */
export function handOff(handler: string): HandoffDirector {
  return { type: "handoff", handler };
}

/**
 * Starts serving and resolves with the listening server. `Custom` names the plugin directors the
 * function may return (see HandlerReply). It is never inferred from the function, because an
 * inferred type would accept a misspelt built-in director as a plugin's.
 */
export async function serveHandler<Custom extends { type: string } = never>(
  options: ServeHandlerOptions,
  handle: HandlerFunction<NoInfer<Custom>>,
): Promise<net.Server> {
  const socketPath = options.socket ?? process.env.BESTER_SOCKET;
  if (!socketPath) {
    throw new Error(`No socket for handler "${options.type}". Pass socket, or start the handler from the daemon, which sets BESTER_SOCKET.`);
  }
  await rm(socketPath, { force: true });

  const server = net.createServer((connection) => {
    const decoder = new FrameDecoder(options.maxFrameBytes);
    const replies = new ReplyQueue(connection, handle);
    connection.on("data", (chunk: Buffer) => {
      for (const decoded of decoder.push(chunk)) {
        if (decoded.kind === "error") {
          connection.destroy();
          return;
        }
        replies.push(decoded.message);
      }
    });
    connection.on("error", () => connection.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  exitWithDaemon(options.type);
  return server;
}

/**
 * Replies to a connection's jobs one at a time, in order. The daemon sends the next job only after a
 * reply, but a handler that closes after each reply may still see two. A function that returns its
 * reply directly gets it sent in the same turn, without a promise per job.
 */
class ReplyQueue {
  private readonly waiting: Array<Record<string, unknown>> = [];
  private busy = false;
  /** The job whose reply is not sent yet, whose signal a close of the connection aborts. */
  private current: JobRun | undefined;

  constructor(
    private readonly connection: net.Socket,
    private readonly handle: HandlerFunction<PluginDirector>,
  ) {
    connection.once("close", () => this.abortCurrent());
  }

  push(message: Record<string, unknown>): void {
    this.waiting.push(message);
    if (!this.busy) {
      this.drain();
    }
  }

  private drain(): void {
    while (this.waiting.length > 0) {
      const message = this.waiting.shift()!;
      const job = message.job as HandlerJob;
      const run: JobRun = { job, replied: false };
      this.current = run;
      // A job read before the close still runs, but its reply has nowhere to go from the start.
      if (this.connection.destroyed) {
        this.abortCurrent();
      }

      let result: HandlerReply<PluginDirector> | Promise<HandlerReply<PluginDirector>> | { error: { message: string } };
      try {
        result = this.handle(message.payload, job, this.tools(run));
      } catch (error) {
        result = failure(error);
      }

      if (isPromise(result)) {
        this.busy = true;
        result.then(
          (reply) => this.resume(reply, run),
          (error: unknown) => this.resume(failure(error), run),
        );
        return;
      }
      this.send(result, run);
    }
  }

  private resume(reply: unknown, run: JobRun): void {
    this.busy = false;
    this.send(reply, run);
    this.drain();
  }

  private abortCurrent(): void {
    const run = this.current;
    if (!run || run.replied) {
      return;
    }
    const message = `The daemon closed the connection before the reply to job ${run.job?.jobID ?? "(no id)"} was sent, so the reply will be dropped.`;
    run.abortReason = new DOMException(message, "AbortError");
    run.controller?.abort(run.abortReason);
  }

  private send(reply: unknown, run: JobRun): void {
    run.replied = true;
    if (this.current === run) {
      this.current = undefined;
    }
    const job = run.job;
    if (this.connection.destroyed) {
      return;
    }
    if (reply === null || typeof reply !== "object") {
      const reason = `The handler function returned ${reply === null ? "null" : typeof reply} instead of { payload, director }.`;
      console.error(`Job ${job?.jobID ?? "(no id)"} failed: ${reason}`);
      reply = failure(new Error(reason));
    }
    let frame: Buffer;
    try {
      frame = encodeFrame(withLongPayload(reply));
    } catch (error) {
      // A reply JSON cannot hold (a BigInt, a cycle, nesting too deep to serialise) fails its job
      // with the reason, instead of throwing out of the socket callback and ending the process.
      const reason = `The handler's reply could not be encoded as JSON (${(error as Error).message}).`;
      console.error(`Job ${job?.jobID ?? "(no id)"} failed: ${reason}`);
      frame = encodeFrame(failure(new Error(reason)));
    }
    this.connection.write(frame);
  }

  private tools(run: JobRun): HandlerTools {
    const job = run.job;
    return {
      // Created on first use, because most handlers never read it and an AbortController costs
      // about 3 µs per job (a loop of 200 000 on Node.js 20.20, 2 vCPUs).
      get signal() {
        if (!run.controller) {
          run.controller = new AbortController();
          if (run.abortReason) {
            run.controller.abort(run.abortReason);
          }
        }
        return run.controller.signal;
      },
      progress: (progress) => {
        if (this.connection.destroyed) {
          return;
        }
        if (run.replied) {
          // The daemon would take a late report for the connection's next job, or close the link.
          console.error(`Job ${job?.jobID ?? "(no id)"}: a progress report sent after the job's reply was dropped.`);
          return;
        }
        try {
          // JSON has no undefined, and a frame without `progress` would read as the job's reply.
          this.connection.write(encodeFrame({ progress: progress === undefined ? null : progress }));
        } catch (error) {
          // Progress is informational, so one that cannot be encoded is left out and the job goes on.
          console.error(`Job ${job?.jobID ?? "(no id)"}: progress report left out, because it could not be encoded as JSON (${(error as Error).message}).`);
        }
      },
    };
  }
}

/** One job on a connection, and whether its reply was sent, after which progress is left out. */
interface JobRun {
  job: HandlerJob | undefined;
  replied: boolean;
  /** The controller of `tools.signal`, once the function read it. */
  controller?: AbortController;
  /** Set when the connection closed before the reply, so a signal read later starts aborted. */
  abortReason?: DOMException;
}

/** Returns a plain reply whose payload is a long string with that string pre-encoded, which saves most of its JSON.stringify time. */
function withLongPayload(reply: unknown): unknown {
  const payload = (reply as { payload?: unknown } | null)?.payload;
  if (typeof payload !== "string" || payload.length < LONG_STRING_CHARS || Object.getPrototypeOf(reply) !== Object.prototype) {
    return reply;
  }
  return { ...(reply as Record<string, unknown>), payload: encodeLongString(payload) };
}

function failure(error: unknown): { error: { message: string } } {
  return { error: { message: describeThrown(error) } };
}

/** Returns the message of an Error, a string as it is, and other thrown values as JSON where they can be. */
function describeThrown(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === "string") {
    return error;
  }
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

function isPromise(value: unknown): value is Promise<HandlerReply<PluginDirector>> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/**
 * Exits when the daemon that started this handler is gone, so a killed daemon leaves no orphan
 * handlers behind. Only a handler the daemon started has BESTER_DAEMON_PID, so one started by hand
 * keeps running whatever its parent does.
 */
function exitWithDaemon(type: string): void {
  const daemon = Number(process.env.BESTER_DAEMON_PID);
  if (!Number.isInteger(daemon) || daemon <= 0) {
    return;
  }
  // A direct child learns of the exit at once from its new parent id. A handler started through a
  // wrapper script checks the daemon's pid instead.
  const directChild = process.ppid === daemon;
  setInterval(() => {
    if (directChild ? process.ppid !== daemon : !isProcessRunning(daemon)) {
      console.error(`Handler "${type}": the Bester daemon (process ${daemon}) that started it is gone, so the handler exits.`);
      process.exit(0);
    }
  }, 1000).unref();
}
