// The stored form of an offline message, and the rule that decides which account may receive it.
//
// A value is either the message's JSON object, as every value was before messages kept their
// account, or the JSON array `[account, message]`. Messages are JSON objects, so the first
// character distinguishes the two forms.

import { jobIdTime } from "../../core/jobs/job.js";

export interface StoredMessage {
  message: object;
  /**
   * Creation time of the recipient's account, as read after this message or an earlier one for
   * the user was stored, or null when no account had the name then. Undefined when that is not known, because the message was stored
   * before this field existed, the read failed for a user with no earlier stored message, or the
   * daemon stopped before the read.
   */
  account?: number | null;
}

/** Encodes a message with its account, from the message's JSON text, so a large payload is serialised once. */
export function encodeStoredMessage(messageJson: string, account: number | null | undefined): string {
  return account === undefined ? messageJson : `[${JSON.stringify(account)},${messageJson}]`;
}

export function decodeStoredMessage(value: string): StoredMessage {
  const parsed = JSON.parse(value) as object | [number | null, object];
  if (Array.isArray(parsed)) {
    return { account: parsed[0], message: parsed[1] };
  }
  return { message: parsed };
}

/**
 * Checks whether a stored message may go to a connection that logged in to the account created at
 * `loginAccountCreatedAt`. Without that time (a login that no plugin binds to an account), every
 * message of the user name may. A message with a known account goes only to that account. A
 * message without one goes to the account only if the message was stored after the account was
 * created, according to `id`, the id part of its key.
 */
export function isForAccount(stored: StoredMessage, id: string, loginAccountCreatedAt: number | undefined): boolean {
  if (loginAccountCreatedAt === undefined) {
    return true;
  }
  if (stored.account !== undefined) {
    return stored.account === loginAccountCreatedAt;
  }
  // NOTE: this compares the daemon's clock, which stamped the id, with the clock of the process
  // that created the account, such as `bester user add` on another host. When that clock runs
  // ahead, a message stored for the account within the difference after its creation is dropped.
  // When it runs behind, a removed account's message stored within the difference before the new
  // account's creation is delivered.
  const storedAt = jobIdTime(id);
  return storedAt !== undefined && storedAt >= loginAccountCreatedAt;
}
