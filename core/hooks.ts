// The whole extension surface of Bester NG: one frozen object of tapable hooks. Built-in and
// third-party plugins tap these; a plugin that needs more offers hooks of its own instead of
// growing this object.

import { AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook, HookMap } from "tapable";
import type { Hook } from "tapable";
import { isWireCode, wrapTapError, type WireError } from "./errors.js";
import type { ClientSession } from "./client-session.js";
import type { Director, HandlerOutput, Job, JobOutcome } from "./jobs/job.js";
import type { Connection } from "./sessions.js";
import type { ServerStatus } from "./status.js";

export interface AuthRequest {
  username: string;
  password: string;
  connection: Connection;
}

export type AuthDecision = { ok: true; user: string } | { ok: false; error: WireError };

export interface ClientRequestContext {
  /** The validated request object. */
  request: Record<string, unknown>;
  connection: Connection;
  /** The authenticated user, or undefined before auth. */
  user: string | undefined;
  /** The connection's session, so a plugin can take over its later frames (a peer handshake does). */
  session: ClientSession;
}

export interface DirectorContext {
  job: Job;
  output: HandlerOutput;
  director: Director;
}

/** `done`: the job's last director ran. `continued`: the job went on to another handler. */
export type DirectorOutcome = "done" | "continued";

export interface PeerEnvelope {
  /** The peer's server name, `host:port`. */
  peer: string;
  /** A peer request such as `jobOutputDelivery` or `jobHandoff`. */
  message: Record<string, unknown>;
  /** The job whose director produced the message. */
  job: Job;
}

export interface PeerMessageContext {
  message: Record<string, unknown>;
  /** Server name of the authenticated peer that sent the message, never taken from its body. */
  peer: string;
  connection: Connection;
}

/** A check that an authenticated user has a permission, such as `admin` for the `status` request. */
export interface AuthorizeRequest {
  user: string;
  permission: string;
}

export interface ProgressReport {
  job: Job;
  progress: unknown;
}

/** Creates the hook object for one Bester instance. */
export function createHooks() {
  const hooks = {
    // Lifecycle, in the order start() runs them; stop() runs `stop` then `close`.
    /** Store plugins open the store; account and key plugins load what they need from it. */
    initialize: new AsyncSeriesHook<[]>(),
    /** Handler bridges connect or spawn handlers; federation opens peer links. */
    start: new AsyncSeriesHook<[]>(),
    /** Transports open listeners and add their addresses to the array. */
    listen: new AsyncSeriesHook<[string[]]>(["addresses"]),
    /** Runs once the server accepts work, with every listening address. */
    ready: new AsyncSeriesHook<[string[]]>(["addresses"]),
    /** Transports stop accepting, handler bridges finish in-flight calls and stop processes. */
    stop: new AsyncSeriesHook<[]>(),
    /** Store plugins flush and close. Runs after every `stop` tap. */
    close: new AsyncSeriesHook<[]>(),

    /** Decides a login. The first tap that returns a decision wins; no decision means failed. */
    onAuth: new AsyncSeriesBailHook<[AuthRequest], AuthDecision | undefined>(["request"]),
    /** Runs after a connection authenticated and received its auth reply; offline stores deliver here. */
    onSessionStart: new AsyncSeriesHook<[string, Connection]>(["user", "connection"]),
    /**
     * Client requests keyed by request name (`register`, a transport's own requests). The first
     * tap that returns a reply object wins; a name with no tap gets `unknownRequest`.
     */
    onClientRequest: new HookMap(
      () => new AsyncSeriesBailHook<[ClientRequestContext], Record<string, unknown> | undefined>(["context"]),
    ),
    /** Sees each new job before it is queued; returns the job, possibly changed, or throws a BesterError to reject it. */
    onJobSubmit: new AsyncSeriesWaterfallHook<[Job]>(["job"]),
    /**
     * Runs once a job passed onJobSubmit and the queue limit, and before the submitter receives
     * `accepted`. Durable stores persist the job here. The job is queued and may run meanwhile,
     * but its progress, outputs and notification wait for every tap. A tap that throws rejects
     * the submission, and the job's result is discarded.
     */
    onJobAccepted: new AsyncSeriesHook<[Job]>(["job"]),
    /** Runs when a `handler` director moves a job to its next step (new type and data); durable stores rewrite the job here. Does not delay the step. */
    onJobUpdated: new AsyncSeriesHook<[Job]>(["job"]),
    /** Forwards a handler's `progress` frame; the default tap sends `jobProgress` to the submitter. */
    onJobProgress: new AsyncSeriesHook<[ProgressReport]>(["report"]),
    /** Sees each validated handler reply; returns the output, possibly changed, before its director runs. */
    onHandlerOutput: new AsyncSeriesWaterfallHook<[HandlerOutput, Job]>(["output", "job"]),
    /** Directors keyed by director type. The first tap that returns an outcome carries it out; none means `unknownDirector`. */
    onDirector: new HookMap(() => new AsyncSeriesBailHook<[DirectorContext], DirectorOutcome | undefined>(["context"])),
    /** Sends a message to a peer server. Returns true once the message is accepted for delivery; no tap means `unknownPeer`. */
    onPeerSend: new AsyncSeriesBailHook<[PeerEnvelope], true | undefined>(["envelope"]),
    /** Requests from authenticated peers, keyed by request name. The first tap returning a reply wins. */
    onPeerMessage: new HookMap(
      () => new AsyncSeriesBailHook<[PeerMessageContext], Record<string, unknown> | undefined>(["context"]),
    ),
    /** A message for a user with no live connection. Returns true once stored for later delivery. */
    onUndelivered: new AsyncSeriesBailHook<[string, Record<string, unknown>], true | undefined>(["user", "message"]),
    /** Decides whether a user has a permission. The first tap that returns a boolean decides; no decision means not permitted. */
    onAuthorize: new AsyncSeriesBailHook<[AuthorizeRequest], boolean | undefined>(["request"]),
    /** Builds the admin status report; each tap returns it with its own entries added under `sections`. */
    onStatus: new AsyncSeriesWaterfallHook<[ServerStatus]>(["status"]),
    /** Whether a local user exists, for recipient checks. The accounts plugin taps it; no tap means every name is accepted. */
    onUserLookup: new AsyncSeriesBailHook<[string], boolean | undefined>(["user"]),
    /**
     * Runs once per job when it completes or fails, before the submitter's notification is sent.
     * Durable stores record the job's end here, so a restart does not run it again.
     */
    onJobEnd: new AsyncSeriesHook<[Job, JobOutcome]>(["job", "outcome"]),
    /** Runs once per job when it completes or fails, after the submitter's notification is sent. */
    onJobDone: new AsyncSeriesHook<[Job, JobOutcome]>(["job", "outcome"]),
  };

  for (const [name, hook] of Object.entries(hooks)) {
    const checkResult = RESULT_CHECKS[name];
    if (hook instanceof HookMap) {
      (hook as unknown as HookMap<Hook<any, any>>).intercept({
        factory: (key, created) => {
          guardTaps(created, `${name}.for("${String(key)}")`, checkResult);
          return created;
        },
      });
    } else {
      guardTaps(hook, name, checkResult);
    }
  }
  return Object.freeze(hooks);
}

