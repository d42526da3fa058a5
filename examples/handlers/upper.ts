// upper: returns the text in upper case to the submitter, or to the users in `deliverTo`.

import { deliverTo, serveHandler } from "../../plugins/handler-bridge/serve-handler.js";
import { readTextPayload } from "./text-payload.js";

await serveHandler({ type: "upper" }, (payload, job) => {
  const { text, recipients } = readTextPayload(payload, job);
  return { payload: text.toUpperCase(), director: deliverTo(recipients) };
});
