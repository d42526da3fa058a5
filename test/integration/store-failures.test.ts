import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sqlite3 from "sqlite3";
import { expect } from "chai";
import { BesterError, WIRE_ERROR_CODES } from "../../core/errors.js";
import type { ServerStatus } from "../../core/status.js";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNT_CHECK_MS } from "../../plugins/accounts/account-watch.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { createStoreProvider } from "../../plugins/store/index.js";
import { REDIS_CONNECT_TIMEOUT_MS } from "../../plugins/store/redis-client.js";
import { acceptedJob, connectAs, fixtureHandler, freePort, login, notificationFor, RawClient, startServer, waitUntil, type TestServer } from "../helper.js";
import { runCli } from "../cli-runner.js";
import { startRedis, type RedisServer } from "../redis-server.js";

const DATA_LOST = "Redis lost its data: the store's marker key is missing after the reconnect, so Redis restarted without persistence and the accounts, peer outboxes and duplicate-message records are gone. Enable appendonly yes on the Redis server, as docs/reliability.md describes";

/** Runs one SQL statement on its own connection to `file`, as another program would. */
function runSql(file: string, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file);
    db.exec(sql, (error) => db.close(() => (error ? reject(error) : resolve())));
  });
}

describe("store failures", function () {
  this.timeout(30_000);
  let folder: string;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-store-failures-"));
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("data folder that is a file is storeFailed", async () => {
    const dataDir = path.join(folder, "a-file");
    await writeFile(dataDir, "not a folder\n");
    const config = path.join(folder, "file-data-dir.config.json");
    await writeFile(config, JSON.stringify({ listen: { host: "127.0.0.1", port: 0 }, dataDir }));

    const started = await startServer({ dataDir, store: `sqlite://${dataDir}/bester.sqlite` }).then(
      async (server) => {
        await server.stop();
        return undefined;
      },
      (caught: unknown) => caught as BesterError,
    );
    const listed = await runCli(["user", "list", "-c", config]);

    expect(started?.code).to.equal("storeFailed");
    expect(started?.message).to.include(`Creating the folder ${dataDir} failed: a file, not a folder, is in the way`);
    expect(listed.code).to.equal(1);
    expect(listed.stderr).to.include("a file, not a folder, is in the way. Check store and dataDir in the config. [storeFailed]");
  });

  it("sqlite write failure rejects the write", async () => {
    const file = path.join(folder, "dropped.sqlite");
    const provider = createStoreProvider(`sqlite://${file}`);
    await provider.open?.();
    const outbox = provider.namespace("federation-outbox");
    await outbox.set("first", { n: 1 });

    // Without its table every write fails inside SQLite.
    await runSql(file, "DROP TABLE bester");
    const error = await outbox.set("second", { n: 2 }).then(() => undefined, (caught: unknown) => caught);

    expect(error, "set() resolved although SQLite failed").to.be.instanceOf(Error);
    expect((error as Error).message).to.include("no such table");
    await provider.close();
  });

  it("redis start-up without a server fails with storeFailed", async () => {
    const port = await freePort();
    const started = Date.now();

    const error = await startServer({ store: `redis://127.0.0.1:${port}` }).then(
      (server: TestServer) => server.stop().then(() => undefined),
      (caught: unknown) => caught,
    );

    expect(error).to.be.instanceOf(BesterError);
    expect((error as BesterError).code).to.equal("storeFailed");
    expect((error as BesterError).message).to.include(`no connection within ${REDIS_CONNECT_TIMEOUT_MS} ms`);
    expect(Date.now() - started).to.be.below(REDIS_CONNECT_TIMEOUT_MS * 3);
  });

  describe("redis connection setup rejected", () => {
    /** Starts a server on `store` and returns the error it fails with and how long that took. */
    async function failedStart(store: string): Promise<{ error: BesterError; elapsedMs: number }> {
      const started = Date.now();
      const error = await startServer({ store }).then(
        (server: TestServer) => server.stop().then(() => undefined),
        (caught: unknown) => caught,
      );
      expect(error, "the server started").to.be.instanceOf(BesterError);
      return { error: error as BesterError, elapsedMs: Date.now() - started };
    }

    it("database out of range fails at once", async () => {
      const redis = await startRedis();
      try {
        const { error, elapsedMs } = await failedStart(`${redis.url}/99`);
        const config = path.join(folder, "redis-db-99.config.json");
        await writeFile(config, JSON.stringify({ listen: { host: "127.0.0.1", port: 0 }, store: `${redis.url}/99`, dataDir: path.join(folder, "redis-db-99") }));
        const listed = await runCli(["user", "list", "-c", config]);

        expect(error.code).to.equal("storeFailed");
        expect(error.message).to.include(`Redis at ${redis.url}/99 has no database 99: its "databases" setting is 16, so the store URL may name databases 0 to 15`);
        expect(error.message).to.include('Redis replied "ERR DB index is out of range"');
        expect(elapsedMs, "the error waited for the connect limit").to.be.below(REDIS_CONNECT_TIMEOUT_MS / 2);
        expect(listed.code).to.equal(1);
        expect(listed.stderr).to.include("has no database 99");
        expect(listed.stderr).to.include("[storeFailed]");
      } finally {
        await redis.stop();
      }
    });

    it("database out of range without CONFIG", async () => {
      // Without CONFIG the limit cannot be read, so the message carries Redis's own reply.
      const redis = await startRedis({ args: ["--databases", "4", "--rename-command", "CONFIG", ""] });
      try {
        const { error, elapsedMs } = await failedStart(`${redis.url}/4`);

        expect(error.code).to.equal("storeFailed");
        expect(error.message).to.include(`Redis at ${redis.url}/4 has no database 4 (Redis replied "ERR DB index is out of range")`);
        expect(elapsedMs, "the error waited for the connect limit").to.be.below(REDIS_CONNECT_TIMEOUT_MS / 2);
      } finally {
        await redis.stop();
      }
    });

    it("wrong password fails at once", async () => {
      const redis = await startRedis({ args: ["--requirepass", "right-password"] });
      try {
        const { error, elapsedMs } = await failedStart(`redis://:wrong-password@127.0.0.1:${redis.port}`);

        expect(error.code).to.equal("storeFailed");
        expect(error.message).to.include(`Redis at redis://127.0.0.1:${redis.port} rejected the connection setup (Redis replied "WRONGPASS`);
        expect(error.message, "the password appears in the message").not.to.include("wrong-password");
        expect(elapsedMs, "the error waited for the connect limit").to.be.below(REDIS_CONNECT_TIMEOUT_MS / 2);
      } finally {
        await redis.stop();
      }
    });
  });

  describe("redis outage while running", () => {
    const STORE_UNAVAILABLE = { code: "storeUnavailable", message: WIRE_ERROR_CODES.storeUnavailable };
    let redis: RedisServer;
    let server: TestServer;

    before(async () => {
      redis = await startRedis();
      server = await startServer({ store: redis.url, registration: true, handlers: { echo: fixtureHandler("echo") } });
    });

    after(async () => {
      await server?.stop();
      await redis?.stop();
    });

    /** Stops Redis and waits until both of the server's connections noticed. */
    async function stopRedis(): Promise<void> {
      await redis.stop();
      await waitUntil(() => server.logs.filter((line) => line.msg === "Redis connection lost; commands fail until it is back").length >= 2, "both connections to report the outage");
    }

    /** Starts Redis again on its port and waits until both connections are back. */
    async function restartRedis(): Promise<void> {
      const backBefore = server.logs.filter((line) => line.msg === "Redis connection back").length;
      redis = await startRedis({ port: redis.port });
      await waitUntil(() => server.logs.filter((line) => line.msg === "Redis connection back").length >= backBefore + 2, "both connections to come back", 10_000);
    }

    it("fails logins with storeUnavailable and recovers", async () => {
      const before = await RawClient.connect(server.port);
      await login(before, "alice");
      before.close();

      // An account that no login read since the start, so the server has no record of it to check against.
      const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
      await accounts.add("frank", "frank-pw");

      await stopRedis();
      const during = await RawClient.connect(server.port);
      const reply = await during.request({ request: "auth", account: { username: "frank", password: "frank-pw" } });
      during.close();

      // The protocol's auth-shaped failure, as for a wrong password, with the details in the log only.
      expect(reply).to.deep.equal({ reply: "auth", auth: { status: "failed", error: STORE_UNAVAILABLE } });
      const failed = server.logs.find((line) => line.msg === "login failed with an error" && line.username === "frank");
      expect((failed?.err as { message: string } | undefined)?.message).to.include("The client is offline");
      expect((failed?.err as { message: string } | undefined)?.message).to.include(`Redis at ${redis.url} is unreachable`);

      const register = await RawClient.connect(server.port);
      const registered = await register.request({ request: "register", account: { username: "bob", password: "secret" } });
      register.close();
      expect(registered).to.deep.equal({ reply: "register", register: { status: "failed", error: STORE_UNAVAILABLE } });
      expect(server.logs.some((line) => line.msg === "registering a user failed" && line.user === "bob")).to.equal(true);

      // The restarted server starts empty (no persistence), so the account is registered again.
      await restartRedis();
      const after = await RawClient.connect(server.port);
      await login(after, "alice");
      after.close();

      await waitUntil(() => server.logs.some((line) => line.msg === DATA_LOST), "the data-loss error", 5000);
      const lost = server.logs.filter((line) => line.msg === DATA_LOST);
      expect(lost).to.have.length(1);
      expect(lost[0]!.level).to.equal(50);
      expect(lost[0]!.store).to.equal(redis.url);
    });

    it("rejects submissions at once with storeUnavailable", async () => {
      const client = await RawClient.connect(server.port);
      await login(client, "carol");
      await stopRedis();

      // Spread over 1.5 s, so the submissions span several of the Redis client's reconnect
      // attempts (100 ms doubling up to 2 s), which a queued MULTI used to wait for.
      const elapsed: number[] = [];
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const started = performance.now();
        const reply = await client.request({ request: "newJob", job: { payload: { type: "echo", data: attempt } } });
        elapsed.push(performance.now() - started);
        expect(reply).to.deep.equal({ reply: "jobSubmission", submission: { status: "rejected", error: STORE_UNAVAILABLE } });
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      const failed = server.logs.find((line) => line.msg === "job submission failed" && line.user === "carol");
      expect((failed?.err as { message: string } | undefined)?.message).to.include(`Redis at ${redis.url} is unreachable, so a command on the journal connection failed`);
      expect((failed?.err as { message: string } | undefined)?.message).to.include(`Check that it is running and reachable from this server: ${redis.url}.`);

      client.close();
      // The restarted Redis has no accounts, and the account check may end carol's session, so a new user submits.
      await restartRedis();
      const afterOutage = await RawClient.connect(server.port);
      await login(afterOutage, "erin");
      const accepted = await afterOutage.request({ request: "newJob", job: { payload: { type: "echo", data: "after" } } });
      afterOutage.close();

      expect(Math.max(...elapsed), `rejections took ${elapsed.map((ms) => ms.toFixed(0)).join(", ")} ms`).to.be.below(250);
      expect((accepted.submission as { status: string }).status).to.equal("accepted");
    });

    it("status works for an admin during the outage", async () => {
      const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
      await accounts.add("root", "root-pw", { admin: true });
      await accounts.add("dave", "dave-pw");
      const admin = await RawClient.connect(server.port);
      await login(admin, "root", "root-pw", false);
      const user = await RawClient.connect(server.port);
      await login(user, "dave", "dave-pw", false);

      await stopRedis();
      const during = await admin.request({ request: "status" });
      const refused = await user.request({ request: "status" });
      admin.close();
      user.close();
      await restartRedis();

      expect(during.reply).to.equal("status");
      const rows = (during.status as ServerStatus).sections.store?.rows;
      expect(rows).to.deep.equal([
        { store: redis.url, connection: "store", state: "unreachable" },
        { store: redis.url, connection: "journal", state: "unreachable" },
      ]);
      expect((during.status as ServerStatus).users.map((entry) => entry.user)).to.include.members(["root", "dave"]);
      expect((refused.error as { code: string }).code).to.equal("notPermitted");
    });

    it("logs in known accounts during the outage", async () => {
      const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
      await accounts.add("grace", "grace-pw", { admin: true });
      const before = await RawClient.connect(server.port);
      await login(before, "grace", "grace-pw", false);
      before.close();

      await stopRedis();
      const wrong = await RawClient.connect(server.port);
      const rejected = await wrong.request({ request: "auth", account: { username: "grace", password: "not-grace-pw" } });
      wrong.close();
      const admin = await RawClient.connect(server.port);
      const accepted = await admin.request({ request: "auth", account: { username: "grace", password: "grace-pw" } });
      const status = await admin.request({ request: "status" });
      const submission = await admin.request({ request: "newJob", job: { payload: { type: "echo", data: "during" } } });
      admin.close();
      await restartRedis();

      // A wrong password gets storeUnavailable, as for an account the server has no record of.
      expect(rejected).to.deep.equal({ reply: "auth", auth: { status: "failed", error: STORE_UNAVAILABLE } });
      expect(accepted).to.deep.equal({ reply: "auth", auth: { status: "ok", address: `grace@127.0.0.1:${server.port}` } });
      expect(status.reply).to.equal("status");
      expect((status.status as ServerStatus).sections.store?.rows.map((row) => row.state)).to.deep.equal(["unreachable", "unreachable"]);
      expect(submission).to.deep.equal({ reply: "jobSubmission", submission: { status: "rejected", error: STORE_UNAVAILABLE } });
    });

    it("hides which accounts are kept during the outage", async () => {
      const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
      await accounts.add("kate", "kate-pw");
      await accounts.add("liam", "liam-pw");
      const before = await RawClient.connect(server.port);
      await login(before, "kate", "kate-pw", false);
      before.close();

      await stopRedis();
      // Past the default limit of 10 failed logins per user, so a rateLimited reply would show too.
      const replies: Record<string, unknown[]> = { kate: [], liam: [] };
      for (let attempt = 0; attempt < 12; attempt += 1) {
        for (const username of ["kate", "liam"]) {
          const client = await RawClient.connect(server.port);
          replies[username]!.push(await client.request({ request: "auth", account: { username, password: "wrong-pw" } }));
          client.close();
        }
      }
      await restartRedis();

      const failed = { reply: "auth", auth: { status: "failed", error: STORE_UNAVAILABLE } };
      expect(replies.kate, "replies for the kept account").to.deep.equal(Array(12).fill(failed));
      expect(replies.liam, "replies for the account without a kept record").to.deep.equal(Array(12).fill(failed));
    });

    it("keeps records current across a revocation", async () => {
      const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
      await accounts.add("heidi", "heidi-pw", { admin: true });
      await accounts.add("ivan", "ivan-pw", { admin: true });
      for (const [name, password] of [["heidi", "heidi-pw"], ["ivan", "ivan-pw"]]) {
        const before = await RawClient.connect(server.port);
        await login(before, name!, password!, false);
        before.close();
      }
      // Revoked through another AccountStore, as `bester user admin --revoke` does from its own process.
      const command = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
      await command.setAdmin("heidi", false);
      await new Promise((resolve) => setTimeout(resolve, ACCOUNT_CHECK_MS + 1000));

      await stopRedis();
      const revoked = await RawClient.connect(server.port);
      await login(revoked, "heidi", "heidi-pw", false);
      const denied = await revoked.request({ request: "status" });
      revoked.close();
      const other = await RawClient.connect(server.port);
      await login(other, "ivan", "ivan-pw", false);
      const status = await other.request({ request: "status" });
      other.close();
      await restartRedis();

      expect((denied.error as { code: string }).code).to.equal("notPermitted");
      expect(status.reply).to.equal("status");
    });
  });

  describe("redis outage after a job was accepted", () => {
    let redis: RedisServer | undefined;
    let server: TestServer | undefined;

    after(async () => {
      await server?.stop();
      await redis?.stop();
    });

    it("fails an undeliverable output with directorFailed", async () => {
      redis = await startRedis();
      server = await startServer({ store: redis.url, registration: true, handlers: { delayed: fixtureHandler("delayed-deliver") } });
      const bob = await RawClient.connect(server.port);
      await login(bob, "bob");
      bob.close();
      const alice = await connectAs(server.port, "alice");

      // bob is offline, so his output needs the store, which is down by the time the handler replies.
      const jobId = await acceptedJob(alice, "delayed", { delayMs: 1500, deliverTo: ["bob"], value: "for bob" });
      await redis.stop();
      redis = undefined;
      const notification = await notificationFor(alice, jobId, 20_000);
      alice.close();
      const logged = server.logs.find((line) => line.msg === "carrying out the handler's output failed because the store is unreachable");

      expect(notification.status).to.equal("failed");
      expect(notification.error).to.deep.equal({ code: "directorFailed", message: 'Carrying out the output of handler "delayed" failed because the server\'s store was unreachable. The server log has the details.' });
      expect(logged?.jobId).to.equal(jobId);
      expect(JSON.stringify(logged?.err)).to.include("is unreachable");
    });
  });

  describe("redis restart with persistence", () => {
    let aofFolder: string;
    let redis: RedisServer | undefined;
    let server: TestServer | undefined;

    after(async () => {
      await server?.stop();
      await redis?.stop();
      await rm(aofFolder, { recursive: true, force: true });
    });

    it("reports no data loss", async () => {
      aofFolder = await mkdtemp(path.join(os.tmpdir(), "bester-redis-aof-"));
      const args = ["--appendonly", "yes", "--dir", aofFolder];
      redis = await startRedis({ args });
      server = await startServer({ store: redis.url, registration: true });
      const before = await RawClient.connect(server.port);
      await login(before, "alice");
      before.close();

      await redis.stop();
      await waitUntil(() => server!.logs.some((line) => line.msg === "Redis connection lost; commands fail until it is back"), "a warning about the lost connection");
      redis = await startRedis({ port: redis.port, args });
      await waitUntil(() => server!.logs.some((line) => line.msg === "Redis connection back"), "the connection to come back", 10_000);
      // The account survived, so it logs in without registering again.
      const after = await RawClient.connect(server.port);
      await login(after, "alice", "secret", false);
      after.close();
      await new Promise((resolve) => setTimeout(resolve, 300));

      expect(server.logs.filter((line) => line.msg === DATA_LOST)).to.deep.equal([]);
    });
  });
});
