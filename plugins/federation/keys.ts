// Ed25519 server keys: the private key lives in a PEM file next to the config; the public key is
// exchanged out of band as `ed25519:<base64 of the 32 raw key bytes>`. Keys never cross a peer link.

import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { BesterError } from "../../core/errors.js";

const PUBLIC_KEY_PREFIX = "ed25519:";
const RAW_KEY_BYTES = 32;

export interface ServerKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key in the form `bester keys` prints and `federation.peers[].publicKey` takes. */
  publicKeyText: string;
  /** Whether the key file was created by this call. */
  created: boolean;
}

/** Reads the PEM private key at `file`, or creates a new key there (mode 0600) when the file is missing. */
export async function loadOrCreateServerKey(file: string): Promise<ServerKey> {
  let pem: string;
  let created = false;
  try {
    pem = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new BesterError("invalidConfig", `Reading the federation key file ${file} failed (${(error as Error).message}). Check federation.keyFile and its permissions.`, { cause: error });
    }
    const { privateKey } = generateKeyPairSync("ed25519");
    pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    await mkdir(path.dirname(file), { recursive: true });
    // `wx` fails if another process created the file meanwhile, so a key is never overwritten.
    await writeFile(file, pem, { mode: 0o600, flag: "wx" });
    created = true;
  }

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (error) {
    throw new BesterError("invalidConfig", `The federation key file ${file} does not hold a PEM private key. Move it away so a new key is created, or point federation.keyFile at the right file.`, { cause: error });
  }
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new BesterError("invalidConfig", `The federation key file ${file} contains a ${privateKey.asymmetricKeyType} key, not Ed25519. Move it away so a new key is created.`);
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, publicKeyText: formatPublicKey(publicKey), created };
}

/** Formats an Ed25519 public key as `ed25519:<base64>`. */
export function formatPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: "jwk" });
  return PUBLIC_KEY_PREFIX + Buffer.from(jwk.x!, "base64url").toString("base64");
}

/** Parses `ed25519:<base64>`; throws invalidConfig naming `where` when the text is not such a key. */
export function parsePublicKey(text: string, where: string): KeyObject {
  const raw = text.startsWith(PUBLIC_KEY_PREFIX) ? Buffer.from(text.slice(PUBLIC_KEY_PREFIX.length), "base64") : Buffer.alloc(0);
  if (raw.length !== RAW_KEY_BYTES) {
    throw new BesterError("invalidConfig", `${where} is not an Ed25519 public key. Copy the last line that \`bester keys\` prints on that server (ed25519:<base64>).`);
  }
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
}

/** Signs `data` with an Ed25519 private key and returns the signature in base64. */
export function signText(privateKey: KeyObject, data: string): string {
  return sign(null, Buffer.from(data, "utf8"), privateKey).toString("base64");
}

/** Checks an Ed25519 signature in base64; false for any malformed input. */
export function verifyText(publicKey: KeyObject, data: string, signature: unknown): boolean {
  if (typeof signature !== "string" || signature.length > 200) {
    return false;
  }
  try {
    return verify(null, Buffer.from(data, "utf8"), publicKey, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}
