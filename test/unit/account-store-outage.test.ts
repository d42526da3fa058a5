import { expect } from "chai";
import Keyv from "keyv";
import { BesterError } from "../../core/errors.js";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";

/** Returns an account record created at `createdAt`. Its hash is empty, because these tests never check a password. */
function record(createdAt: number): AccountRecord {
  return { salt: "", hash: "", params: { N: 2, r: 1, p: 1 }, createdAt, passwordSetAt: createdAt };
}

/** Makes every read of `keyv` fail as the Redis store does while Redis is down. */
function breakReads(keyv: Keyv<AccountRecord>): void {
  keyv.get = (async () => {
    throw new BesterError("storeUnavailable", "Redis at redis://127.0.0.1:1 is unreachable");
  }) as unknown as typeof keyv.get;
}

describe("account records kept for an outage", () => {
  it("answers reads from the record of the last login", async () => {
    const keyv = new Keyv<AccountRecord>();
    await keyv.set("ivan", record(5));
    const accounts = new AccountStore(keyv);
    await accounts.versionOf("ivan");

    breakReads(keyv);

    expect(await accounts.versionOf("ivan")).to.deep.equal({ createdAt: 5, passwordSetAt: 5, admin: false });
  });

  it("fails for an account never read", async () => {
    const keyv = new Keyv<AccountRecord>();
    await keyv.set("judy", record(5));
    const accounts = new AccountStore(keyv);

    breakReads(keyv);
    const failure = await accounts.versionOf("judy").catch((error: unknown) => error);

    expect((failure as BesterError).code).to.equal("storeUnavailable");
  });

  it("forgets a removed account", async () => {
    const keyv = new Keyv<AccountRecord>();
    await keyv.set("ken", record(5));
    const accounts = new AccountStore(keyv);
    await accounts.versionOf("ken");
    await keyv.delete("ken");
    expect(await accounts.versionOf("ken")).to.equal(undefined);

    breakReads(keyv);
    const failure = await accounts.versionOf("ken").catch((error: unknown) => error);

    expect((failure as BesterError).code).to.equal("storeUnavailable");
  });

  it("keeps the 10 000 most recently read", async () => {
    const keyv = new Keyv<AccountRecord>();
    const accounts = new AccountStore(keyv);
    for (let index = 0; index <= 10_000; index += 1) {
      await keyv.set(`user-${index}`, record(index));
    }
    // user-0 is read again after user-1, so user-1 is the least recently read when the 10 001st arrives.
    await accounts.versionOf("user-0");
    await accounts.versionOf("user-1");
    await accounts.versionOf("user-0");
    for (let index = 2; index <= 10_000; index += 1) {
      await accounts.versionOf(`user-${index}`);
    }

    breakReads(keyv);
    const dropped = await accounts.versionOf("user-1").catch((error: unknown) => error);

    expect((dropped as BesterError).code).to.equal("storeUnavailable");
    expect((await accounts.versionOf("user-0"))?.createdAt).to.equal(0);
    expect((await accounts.versionOf("user-10000"))?.createdAt).to.equal(10_000);
  });

  it("refreshes kept records after a change", async () => {
    const keyv = new Keyv<AccountRecord>();
    await keyv.set("lena", record(5));
    await keyv.set("mia", record(6));
    await keyv.set("noah", record(7));
    const accounts = new AccountStore(keyv);
    for (const name of ["lena", "mia", "noah"]) {
      await accounts.versionOf(name);
    }
    // As `bester user` changes accounts from another process, behind this AccountStore's back.
    await keyv.set("mia", { ...record(6), passwordSetAt: 60 });
    await keyv.delete("noah");
    await accounts.refreshLastRead();

    breakReads(keyv);
    const removed = await accounts.versionOf("noah").catch((error: unknown) => error);

    expect(await accounts.versionOf("lena")).to.deep.equal({ createdAt: 5, passwordSetAt: 5, admin: false });
    expect(await accounts.versionOf("mia")).to.deep.equal({ createdAt: 6, passwordSetAt: 60, admin: false });
    expect((removed as BesterError).code).to.equal("storeUnavailable");
  });

  it("drops every record when a refresh fails", async () => {
    const keyv = new Keyv<AccountRecord>();
    await keyv.set("lena", record(5));
    const accounts = new AccountStore(keyv);
    await accounts.versionOf("lena");

    breakReads(keyv);
    const refresh = await accounts.refreshLastRead().catch((error: unknown) => error);
    const failure = await accounts.versionOf("lena").catch((error: unknown) => error);

    expect((refresh as BesterError).code).to.equal("storeUnavailable");
    expect((failure as BesterError).code).to.equal("storeUnavailable");
  });
});

describe("logins during an outage", () => {
  /** Returns the shortest of three runs of `run`, in milliseconds, so one slow run on a busy machine counts less. */
  async function shortestMs(run: () => Promise<unknown>): Promise<number> {
    const times: number[] = [];
    for (let index = 0; index < 3; index += 1) {
      const started = performance.now();
      await run().catch(() => undefined);
      times.push(performance.now() - started);
    }
    return Math.min(...times);
  }

  it("rejects a wrong password as storeUnavailable", async () => {
    const keyv = new Keyv<AccountRecord>();
    const accounts = new AccountStore(keyv);
    await accounts.add("olga", "olga-pw");
    await accounts.verifiedAccount("olga", "olga-pw");

    breakReads(keyv);
    const accepted = await accounts.verifiedAccount("olga", "olga-pw");
    const failure = await accounts.verifiedAccount("olga", "wrong-pw").catch((error: unknown) => error);

    expect(accepted?.createdAt).to.be.a("number");
    expect((failure as BesterError).code).to.equal("storeUnavailable");
  });

  it("hashes for an account without a kept record", async () => {
    const keyv = new Keyv<AccountRecord>();
    const accounts = new AccountStore(keyv);
    await accounts.add("olga", "olga-pw");
    await accounts.add("pete", "pete-pw");
    await accounts.verifiedAccount("olga", "olga-pw");

    breakReads(keyv);
    const kept = await shortestMs(() => accounts.verifiedAccount("olga", "wrong-pw"));
    const notKept = await shortestMs(() => accounts.verifiedAccount("pete", "wrong-pw"));

    // Both take one scrypt hash, tens of ms. Without the decoy hash the second takes under 1 ms.
    expect(notKept, `${notKept.toFixed(1)} ms against ${kept.toFixed(1)} ms for the kept account`).to.be.above(kept / 3);
  });
});
