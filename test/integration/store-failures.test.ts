import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sqlite3 from "sqlite3";
import { expect } from "chai";
import { BesterError } from "../../core/errors.js";
import { createStoreProvider } from "../../plugins/store/index.js";
import { REDIS_CONNECT_TIMEOUT_MS } from "../../plugins/store/redis-client.js";
import { freePort, login, RawClient, startServer, waitUntil, type TestServer } from "../helper.js";
import { runCli } from "../cli-runner.js";
import { startRedis, type RedisServer } from "../redis-server.js";

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
    let redis: RedisServer;
    let server: TestServer;

    before(async () => {
      redis = await startRedis();
      server = await startServer({ store: redis.url, registration: true });
    });

    after(async () => {
      await server?.stop();
      await redis?.stop();
    });

    it("fails logins at once and recovers", async () => {
      const before = await RawClient.connect(server.port);
      await login(before, "alice");
      before.close();

      await redis.stop();
      const during = await RawClient.connect(server.port);
      const reply = await during.request({ request: "auth", account: { username: "alice", password: "secret" } });
      during.close();

      // The protocol's auth-shaped failure, as for a wrong password, with the details in the log.
      expect(reply.reply).to.equal("auth");
      expect((reply.auth as { status: string }).status).to.equal("failed");
      expect((reply.auth as { error: { code: string } }).error.code).to.equal("internalError");
      await waitUntil(() => server.logs.some((line) => line.msg === "Redis connection lost; commands fail until it is back"), "a warning about the lost connection");
      const failed = server.logs.find((line) => line.msg === "login failed with an error" && line.username === "alice");
      expect((failed?.err as { message: string } | undefined)?.message).to.include("The client is offline");

      const register = await RawClient.connect(server.port);
      const registered = await register.request({ request: "register", account: { username: "bob", password: "secret" } });
      register.close();
      expect(registered).to.deep.equal({ reply: "register", register: { status: "failed", error: { code: "internalError", message: "The server failed unexpectedly; the log has the details." } } });
      expect(server.logs.some((line) => line.msg === "registering a user failed" && line.user === "bob")).to.equal(true);

      // The restarted server starts empty (no persistence), so the account is registered again.
      redis = await startRedis({ port: redis.port });
      await waitUntil(() => server.logs.some((line) => line.msg === "Redis connection back"), "the connection to come back", 10_000);
      const after = await RawClient.connect(server.port);
      await login(after, "alice");
      after.close();
    });
  });
});
