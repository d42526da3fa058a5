import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { createClient } from "@keyv/redis";
import type { BesterConfig } from "../../core/config/types.js";
import { BesterError } from "../../core/errors.js";
import { LEASE_KEY } from "../../plugins/journal/redis-lease.js";
import { fixtureHandler, REPO_ROOT, startServer, type TestServer } from "../helper.js";
import { startRedis, type RedisServer } from "../redis-server.js";

// Two servers on one store would both resume its stored jobs and run them twice, so the journal
// claims the store: a lock file next to a SQLite file, an expiring key in Redis.

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

  it("keeps the data folder's pid file when a second server fails", async () => {
    const dataDir = path.join(folder, "shared-data");
    const first = await startServer({ dataDir });

    const second = await startFailure({ dataDir });
    const third = await startFailure({ dataDir });
    const pidFile = existsSync(path.join(dataDir, "bester.pid"));
    await first.stop();

    expect(second.code).to.equal("dataDirInUse");
    expect(third.code).to.equal("dataDirInUse");
    expect(pidFile).to.equal(true);
  });

  it("keeps the data folder from a process in another pid namespace", function () {
    // A container sharing the folder through a volume: its process ids mean nothing here. unshare
    // needs unprivileged user namespaces; where they are off, there is nothing to check.
    const probe = spawnSync("unshare", ["-Urpf", "--mount-proc", "true"]);
    if (probe.status !== 0) {
      this.skip();
    }
    return (async () => {
      const dataDir = path.join(folder, "namespaced-data");
      const first = await startServer({ dataDir });
      const script = `
        const { takeServerClaim } = await import(${JSON.stringify(path.join(REPO_ROOT, "core", "server-claim.ts"))});
        const { BesterError } = await import(${JSON.stringify(path.join(REPO_ROOT, "core", "errors.ts"))});
        try {
          await takeServerClaim({ pidFile: ${JSON.stringify(path.join(dataDir, "bester.pid"))}, lockFile: ${JSON.stringify(path.join(dataDir, "bester.lock"))}, setting: "dataDir", inUse: (owner) => new BesterError("dataDirInUse", "in use by " + owner) });
          console.log("claimed as pid " + process.pid);
        } catch (error) {
          console.log(error.code + ": " + error.message);
        }`;
      const other = spawnSync("unshare", ["-Urpf", "--mount-proc", process.execPath, "--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", cwd: REPO_ROOT });
      await first.stop();

      expect(other.stdout.trim()).to.equal(`dataDirInUse: in use by ${process.pid}`);
    })();
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

    it("leaves the first server's value files alone", async () => {
      const file = path.join(folder, "values.sqlite");
      const first = await startServer({ store: `sqlite://${file}` });
      // A large job value the first server wrote to its own file, as it does before the commit that references it.
      const valueFile = path.join(`${file}-values`, "pending-value");
      await writeFile(valueFile, "x".repeat(1024));

      const error = await startFailure({ store: `sqlite://${file}` });
      const valueFileKept = existsSync(valueFile);
      await first.stop();

      expect(error.code).to.equal("storeInUse");
      expect(valueFileKept).to.equal(true);
    });

    it("follows a symbolic link to the store file", async () => {
      const file = path.join(folder, "linked.sqlite");
      const first = await startServer({ store: `sqlite://${file}` });
      const link = path.join(folder, "link-to-linked.sqlite");
      await symlink(file, link);

      const error = await startFailure({ store: `sqlite://${link}` });
      await first.stop();

      expect(error.code).to.equal("storeInUse");
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

    /** Boot and pid namespace of this machine, as a server here records them in its claim. */
    const thisMachine = () => ({ host: os.hostname(), boot: readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim(), pidNamespace: readlinkSync("/proc/self/ns/pid") });

    it("takes over the claim of a killed server on this host", async () => {
      const stale = JSON.stringify({ ...thisMachine(), pid: deadPid(), token: "stale-token" });
      await withClient((client) => client.set(LEASE_KEY, stale, { PX: 60_000 }));

      const server = await startServer({ store: redis.url });
      const holder = JSON.parse((await withClient((client) => client.get(LEASE_KEY))) ?? "{}") as { pid?: number; token?: string };
      await server.stop();

      expect(holder.pid).to.equal(process.pid);
      expect(holder.token).to.not.equal("stale-token");
    });

    it("keeps the claim of a server in another pid namespace", async () => {
      // A container with the host's name: its process ids mean nothing here, so a dead-looking pid proves nothing.
      const container = JSON.stringify({ ...thisMachine(), pidNamespace: "pid:[1]", pid: deadPid(), token: "container-token" });
      await withClient((client) => client.set(LEASE_KEY, container, { PX: 60_000 }));

      const error = await startFailure({ store: redis.url });
      const holder = await withClient((client) => client.get(LEASE_KEY));
      await withClient((client) => client.del(LEASE_KEY));

      expect(error.code).to.equal("storeInUse");
      expect(holder).to.equal(container);
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
