// User accounts in a keyv namespace. Passwords are kept only as scrypt hashes with a per-user
// random salt; the plain password is never stored or logged.

import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from "node:crypto";
import type Keyv from "keyv";
import { BesterError, isStoreUnavailable } from "../../core/errors.js";
import { isValidUsername } from "../../core/jobs/job.js";

/** scrypt cost parameters (N = 2^15, r = 8, p = 1): about 32 MiB and tens of ms per hash. */
const SCRYPT_PARAMS = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_LENGTH = 32;
const SALT_BYTES = 16;

export interface AccountRecord {
  salt: string;
  hash: string;
  params: { N: number; r: number; p: number };
  createdAt: number;
  /** When the current password was set. Records written before this field existed use createdAt instead. */
  passwordSetAt?: number;
  admin?: boolean;
}

/**
 * The account state a session is bound to at login. A removed and re-created account has a new
 * createdAt, and a new password a new passwordSetAt, so either change ends the sessions opened before it.
 */
export interface AccountVersion {
  createdAt: number;
  passwordSetAt: number;
  /** Whether the account had admin rights when it was read; no part of the version's identity. */
  admin?: boolean;
}

function scrypt(password: string, salt: Buffer, params: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(password.normalize("NFC"), salt, KEY_LENGTH, params, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/**
 * Key of the change mark: a value that changes with every removal and password change, so a
 * running server notices those made by `bester user` with one read. No username can take it,
 * because usernames contain no "#".
 */
const CHANGE_MARK_KEY = "#changed";

/** Accounts whose last read record is kept for logins during a store outage; beyond it the least recently read is dropped. */
const LAST_READ_LIMIT = 10_000;

export class AccountStore {
  /** A record to hash against for unknown users, so a failed login takes as long either way. */
  private decoy: Promise<AccountRecord> | undefined;
  /** The last addition of each username still running. */
  private readonly adding = new Map<string, Promise<void>>();
  /**
   * The record each recent login read, least recently read first. While the store is unreachable,
   * logins check passwords against it, so an operator can still log in and run `bester status`.
   */
  private readonly lastRead = new Map<string, AccountRecord>();

  constructor(private readonly keyv: Keyv<AccountRecord>) {}

  /**
   * Creates an account; throws `invalidUsername` or `userExists`. Additions of one name through
   * this object run one after another, because the existence check and the write are two store
   * calls. A second registration running beside the first would replace its account, and the
   * first user's login would then fail.
   */
  async add(username: string, password: string, options: { admin?: boolean } = {}): Promise<void> {
    this.assertUsername(username);

    const before = this.adding.get(username) ?? Promise.resolve();
    const addition = before.then(
      () => this.addNow(username, password, options),
      () => this.addNow(username, password, options),
    );
    this.adding.set(username, addition);
    try {
      await addition;
    } finally {
      if (this.adding.get(username) === addition) {
        this.adding.delete(username);
      }
    }
  }

  // NOTE: `bester user add` in another process still races a registration of the same name, because
  // keyv offers no create-if-absent write.
  private async addNow(username: string, password: string, options: { admin?: boolean }): Promise<void> {
    if (await this.keyv.has(username)) {
      throw new BesterError("userExists", `User "${username}" already exists. Pick another name, or change the password with "bester user passwd".`);
    }
    await this.keyv.set(username, await hashPassword(password, options.admin));
  }

  /** Replaces a user's password; throws `unknownUser` when the user does not exist. */
  async setPassword(username: string, password: string): Promise<void> {
    const record = await this.keyv.get(username);
    if (!record) {
      throw new BesterError("unknownUser", `User "${username}" does not exist. Add it with "bester user add ${username}".`);
    }
    // createdAt stays, because it distinguishes this account from a removed one of the same name.
    // passwordSetAt must change even within one millisecond, because sessions compare it for equality.
    const previous = versionOf(record).passwordSetAt;
    const replaced = await hashPassword(password, record.admin);
    this.lastRead.delete(username);
    await this.keyv.set(username, { ...replaced, createdAt: record.createdAt, passwordSetAt: Math.max(replaced.passwordSetAt!, previous + 1) });
    await this.changeMark();
  }

  /** Grants or revokes admin rights; throws `unknownUser` when the user does not exist. */
  async setAdmin(username: string, admin: boolean): Promise<void> {
    const record = await this.keyv.get(username);
    if (!record) {
      throw new BesterError("unknownUser", `User "${username}" does not exist. Add it with "bester user add ${username} --admin".`);
    }
    const { admin: _previous, ...rest } = record;
    this.lastRead.delete(username);
    await this.keyv.set(username, admin ? { ...rest, admin: true } : rest);
    // Running servers read their kept records again on a mark change, so during a later outage a
    // revoked admin's kept record no longer has the flag.
    await this.changeMark();
  }

  /** Deletes a user and changes the change mark; returns whether the user existed. */
  async remove(username: string): Promise<boolean> {
    this.assertUsername(username);
    this.lastRead.delete(username);
    const existed = await this.keyv.delete(username);
    if (existed) {
      await this.changeMark();
    }
    return existed;
  }

  /** Returns the change mark, which changes with every removal, password change and admin change; undefined before the first. */
  async readChangeMark(): Promise<string | undefined> {
    return (await (this.keyv as Keyv<unknown>).get(CHANGE_MARK_KEY)) as string | undefined;
  }

  /**
   * Reads every kept record again, because an account changed in the store, and drops those of
   * removed accounts. The other accounts keep their records, so one user's change does not lock
   * every other admin out of `bester status` during a later outage. A failed read drops them all.
   */
  async refreshLastRead(): Promise<void> {
    try {
      for (const username of [...this.lastRead.keys()]) {
        const record = await this.keyv.get(username);
        if (record === undefined) {
          this.lastRead.delete(username);
        } else if (this.lastRead.has(username)) {
          this.lastRead.set(username, record);
        }
      }
    } catch (error) {
      this.lastRead.clear();
      throw error;
    }
  }

  private async changeMark(): Promise<void> {
    await (this.keyv as Keyv<unknown>).set(CHANGE_MARK_KEY, `${Date.now()}-${randomBytes(4).toString("hex")}`);
  }

  async exists(username: string): Promise<boolean> {
    return isValidUsername(username) && (await this.keyv.has(username));
  }

  /**
   * Returns the account's version, or undefined when there is no such account. While the store is
   * unreachable it returns the kept record's version, unless `useKept` is false, and otherwise
   * throws the store error.
   */
  async versionOf(username: string, options: { useKept?: boolean } = {}): Promise<AccountVersion | undefined> {
    if (!isValidUsername(username)) {
      return undefined;
    }
    const { record, outage } = await this.readForLogin(username);
    if (outage !== undefined && (record === undefined || options.useKept === false)) {
      throw outage;
    }
    return record ? versionOf(record) : undefined;
  }

  /**
   * Returns the account's creation time, or undefined when there is no such account. Unlike
   * versionOf(), it keeps no record for logins during an outage, and an unreachable store throws.
   */
  async createdAtOf(username: string): Promise<number | undefined> {
    if (!isValidUsername(username)) {
      return undefined;
    }
    const record = await this.keyv.get(username);
    return record ? versionOf(record).createdAt : undefined;
  }

  async isAdmin(username: string): Promise<boolean> {
    return (await this.keyv.get(username))?.admin === true;
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    if (!this.keyv.iterator) {
      return names;
    }
    for await (const [key] of this.keyv.iterator(undefined)) {
      // Skips the removal mark and anything else that is not an account.
      if (isValidUsername(String(key))) {
        names.push(String(key));
      }
    }
    return names.sort();
  }

  /** Checks a password in constant time; unknown users cost the same hash as known ones. */
  async verify(username: string, password: string): Promise<boolean> {
    return (await this.verifiedAccount(username, password)) !== undefined;
  }

  /**
   * Checks a password like verify() and returns the version of the account it matched, or
   * undefined. The version distinguishes that account from one added later under the same name, and
   * from the same account after a password change.
   */
  async verifiedAccount(username: string, password: string): Promise<AccountVersion | undefined> {
    const { record, outage } = isValidUsername(username) ? await this.readForLogin(username) : { record: undefined, outage: undefined };
    const checked = record ?? (await this.decoyRecord());
    const expected = Buffer.from(checked.hash, "base64");
    const actual = await hashLike(checked, password);
    const matches = record !== undefined && expected.length === actual.length && timingSafeEqual(expected, actual);
    if (matches) {
      return versionOf(record);
    }
    // During an outage every failed login throws the store error after one hash, kept record or
    // not, so neither the reply nor its time reveals which accounts the server keeps a record of.
    if (outage !== undefined) {
      throw outage;
    }
    return undefined;
  }

  /** Returns whether a record of the account is kept for logins during a store outage. */
  keepsRecordOf(username: string): boolean {
    return this.lastRead.has(username);
  }

  /** Hashes `password` against a random record and throws `outage`, so a rejection takes as long as a password check. */
  async rejectAfterHash(password: string, outage: unknown): Promise<never> {
    await hashLike(await this.decoyRecord(), password);
    throw outage;
  }

  /**
   * Reads an account and keeps the record. While the store is unreachable it returns the kept
   * record, if any, with the store error as `outage`. Any other store error is thrown.
   */
  private async readForLogin(username: string): Promise<{ record: AccountRecord | undefined; outage?: unknown }> {
    let record: AccountRecord | undefined;
    try {
      record = await this.keyv.get(username);
    } catch (error) {
      if (!isStoreUnavailable(error)) {
        throw error;
      }
      return { record: this.lastRead.get(username), outage: error };
    }

    // Deleted first, so the map's order stays least recently read first.
    this.lastRead.delete(username);
    if (record !== undefined) {
      this.lastRead.set(username, record);
    }
    if (this.lastRead.size > LAST_READ_LIMIT) {
      this.lastRead.delete(this.lastRead.keys().next().value!);
    }
    return { record };
  }

  private decoyRecord(): Promise<AccountRecord> {
    this.decoy ??= hashPassword(randomBytes(16).toString("hex"));
    return this.decoy;
  }

  private assertUsername(username: string): void {
    if (!isValidUsername(username)) {
      throw new BesterError("invalidUsername", `Username "${username}" is invalid. Use 1-64 characters from A-Z, a-z, 0-9, ".", "_" and "-".`);
    }
  }
}

/** Hashes `password` with the salt and cost parameters of `record`, for a comparison with its hash. */
function hashLike(record: AccountRecord, password: string): Promise<Buffer> {
  return scrypt(password, Buffer.from(record.salt, "base64"), { ...record.params, maxmem: SCRYPT_PARAMS.maxmem });
}

async function hashPassword(password: string, admin?: boolean): Promise<AccountRecord> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await scrypt(password, salt, SCRYPT_PARAMS);
  const { N, r, p } = SCRYPT_PARAMS;
  const now = Date.now();
  return { salt: salt.toString("base64"), hash: hash.toString("base64"), params: { N, r, p }, createdAt: now, passwordSetAt: now, ...(admin ? { admin } : {}) };
}

function versionOf(record: AccountRecord): AccountVersion {
  const createdAt = record.createdAt ?? 0;
  return { createdAt, passwordSetAt: record.passwordSetAt ?? createdAt, admin: record.admin === true };
}
