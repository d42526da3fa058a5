// Reads the payload shape the example text handlers accept: a string, or an object with `text` and
// an optional `deliverTo` list. Without `deliverTo` the output goes back to the submitter.

import type { HandlerJob } from "../../plugins/handler-bridge/serve-handler.js";

export function readTextPayload(payload: unknown, job: HandlerJob): { text: string; recipients: string[] } {
  if (typeof payload === "string") {
    return { text: payload, recipients: [job.from] };
  }
  if (payload && typeof payload === "object" && typeof (payload as { text?: unknown }).text === "string") {
    const { text, deliverTo } = payload as { text: string; deliverTo?: unknown };
    return { text, recipients: readRecipients(deliverTo, job) };
  }
  throw new Error('Expected the data to be a string, or an object with a "text" string and an optional "deliverTo" list of users');
}

/** Reads `deliverTo`: absent means the submitter, a string is one user, and anything else must be a list of users. */
function readRecipients(deliverTo: unknown, job: HandlerJob): string[] {
  if (deliverTo === undefined) {
    return [job.from];
  }
  if (typeof deliverTo === "string") {
    return [deliverTo];
  }
  if (Array.isArray(deliverTo) && deliverTo.length > 0 && deliverTo.every((user) => typeof user === "string")) {
    return deliverTo;
  }
  // A silent fallback to the submitter would hide the mistake: the output would never reach the users meant.
  throw new Error(`Expected "deliverTo" to be a user name or a non-empty list of user names, such as ["bob"] or ["bob@host:port"]. Got ${JSON.stringify(deliverTo)}.`);
}
