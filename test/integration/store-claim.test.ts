import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { createClient } from "@keyv/redis";
import type { BesterConfig } from "../../core/config/types.js";
import { BesterError } from "../../core/errors.js";
import { LEASE_KEY } from "../../plugins/journal/redis-lease.js";
import { fixtureHandler, startServer, type TestServer } from "../helper.js";
import { startRedis, type RedisServer } from "../redis-server.js";

// Two servers on one store would both resume its stored jobs and run them twice, so the journal
// claims the store: a pid file next to a SQLite file, an expiring key in Redis.

/** Returns the error that starting a server with `config` fails with. */
async function startFailure(config: BesterConfig): Promise<BesterError> {
  let server: TestServer | undefined;
  try {
    server = await startServer(config);
  } catch (error) {
    expect(error).to.be.instanceOf(BesterError);
    return error as BesterError;
  }
  await server.stop();
  throw new Error("The second server started on a store that another server uses.");
}

/** Returns a process id that no longer runs: the id of a child that has already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(child.stdout);
}

describe("store claimed by one server", function () {
  this.timeout(30_000);
  let folder: string;
  let redis: RedisServer;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-store-claim-"));
    redis = await startRedis();
  });

  after(async () => {
    await redis?.stop();
    await rm(folder, { recursive: true, force: true });
  });

  describe("sqlite", () => {
    it("stops a second server with storeInUse", async () => {
      const store = `sqlite://${path.join(folder, "shared.sqlite")}`;
      const first = await startServer({ store, handlers: { echo: fixtureHandler("echo") } });

      const error = await startFailure({ store, handlers: { echo: fixtureHandler("echo") } });
      const pidFile = await readFile(path.join(folder, "shared.sqlite.pid"), "utf8");
      await first.stop();

      expect(error.code).to.equal("storeInUse");
      expect(error.message).to.include(`process ${process.pid}`);
      expect(error.message).to.include(path.join(folder, "shared.sqlite"));
      expect(pidFile.trim()).to.equal(String(process.pid));
      expect(existsSync(path.join(folder, "shared.sqlite.pid"))).to.equal(false);
    });

    it("starts after the first server stopped", async () => {
      const store = `sqlite://${path.join(folder, "sequential.sqlite")}`;
      const first = await startServer({ store });
      await first.stop();

      const second = await startServer({ store });
      await second.stop();

      expect(existsSync(path.join(folder, "sequential.sqlite.pid"))).to.equal(false);
    });

    it("replaces the pid file of a killed server", async () => {
      const store = `sqlite://${path.join(folder, "stale.sqlite")}`;
      await writeFile(path.join(folder, "stale.sqlite.pid"), `${deadPid()}\n`);

      const server = await startServer({ store });
      const pidFile = await readFile(path.join(folder, "stale.sqlite.pid"), "utf8");
      await server.stop();

      expect(pidFile.trim()).to.equal(String(process.pid));
    });
  });

  describe("redis", () => {
    /** Runs `action` with a plain client on the test's Redis. */
    type Client = ReturnType<typeof createClient>;
    async function withClient<T>(action: (client: Client) => Promise<T>): Promise<T> {
      const client: Client = createClient({ url: redis.url });
      await client.connect();
      try {
        return await action(client);
      } finally {
        await client.close();
      }
    }

    it("stops a second server with storeInUse", async () => {
      const first = await startServer({ store: redis.url });

      const error = await startFailure({ store: redis.url });
      const holder = JSON.parse((await withClient((client) => client.get(LEASE_KEY))) ?? "{}") as { pid?: number; host?: string };
      await first.stop();
      const afterStop = await withClient((client) => client.get(LEASE_KEY));

      expect(error.code).to.equal("storeInUse");
      expect(error.message).to.include(`process ${process.pid} on host ${os.hostname()}`);
      expect(error.message).to.include("database number");
      expect(holder.pid).to.equal(process.pid);
      expect(holder.host).to.equal(os.hostname());
      expect(afterStop).to.equal(null);
    });

    it("lets servers share Redis with their own database numbers", async () => {
      const first = await startServer({ store: `${redis.url}/1` });
      const second = await startServer({ store: `${redis.url}/2` });
      const inDefault = await withClient((client) => client.get(LEASE_KEY));
      await second.stop();
      await first.stop();

      expect(first.bester.store.description).to.equal(`${redis.url}/1`);
      expect(second.bester.store.description).to.equal(`${redis.url}/2`);
      expect(inDefault).to.equal(null);
    });

    it("takes over the claim of a killed server on this host", async () => {
      const stale = JSON.stringify({ host: os.hostname(), pid: deadPid(), token: "stale-token" });
      await withClient((client) => client.set(LEASE_KEY, stale, { PX: 60_000 }));

      const server = await startServer({ store: redis.url });
      const holder = JSON.parse((await withClient((client) => client.get(LEASE_KEY))) ?? "{}") as { pid?: number; token?: string };
      await server.stop();

      expect(holder.pid).to.equal(process.pid);
      expect(holder.token).to.not.equal("stale-token");
    });

    it("keeps the claim of a server on another host", async () => {
      const remote = JSON.stringify({ host: "another-host.invalid", pid: 4242, token: "remote-token" });
      await withClient((client) => client.set(LEASE_KEY, remote, { PX: 60_000 }));

      const error = await startFailure({ store: redis.url });
      const holder = await withClient((client) => client.get(LEASE_KEY));
      await withClient((client) => client.del(LEASE_KEY));

      expect(error.code).to.equal("storeInUse");
      expect(error.message).to.include("process 4242 on host another-host.invalid");
      expect(error.message).to.include("up to 15 s");
      expect(holder).to.equal(remote);
    });
  });
});
