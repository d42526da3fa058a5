// The built-in peer messages: jobOutputDelivery delivers a remote job's output to local users, and
// jobHandoff runs a remote user's job here. The sending server is always the authenticated link's
// peer. A message naming another origin is rejected unless a chain of grants, starting at that
// origin and ending at the peer, allows it.

import type { SchemaObject } from "ajv";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import type { PeerMessageContext } from "../../core/hooks.js";
import { formatAddress, parseOutputId, USERNAME_PATTERN } from "../../core/jobs/job.js";
import { compileSchema, describeSchemaError } from "../../core/protocol/schemas.js";
import { CHAIN_SCHEMA, GRANT_SCHEMA, verifyChain, type Grant, type GrantBook } from "./grants.js";
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
    via: CHAIN_SCHEMA,
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
        via: CHAIN_SCHEMA,
      },
    },
  },
};

interface OutputDelivery {
  id: string;
  job: { jobID: string; payload: { type: string; data: unknown } };
  users: string[];
  grant?: Grant;
  /** Earlier grants of the chain, oldest first, when the job was handed off more than once. */
  via?: Grant[];
}

interface Handoff {
  id: string;
  handoff: { type: string; payload: unknown; from: string; grant?: Grant; via?: Grant[] };
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
      checkChain(message.grant, message.via, formatAddress(parsed.user, parsed.server), peer, peer, `output ${message.job.jobID}`);
    }

    const unknownUsers: string[] = [];
    const output = { reply: "jobOutput", job: { jobID: message.job.jobID, payload: message.job.payload } };
    for (const user of new Set(message.users)) {
      const exists = bester.hooks.onUserLookup.isUsed() ? await bester.hooks.onUserLookup.promise(user) : true;
      if (exists === false) {
        unknownUsers.push(user);
        continue;
      }
      await bester.engine.deliverToKnownUser(user, output);
    }
    if (unknownUsers.length > 0) {
      log.warn({ peer, id: message.id, jobID: message.job.jobID, unknownUsers }, "peer delivered output to users that do not exist here");
    }
    return { delivered: message.users.length - unknownUsers.length, unknownUsers };
  });

  bester.hooks.onPeerMessage.for("jobHandoff").tapPromise(pluginName, async ({ message, peer }: PeerMessageContext) => {
    if (!validateHandoff(message)) {
      throw new BesterError("invalidRequest", `Invalid jobHandoff from ${peer}: ${describeSchemaError(validateHandoff.errors)}.`);
    }
    const { type, payload, from, grant, via } = message.handoff;
    const at = from.indexOf("@");
    const user = from.slice(0, at);
    const origin = from.slice(at + 1);
    if (at <= 0 || !new RegExp(USERNAME_PATTERN).test(user)) {
      throw new BesterError("invalidRequest", `Invalid jobHandoff from ${peer}: from "${from}" is not <user>@<server> with a valid user name.`);
    }
    // A job handed on by a server that is not its origin needs the chain from the origin to the peer.
    let chain: Grant[] | undefined;
    if (origin !== peer) {
      chain = checkChain(grant, via, from, peer, bester.serverName, `jobHandoff naming "${from}"`);
    } else if (grant && !via && verifyChain([grant], from, keyOf) === peer && grant.to === bester.serverName) {
      chain = [grant];
    }

    const job = await bester.engine.submit({ user, origin, type, data: payload, notify: false });
    // Logged before the grant is stored, because the job already runs and may end during that write.
    log.info({ peer, id: message.id, jobId: job.id, type, from }, "accepted a handoff from a peer");
    // The chain lets this server prove to third servers that it acts for `from`.
    if (chain) {
      await grants.remember(job.id, chain);
    }
    return { jobID: job.id };
  });

  function keyOf(server: string) {
    return directory.publicKeyOf(server, bester.serverName);
  }

  /**
   * Accepts a message about `subject` from `peer` only with a valid chain of grants from the
   * subject's server whose last grant names `to`. For a handoff the peer must have signed that last
   * grant itself; for an output the peer is the server the last grant names. Returns the chain.
   */
  function checkChain(grant: Grant | undefined, via: Grant[] | undefined, subject: string, peer: string, to: string, label: string): Grant[] {
    const origin = subject.slice(subject.indexOf("@") + 1);
    const chain = grant ? [...(via ?? []), grant] : [];
    const signer = grant && grant.to === to ? verifyChain(chain, subject, keyOf) : undefined;
    const signedBy = to === peer ? signer !== undefined : signer === peer;
    if (!signedBy) {
      throw new BesterError("invalidOrigin", `The ${label} from ${peer} names origin ${origin}, not ${peer}, and carries no valid chain of handoff grants from ${origin}. A peer sends only outputs of its own jobs or of jobs handed off to it, and hands on only jobs handed off to it.`);
    }
    return chain;
  }
}
