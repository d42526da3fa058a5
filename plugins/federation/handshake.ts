// The peer handshake: mutual challenge-response with Ed25519 signatures. Each side signs a
// transcript holding a domain-separation label, its role, both server names, both fresh nonces and
// (on TLS) a value exported from the TLS session. No key or shared secret crosses the wire, and a
// recorded signature is useless later because the other side's nonce is new on every link.
//
//   initiator → responder  {"request":"peerHello","peerHello":{"version":1,"from":A,"to":B,"nonce":Na}}
//   responder → initiator  {"reply":"peerHello","peerHello":{"from":B,"nonce":Nb,"signature":sig_B(responder)}}
//   initiator → responder  {"request":"peerAuth","peerAuth":{"signature":sig_A(initiator)}}
//   responder → initiator  {"reply":"peerAuth","peerAuth":{"status":"ok"}}
//
// Either side that rejects sends {"reply":"error","error":{code,message}} and closes the link.

import { randomBytes } from "node:crypto";
import type { TLSSocket } from "node:tls";
import type { SchemaObject } from "ajv";
import { compileSchema, describeSchemaError } from "../../core/protocol/schemas.js";

export const HANDSHAKE_VERSION = 1;
export const HELLO_REQUEST = "peerHello";
export const AUTH_REQUEST = "peerAuth";

const DOMAIN_LABEL = "bester-ng peer handshake v1";
const EXPORTER_LABEL = "EXPORTER-bester-ng-peer-link";
const NONCE_BYTES = 32;
const NONCE_PATTERN = "^[A-Za-z0-9+/]{43}=$";
const SIGNATURE_PATTERN = "^[A-Za-z0-9+/]{86}==$";
const SERVER_NAME_PATTERN = "^[^@:\\s]+:[0-9]{1,5}$|^\\[[0-9a-fA-F:.]+\\]:[0-9]{1,5}$";

export type HandshakeRole = "initiator" | "responder";

/** Everything both sides must agree on; each side signs it with its own role. */
export interface Transcript {
  initiator: string;
  responder: string;
  initiatorNonce: string;
  responderNonce: string;
  /** Keying material exported from the TLS session, hex; "none" on a plaintext link. */
  channel: string;
}

export const HELLO_SCHEMA: SchemaObject = {
  type: "object",
  required: ["request", "peerHello"],
  additionalProperties: false,
  properties: {
    request: { const: HELLO_REQUEST },
    peerHello: {
      type: "object",
      required: ["version", "from", "to", "nonce"],
      additionalProperties: false,
      properties: {
        version: { const: HANDSHAKE_VERSION },
        from: { type: "string", pattern: SERVER_NAME_PATTERN },
        to: { type: "string", pattern: SERVER_NAME_PATTERN },
        nonce: { type: "string", pattern: NONCE_PATTERN },
      },
    },
  },
};

export const AUTH_SCHEMA: SchemaObject = {
  type: "object",
  required: ["request", "peerAuth"],
  additionalProperties: false,
  properties: {
    request: { const: AUTH_REQUEST },
    peerAuth: {
      type: "object",
      required: ["signature"],
      additionalProperties: false,
      properties: { signature: { type: "string", pattern: SIGNATURE_PATTERN } },
    },
  },
};

const CHALLENGE_SCHEMA: SchemaObject = {
  type: "object",
  required: ["reply", "peerHello"],
  properties: {
    reply: { const: HELLO_REQUEST },
    peerHello: {
      type: "object",
      required: ["from", "nonce", "signature"],
      properties: {
        from: { type: "string" },
        nonce: { type: "string", pattern: NONCE_PATTERN },
        signature: { type: "string", pattern: SIGNATURE_PATTERN },
      },
    },
  },
};

const validateHello = compileSchema<HelloMessage>(HELLO_SCHEMA);
const validateAuth = compileSchema<AuthMessage>(AUTH_SCHEMA);
const validateChallenge = compileSchema<ChallengeMessage>(CHALLENGE_SCHEMA);

export interface HelloMessage {
  request: typeof HELLO_REQUEST;
  peerHello: { version: number; from: string; to: string; nonce: string };
}

export interface AuthMessage {
  request: typeof AUTH_REQUEST;
  peerAuth: { signature: string };
}

export interface ChallengeMessage {
  reply: typeof HELLO_REQUEST;
  peerHello: { from: string; nonce: string; signature: string };
}

/** Creates a fresh 32-byte random nonce in base64. */
export function createNonce(): string {
  return randomBytes(NONCE_BYTES).toString("base64");
}

/** Builds the exact text a side signs: label, role, names, nonces and channel, one per line. */
export function transcriptText(transcript: Transcript, role: HandshakeRole): string {
  return [
    DOMAIN_LABEL,
    `role: ${role}`,
    `initiator: ${transcript.initiator}`,
    `responder: ${transcript.responder}`,
    `initiator-nonce: ${transcript.initiatorNonce}`,
    `responder-nonce: ${transcript.responderNonce}`,
    `channel: ${transcript.channel}`,
  ].join("\n");
}

/**
 * Binds the handshake to the TLS session, so a man in the middle that terminates TLS on both sides
 * cannot relay the signatures. Both ends of one TLS session export the same value.
 */
export function channelBinding(socket: TLSSocket | undefined): string {
  if (!socket) {
    return "none";
  }
  return socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0)).toString("hex");
}

/** Returns the parsed hello, or a problem naming the field. */
export function parseHello(message: unknown): { hello: HelloMessage } | { problem: string } {
  return validateHello(message) ? { hello: message } : { problem: describeSchemaError(validateHello.errors) };
}

export function parseAuth(message: unknown): { auth: AuthMessage } | { problem: string } {
  return validateAuth(message) ? { auth: message } : { problem: describeSchemaError(validateAuth.errors) };
}

export function parseChallenge(message: unknown): { challenge: ChallengeMessage } | { problem: string } {
  return validateChallenge(message) ? { challenge: message } : { problem: describeSchemaError(validateChallenge.errors) };
}
