// The handoff director: sends a handler's output one way to a handler on another server, named
// `type@host:port`. The job completes once the handoff is accepted for delivery; the receiving
// server runs it as a new job for the same user and notifies nobody.

import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import { formatAddress } from "../../core/jobs/job.js";
import type { BesterPlugin } from "../../core/plugin.js";

export const PLUGIN_NAME = "director-handoff";

export function handoffDirector(): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      bester.hooks.onDirector.for("handoff").tapPromise(PLUGIN_NAME, async ({ job, output, director }) => {
        const target = director.handler as string;
        const at = target.indexOf("@");
        const type = target.slice(0, at);
        const server = target.slice(at + 1);

        if (server === bester.serverName) {
          // A handoff to this server runs locally as a new job, as a peer's handoff would.
          await bester.engine.submit({ user: job.user, origin: job.origin, type, data: output.payload, priority: job.priority, notify: false });
          return "done";
        }

        const envelope = {
          peer: server,
          job,
          message: { request: "jobHandoff", handoff: { type, payload: output.payload, from: formatAddress(job.user, job.origin) } },
        };
        const sent = bester.hooks.onPeerSend.isUsed() ? await bester.hooks.onPeerSend.promise(envelope) : undefined;
        if (!sent) {
          throw new BesterError("unknownPeer", `Handoff target server "${server}" is not a configured peer. Add it under federation.peers or fix the handler's director.`);
        }
        return "done";
      });
    },
  };
}
