// Handoff grants: when server A hands a job of alice@A off to server B, A signs a grant saying "B
// may act for alice@A". B attaches it to the outputs of that job, because their ids name A
// (`<jobID>:alice@A`) although they arrive over B's link. A receiver accepts an output id naming
// another server than the link only with a valid grant from that server. When B hands the job on
// to C, B signs the next grant ("C may act for alice@A") and sends the whole chain, so every
// receiver can check each hop with the key of the server that signed it.

import type { KeyObject } from "node:crypto";
import type Keyv from "keyv";
import type { SchemaObject } from "ajv";
import { compileSchema } from "../../core/protocol/schemas.js";
import { signText, verifyText } from "./keys.js";

const GRANT_LABEL = "bester-ng handoff grant v1";

/** The keyv namespace mapping a handed-off job's id to its grant. */
export const GRANTS_NAMESPACE = "federation-grants";

/** Grants are kept this long, longer than any job should run. */
const GRANT_TTL_MS = 7 * 24 * 60 * 60 * 1000;

export interface Grant {
  /** The submitter, `user@originServer`; the origin server signed the grant. */
  from: string;
  /** The server allowed to act for `from`. */
  to: string;
  /** The handler type the job was handed off to. */
  type: string;
  /** The id of the jobHandoff message that carried the grant. */
  id: string;
  /** Ed25519 signature of the origin server, base64. */
  signature: string;
}

export const GRANT_SCHEMA: SchemaObject = {
  type: "object",
  required: ["from", "to", "type", "id", "signature"],
  additionalProperties: false,
  properties: {
    from: { type: "string", maxLength: 600 },
    to: { type: "string", maxLength: 600 },
    type: { type: "string", maxLength: 128 },
    id: { type: "string", maxLength: 128 },
    signature: { type: "string", maxLength: 200 },
  },
};

const validateGrant = compileSchema<Grant>(GRANT_SCHEMA);

function grantText(grant: Omit<Grant, "signature">): string {
  return [GRANT_LABEL, `from: ${grant.from}`, `to: ${grant.to}`, `type: ${grant.type}`, `id: ${grant.id}`].join("\n");
}

/** Maximum number of grants in a chain, so a handoff cannot circle between servers forever. */
export const MAX_CHAIN_HOPS = 8;

export const CHAIN_SCHEMA: SchemaObject = { type: "array", minItems: 1, maxItems: MAX_CHAIN_HOPS - 1, items: GRANT_SCHEMA };

export function issueGrant(privateKey: KeyObject, grant: Omit<Grant, "signature">): Grant {
  return { ...grant, signature: signText(privateKey, grantText(grant)) };
}

/** Checks that `grant` is well formed and signed by `publicKey`. */
export function verifyGrant(publicKey: KeyObject, grant: unknown): grant is Grant {
  if (!validateGrant(grant)) {
    return false;
  }
  return verifyText(publicKey, grantText(grant), grant.signature);
}

/**
 * Checks a chain of grants for `subject` (`user@origin`), oldest hop first. The origin signed the
 * first grant, and the server each grant names in `to` signed the next one. `keyOf` gives the
 * public key of a server, or undefined for a server this one does not know. Returns the server
 * that signed the last grant, or undefined when any hop fails.
 */
export function verifyChain(chain: readonly Grant[], subject: string, keyOf: (server: string) => KeyObject | undefined): string | undefined {
  if (chain.length === 0 || chain.length > MAX_CHAIN_HOPS) {
    return undefined;
  }
  let signer = subject.slice(subject.indexOf("@") + 1);
  for (const [index, grant] of chain.entries()) {
    const key = keyOf(signer);
    if (!key || grant.from !== subject || !verifyGrant(key, grant)) {
      return undefined;
    }
    if (index < chain.length - 1) {
      signer = grant.to;
    }
  }
  return signer;
}

/** Grants of the handed-off jobs this server runs, kept in the store so resumed jobs still have theirs. */
export class GrantBook {
  private readonly cache = new Map<string, Grant[]>();

  constructor(private readonly store: () => Keyv<unknown>) {}

  /** Keeps the chain of grants, oldest hop first, that lets this server act for job `jobId`'s user. */
  async remember(jobId: string, chain: Grant[]): Promise<void> {
    this.cache.set(jobId, chain);
    await this.store().set(jobId, chain, GRANT_TTL_MS);
  }

  async lookup(jobId: string): Promise<Grant[] | undefined> {
    const cached = this.cache.get(jobId);
    if (cached) {
      return cached;
    }
    return (await this.store().get(jobId)) as Grant[] | undefined;
  }

  async forget(jobId: string): Promise<void> {
    if (this.cache.delete(jobId)) {
      await this.store().delete(jobId);
    }
  }
}