export type BesterHooks = ReturnType<typeof createHooks>;

/** Returns what a tap of the hook should have returned, or undefined when `value` is allowed. */
type ResultCheck = (value: unknown) => string | undefined;

/**
 * Return value checks for the hooks where a wrong value would fail far from the plugin. Without
 * them, a director outcome such as `true` leaves the job unfinished with no log line, and a
 * malformed auth decision, job or output breaks the core with a TypeError that names no plugin.
 * `undefined` always passes, because a bail hook then calls the next tap and a waterfall hook keeps
 * the previous value.
 */
const RESULT_CHECKS: Partial<Record<string, ResultCheck>> = {
  onDirector: (value) => (value === undefined || value === "done" || value === "continued" ? undefined : `"done", "continued" or undefined`),
  onAuth: (value) =>
    value === undefined || isAuthDecision(value)
      ? undefined
      : "{ ok: true, user } with a non-empty user name, { ok: false, error: { code, message } } with a protocol error code such as invalidCredentials or notPermitted, or undefined",
  onJobSubmit: (value) => (value === undefined || hasStringKeys(value, ["id", "type"]) ? undefined : "the job it received, possibly changed"),
  onHandlerOutput: (value) =>
    value === undefined || (isObject(value) && hasStringKeys(value.director, ["type"])) ? undefined : "the output it received ({ payload, director }), possibly changed",
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function hasStringKeys(value: unknown, keys: string[]): boolean {
  return isObject(value) && keys.every((key) => typeof value[key] === "string");
}

function isAuthDecision(value: unknown): boolean {
  if (!isObject(value)) {
    return false;
  }
  if (value.ok === true) {
    return typeof value.user === "string" && value.user !== "";
  }
  // Clients act on the protocol's fixed list of codes, so a code of the plugin's own would reach them unexplained.
  return value.ok === false && hasStringKeys(value.error, ["code", "message"]) && isWireCode((value.error as { code: string }).code);
}

/** Describes a returned value for an error message, cut short so a large object cannot flood the log. */
function describeReturned(value: unknown): string {
  if (typeof value === "function") {
    return "a function";
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 120 ? `${text.slice(0, 120)}...` : text;
}

/**
 * Wraps every tap so an error it throws names the plugin (the tap name) and the hook, and so does a
 * return value that `checkResult` rejects. Only promise and sync taps exist in Bester NG, and a
 * callback tap is rejected at registration.
 */
function guardTaps(hook: Hook<any, any>, hookName: string, checkResult?: ResultCheck): void {
  // tapable 2 counts interceptors as use, and every hook gets the one below, so isUsed() was always
  // true and every `if (hook.isUsed())` guard ran the hook. Only taps count here.
  hook.isUsed = () => hook.taps.length > 0;
  hook.intercept({
    register: (tap) => {
      const original = tap.fn as (...args: any[]) => any;
      if (tap.type === "async") {
        throw new Error(`Plugin "${tap.name}" used tapAsync on ${hookName}; use tap or tapPromise instead.`);
      }
      const checked = (value: unknown): unknown => {
        const expected = checkResult?.(value);
        if (expected !== undefined) {
          throw new TypeError(`The tap returned ${describeReturned(value)}, but a tap of this hook returns ${expected}.`);
        }
        return value;
      };
      if (tap.type === "promise") {
        tap.fn = async (...args: any[]) => {
          try {
            return checked(await original(...args));
          } catch (error) {
            throw wrapTapError(error, tap.name, hookName);
          }
        };
      } else {
        tap.fn = (...args: any[]) => {
          try {
            return checked(original(...args));
          } catch (error) {
            throw wrapTapError(error, tap.name, hookName);
          }
        };
      }
      return tap;
    },
  });
}
