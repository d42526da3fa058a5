// The handler director: feeds a handler's output into another local handler, forming a chain.
// The job keeps its id, so the submitter gets one notification at the end of the chain.

import type { Bester } from "../../core/bester.js";
import type { BesterPlugin } from "../../core/plugin.js";

export const PLUGIN_NAME = "director-handler";

export function handlerDirector(): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      bester.hooks.onDirector.for("handler").tap(PLUGIN_NAME, ({ job, output, director }) => {
        bester.engine.continueWith(job, director.handler as string, output.payload);
        return "continued";
      });
    },
  };
}
