// Reads the payload shape the example text handlers accept: a string, or an object with `text` and
// an optional `deliverTo` list. Without `deliverTo` the output goes back to the submitter.

import type { HandlerJob } from "../../plugins/handler-bridge/serve-handler.js";

export function readTextPayload(payload: unknown, job: HandlerJob): { text: string; recipients: string[] } {
  if (typeof payload === "string") {
    return { text: payload, recipients: [job.from] };
  }
  if (payload && typeof payload === "object" && typeof (payload as { text?: unknown }).text === "string") {
    const { text, deliverTo } = payload as { text: string; deliverTo?: unknown };
    const recipients = Array.isArray(deliverTo) && deliverTo.every((user) => typeof user === "string") ? deliverTo : [job.from];
    return { text, recipients };
  }
  throw new Error('Expected the data to be a string, or an object with a "text" string and an optional "deliverTo" list of users');
}
