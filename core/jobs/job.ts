// The job model: what the daemon keeps for each accepted job while it moves through handlers.

import { randomBytes } from "node:crypto";
import type { WireError } from "../errors.js";

/** A director as a handler names it: `type` picks the director, the other keys are its options. */
export interface Director {
  type: string;
  [option: string]: unknown;
}

// The built-in directors' shapes, for handler authors. Type aliases rather than interfaces, so each
// is assignable to Director, whose index signature an interface would not satisfy.

/** The director that sends the output to each user: `name` for a local user, `name@host:port` for one on a peer. */
export type UserDeliveryDirector = { type: "userDelivery"; users: string[] };

/** The director that feeds the output into the local handler of type `handler`, as the job's next step. */
export type HandlerDirector = { type: "handler"; handler: string };

/** The director that sends the output one way to a peer server's handler, named `type@host:port`. */
export type HandoffDirector = { type: "handoff"; handler: string };

export type BuiltinDirector = UserDeliveryDirector | HandlerDirector | HandoffDirector;

/**
 * A director that a plugin handles, with options the core does not check. As a handler reply's
 * director type argument it accepts any `{ type, ... }`, misspelt built-ins included, so a
 * handler should name its plugin directors' shapes instead where it can.
 */
export type PluginDirector = Director;

/** A handler's successful reply after validation. */
export interface HandlerOutput {
  payload: unknown;
  director: Director;
}

export interface Job {
  /** Unique on this server, sortable by creation time; never contains `:` or `@`. */
  id: string;
  /** Handler type the job runs on next; a `handler` director changes it along a chain. */
  type: string;
  /** Payload for the next handler. */
  data: unknown;
  /** Higher runs sooner; equal priorities run in submission order. */
  priority: number;
  /** Submitting user's name on the origin server. */
  user: string;
  /** Server the submitter belongs to: this server, or the peer that handed the job off. */
  origin: string;
  /** False for handoffs from peers, which send no notification. */
  notify: boolean;
  /** Handlers the job has already passed through, for the chain limit. */
  chainLength: number;
  /** Handler attempts of the current step, for the retry limit. */
  attempts: number;
  /** Milliseconds since the epoch. */
  acceptedAt: number;
}

/** The final status of a job, with the error for a failed one. */
export type JobOutcome =
  | { status: "completed" }
  | { status: "failed"; error: WireError };

let lastMillis = 0;
let counter = 0;
const processTag = randomBytes(3).toString("hex");

/**
 * Creates a job id: base-36 milliseconds, a per-millisecond counter and a per-process tag.
 * Ids sort by creation time, so a store scan replays jobs in arrival order. The 3-byte random
 * tag makes a collision between two daemon processes on one store unlikely, not impossible.
 */
export function createJobId(clock: number = Date.now()): string {
  // A clock that steps back (an NTP correction) would restart the counter in a millisecond that
  // already issued ids, so the time never goes below the last one used.
  const now = Math.max(clock, lastMillis);
  if (now === lastMillis) {
    counter += 1;
  } else {
    lastMillis = now;
    counter = 0;
  }
  const time = now.toString(36).padStart(9, "0");
  const sequence = counter.toString(36).padStart(4, "0");
  return `${time}-${sequence}-${processTag}`;
}

/** Returns the milliseconds since the epoch at which createJobId made `id`, or undefined for another format. */
export function jobIdTime(id: string): number | undefined {
  const match = /^([0-9a-z]{9})-/.exec(id);
  return match ? parseInt(match[1]!, 36) : undefined;
}

/** `user@server`, the address form used in `from` and recipients. */
export function formatAddress(user: string, server: string): string {
  return `${user}@${server}`;
}

/** Formats the id that output recipients receive: `<jobID>:<submittingUser>@<originServer>`. */
export function formatOutputId(job: Pick<Job, "id" | "user" | "origin">): string {
  return `${job.id}:${job.user}@${job.origin}`;
}

/** Splits an output id at its first `:` and the address at its first `@`. */
export function parseOutputId(outputId: string): { jobId: string; user: string; server: string } | undefined {
  const colon = outputId.indexOf(":");
  if (colon <= 0) {
    return undefined;
  }
  const address = outputId.slice(colon + 1);
  const at = address.indexOf("@");
  if (at <= 0 || at === address.length - 1) {
    return undefined;
  }
  return { jobId: outputId.slice(0, colon), user: address.slice(0, at), server: address.slice(at + 1) };
}

/** Usernames are 1-64 characters of [A-Za-z0-9._-]. */
export const USERNAME_PATTERN = "^[A-Za-z0-9._-]{1,64}$";
const usernameRegExp = new RegExp(USERNAME_PATTERN);

export function isValidUsername(name: string): boolean {
  return usernameRegExp.test(name);
}

/**
 * Splits a recipient into user and server. A bare name, or a name at `localServer`, is local.
 * Returns undefined when the name part is not a valid username or the server part is empty.
 */
export function parseRecipient(recipient: string, localServer: string): { user: string; server: string; local: boolean } | undefined {
  const at = recipient.indexOf("@");
  const user = at === -1 ? recipient : recipient.slice(0, at);
  const server = at === -1 ? localServer : recipient.slice(at + 1);
  if (!isValidUsername(user) || server.length === 0) {
    return undefined;
  }
  return { user, server, local: server === localServer };
}
