import { expect } from "chai";
import { pino } from "pino";
import { BesterError } from "../../core/errors.js";
import type { AccountStore, AccountVersion } from "../../plugins/accounts/account-store.js";
import { AccountWatch } from "../../plugins/accounts/account-watch.js";
import type { Connection, SessionRegistry } from "../../core/sessions.js";

describe("account watch", () => {
  it("checks again after a failed store read", async () => {
    // An in-memory stand-in for the store whose account read fails once, as in a store outage.
    let mark = "m1";
    let version: AccountVersion = { createdAt: 1, passwordSetAt: 1 };
    let failNextRead = false;
    const store = {
      readChangeMark: async () => mark,
      refreshLastRead: async () => undefined,
      versionOf: async () => {
        if (failNextRead) {
          failNextRead = false;
          throw new Error("store unavailable");
        }
        return version;
      },
    } as unknown as AccountStore;
    const closes: unknown[] = [];
    const connection = { id: "c1", remoteAddress: "tcp 127.0.0.1:1", send: () => undefined, close: (error?: unknown) => closes.push(error) } as unknown as Connection;
    const sessions = { list: () => [{ user: "nina", connections: 1 }], connectionsOf: () => [connection] } as unknown as SessionRegistry;
    const authenticated = new Map<string, AccountVersion>([["c1", { createdAt: 1, passwordSetAt: 1 }]]);
    const watch = new AccountWatch(() => store, sessions, authenticated, pino({ level: "silent" }), 1_000_000);
    await watch.start();
    watch.stop();

    version = { createdAt: 1, passwordSetAt: 2 };
    mark = "m2";
    failNextRead = true;
    await watch.check();
    const afterFailure = closes.length;
    await watch.check();

    expect(afterFailure).to.equal(0);
    expect(closes).to.have.length(1);
    expect(closes[0]).to.have.property("code", "notAuthenticated");
  });

  it("warns once for repeated outage failures", async () => {
    let readable = true;
    const store = {
      readChangeMark: async () => {
        if (!readable) {
          throw new BesterError("storeUnavailable", "Redis at redis://127.0.0.1:1 is unreachable");
        }
        return "m1";
      },
    } as unknown as AccountStore;
    const levels: number[] = [];
    const log = pino({ level: "debug" }, { write: (line: string) => levels.push((JSON.parse(line) as { level: number }).level) });
    const sessions = { list: () => [], connectionsOf: () => [] } as unknown as SessionRegistry;
    const watch = new AccountWatch(() => store, sessions, new Map(), log, 1_000_000);
    await watch.start();
    watch.stop();

    readable = false;
    for (let check = 0; check < 3; check += 1) {
      await watch.check();
    }

    expect(levels).to.deep.equal([40, 20, 20]);
  });
});
