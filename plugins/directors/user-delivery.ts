// The userDelivery director: sends a handler's output to each named user. Local users get
// `jobOutput` on every live connection; remote users (`name@host:port`) go to their server through
// onPeerSend, grouped so each server receives one message per output.

import type { Bester } from "../../core/bester.js";
import { BesterError, endSentence } from "../../core/errors.js";
import { formatOutputId, parseRecipient, type Job } from "../../core/jobs/job.js";
import type { BesterPlugin } from "../../core/plugin.js";

export const PLUGIN_NAME = "director-user-delivery";

export function userDeliveryDirector(): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      bester.hooks.onDirector.for("userDelivery").tapPromise(PLUGIN_NAME, async ({ job, output, director }) => {
        const users = director.users as string[];
        const local: string[] = [];
        // Created on the first remote recipient, because most outputs go to local users only.
        let remote: Map<string, string[]> | undefined;

        for (const recipient of users) {
          const parsed = parseRecipient(recipient, bester.serverName);
          if (!parsed) {
            throw new BesterError("unknownUser", `Recipient "${recipient}" is not a valid address. Use "name" for a local user or "name@host:port" for a user on a peer server.`);
          }
          if (parsed.local) {
            local.push(parsed.user);
          } else {
            remote ??= new Map();
            remote.set(parsed.server, [...(remote.get(parsed.server) ?? []), parsed.user]);
          }
        }

        for (const user of local) {
          // A user with a live session logged in, so it exists: skips a store read per job (a SQL query on sqlite).
          if (bester.sessions.isOnline(user)) {
            continue;
          }
          // The submitter's account existed at submission, so its own output skips the store read,
          // which the next job's messages could overtake on their way to the offline backlog.
          if (user === job.user && job.origin === bester.serverName) {
            continue;
          }
          const exists = bester.hooks.onUserLookup.isUsed() ? await bester.hooks.onUserLookup.promise(user) : true;
          if (exists === false) {
            throw new BesterError("unknownUser", `Recipient "${user}" is not a user of ${bester.serverName}. Register the user, or fix the recipients of the handler's userDelivery director, which may come from the job's data.`);
          }
        }

        const message = bester.engine.outputMessage(job, output);
        // One recipient, the usual case, needs no Set to drop repeated names.
        for (const user of local.length === 1 ? local : new Set(local)) {
          await bester.engine.deliverToKnownUser(user, message);
        }

        if (remote) {
          await sendToPeers(bester, job, output.payload, remote, local);
        }
        return "done";
      });
    },
  };
}

/**
 * Sends the output to each remote server's users, one message per server. An unknown server fails
 * the job with unknownPeer, and the message names who got the output already, because the local
 * users and the servers before it did.
 */
async function sendToPeers(bester: Bester, job: Job, payload: unknown, remote: Map<string, string[]>, local: string[]): Promise<void> {
  const delivered = [...new Set(local)];
  for (const [server, names] of remote) {
    const users = [...new Set(names)];
    const envelope = {
      peer: server,
      job,
      message: { request: "jobOutputDelivery", job: { jobID: formatOutputId(job), payload: { type: job.type, data: payload } }, users },
    };
    const already = () => (delivered.length > 0 ? ` The output was already delivered, or queued for a peer server, to ${delivered.join(", ")}.` : "");
    let sent: unknown;
    try {
      sent = bester.hooks.onPeerSend.isUsed() ? await bester.hooks.onPeerSend.promise(envelope) : undefined;
    } catch (error) {
      // The federation plugin rejects an unknown server itself, with its own code and advice.
      // A storeUnavailable error's text is for a request to retry, and this job already ran.
      if (error instanceof BesterError && delivered.length > 0 && error.code === "storeUnavailable") {
        throw new BesterError("directorFailed", `Delivering the output failed because the server's store was unreachable.${already()}`, { cause: error });
      }
      if (error instanceof BesterError && delivered.length > 0) {
        throw new BesterError(error.code, `${endSentence(error.message)}${already()}`, { cause: error });
      }
      throw error;
    }
    if (!sent) {
      throw new BesterError("unknownPeer", `Server "${server}" (recipients ${names.join(", ")}) is not a configured peer. Add it under federation.peers or fix the recipient.${already()}`);
    }
    delivered.push(...users.map((user) => `${user}@${server}`));
  }
}
