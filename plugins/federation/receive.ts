// The built-in peer messages: jobOutputDelivery delivers a remote job's output to local users, and
// jobHandoff runs a remote user's job here. The sending server is always the authenticated link's
// peer; a message naming another origin is rejected unless a grant from that origin allows it.

import type { SchemaObject } from "ajv";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import type { PeerMessageContext } from "../../core/hooks.js";
import { formatAddress, parseOutputId, USERNAME_PATTERN } from "../../core/jobs/job.js";
import { compileSchema, describeSchemaError } from "../../core/protocol/schemas.js";
import { GRANT_SCHEMA, verifyGrant, type Grant, type GrantBook } from "./grants.js";
import type { PeerDirectory } from "./peers.js";

const MESSAGE_ID = { type: "string", minLength: 1, maxLength: 128 };

const OUTPUT_DELIVERY_SCHEMA: SchemaObject = {
  type: "object",
  required: ["request", "id", "job", "users"],
  additionalProperties: false,
  properties: {
    request: { const: "jobOutputDelivery" },
    id: MESSAGE_ID,
    job: {
      type: "object",
      required: ["jobID", "payload"],
      additionalProperties: false,
      properties: {
        jobID: { type: "string", minLength: 3, maxLength: 1024 },
        payload: {
          type: "object",
          required: ["type", "data"],
          additionalProperties: false,
          properties: { type: { type: "string", minLength: 1, maxLength: 128 }, data: {} },
        },
      },
    },
    users: { type: "array", minItems: 1, maxItems: 10000, items: { type: "string", pattern: USERNAME_PATTERN } },
    grant: GRANT_SCHEMA,
  },
};

const HANDOFF_SCHEMA: SchemaObject = {
  type: "object",
  required: ["request", "id", "handoff"],
  additionalProperties: false,
  properties: {
    request: { const: "jobHandoff" },
    id: MESSAGE_ID,
    handoff: {
      type: "object",
      required: ["type", "payload", "from"],
      additionalProperties: false,
      properties: {
        type: { type: "string", minLength: 1, maxLength: 128, pattern: "^[^@:]+$" },
        payload: {},
        from: { type: "string", minLength: 3, maxLength: 600 },
        grant: GRANT_SCHEMA,
      },
    },
  },
};

interface OutputDelivery {
  id: string;
  job: { jobID: string; payload: { type: string; data: unknown } };
  users: string[];
  grant?: Grant;
}

interface Handoff {
  id: string;
  handoff: { type: string; payload: unknown; from: string; grant?: Grant };
}

const validateOutputDelivery = compileSchema<OutputDelivery>(OUTPUT_DELIVERY_SCHEMA);
const validateHandoff = compileSchema<Handoff>(HANDOFF_SCHEMA);

/** Taps onPeerMessage for the two built-in peer requests. */
export function tapBuiltinMessages(bester: Bester, pluginName: string, directory: PeerDirectory, grants: GrantBook): void {
  const log = bester.logFor(pluginName);

  bester.hooks.onPeerMessage.for("jobOutputDelivery").tapPromise(pluginName, async ({ message, peer }: PeerMessageContext) => {
    if (!validateOutputDelivery(message)) {
      throw new BesterError("invalidRequest", `Invalid jobOutputDelivery from ${peer}: ${describeSchemaError(validateOutputDelivery.errors)}.`);
    }
    const parsed = parseOutputId(message.job.jobID);
    if (!parsed) {
      throw new BesterError("invalidRequest", `Invalid jobOutputDelivery from ${peer}: job id "${message.job.jobID}" is not <jobID>:<user>@<server>.`);
    }
    if (parsed.server !== peer) {
      checkGrant(message.grant, formatAddress(parsed.user, parsed.server), peer, `output ${message.job.jobID}`);
    }

    const unknownUsers: string[] = [];
    const output = { reply: "jobOutput", job: { jobID: message.job.jobID, payload: message.job.payload } };
    for (const user of new Set(message.users)) {
      const exists = bester.hooks.onUserLookup.isUsed() ? await bester.hooks.onUserLookup.promise(user) : true;
      if (exists === false) {
        unknownUsers.push(user);
        continue;
      }
      await bester.engine.deliverToUser(user, output);
    }
    if (unknownUsers.length > 0) {
      log.warn({ peer, jobID: message.job.jobID, unknownUsers }, "peer delivered output to users that do not exist here");
    }
    return { delivered: message.users.length - unknownUsers.length, unknownUsers };
  });

  bester.hooks.onPeerMessage.for("jobHandoff").tapPromise(pluginName, async ({ message, peer }: PeerMessageContext) => {
    if (!validateHandoff(message)) {
      throw new BesterError("invalidRequest", `Invalid jobHandoff from ${peer}: ${describeSchemaError(validateHandoff.errors)}.`);
    }
    const { type, payload, from, grant } = message.handoff;
    const at = from.indexOf("@");
    const user = from.slice(0, at);
    const origin = from.slice(at + 1);
    if (at <= 0 || !new RegExp(USERNAME_PATTERN).test(user)) {
      throw new BesterError("invalidRequest", `Invalid jobHandoff from ${peer}: from "${from}" is not <user>@<server> with a valid user name.`);
    }
    if (origin !== peer) {
      throw new BesterError("invalidOrigin", `The jobHandoff from ${peer} names "${from}", a user of another server. A server hands off only its own users' jobs.`);
    }

    const job = await bester.engine.submit({ user, origin, type, data: payload, notify: false });
    // The peer's grant lets this server prove to third servers that it acts for `from`.
    if (grant && grant.to === bester.serverName && grant.from === from && verifyGrant(directory.publicKeyOf(origin, bester.serverName)!, grant)) {
      await grants.remember(job.id, grant);
    }
    log.info({ peer, jobId: job.id, type, from }, "accepted a handoff from a peer");
    return { jobID: job.id };
  });

  /** Accepts a message about `subject` from `peer` only with a valid grant from the subject's server to `peer`. */
  function checkGrant(grant: Grant | undefined, subject: string, peer: string, what: string): void {
    const origin = subject.slice(subject.indexOf("@") + 1);
    const originKey = directory.publicKeyOf(origin, bester.serverName);
    const valid = grant !== undefined && originKey !== undefined && grant.from === subject && grant.to === peer && verifyGrant(originKey, grant);
    if (!valid) {
      throw new BesterError("invalidOrigin", `The ${what} from ${peer} names origin ${origin}, not ${peer}, and carries no valid handoff grant from ${origin}. A peer sends only outputs of its own jobs or of jobs handed off to it.`);
    }
  }
}
