import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { pino } from "pino";
import type { JournalBackend } from "../../plugins/journal/backend.js";
import { createJournalBackend } from "../../plugins/journal/durable-log.js";
import { GroupCommitWriter } from "../../plugins/journal/group-commit.js";
import { createStoreProvider } from "../../plugins/store/index.js";
import { fixtureHandler, login, RawClient, startServer } from "../helper.js";
import { startRedis, type RedisServer } from "../redis-server.js";

const silent = pino({ level: "silent" });

interface StoreCase {
  name: string;
  /** Returns a store URL; the same URL reopens the same data. */
  url: () => string;
}

describe("store backends", function () {
  this.timeout(30_000);
  let redis: RedisServer;
  let folder: string;

  before(async () => {
    redis = await startRedis();
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-store-"));
  });

  after(async () => {
    await redis?.stop();
    await rm(folder, { recursive: true, force: true });
  });

  const cases: StoreCase[] = [
    { name: "sqlite", url: () => `sqlite://${path.join(folder, "store.sqlite")}` },
    { name: "redis", url: () => redis.url },
  ];

  for (const store of cases) {
    describe(store.name, () => {
      it("keyv namespaces keep values apart and persist", async () => {
        const first = createStoreProvider(store.url());
        await first.open?.();
        await first.namespace("accounts").set("alice", { hash: "h1" });
        await first.namespace("keys").set("alice", "other");
        await first.close();

        const second = createStoreProvider(store.url());
        await second.open?.();
        expect(second.durable).to.equal(true);
        expect(await second.namespace("accounts").get("alice")).to.deep.equal({ hash: "h1" });
        expect(await second.namespace("keys").get("alice")).to.equal("other");
        expect(await second.namespace("accounts").get("nobody")).to.equal(undefined);
        await second.namespace("accounts").delete("alice");
        expect(await second.namespace("accounts").get("alice")).to.equal(undefined);
        await second.close();
      });

      it("iterates every entry of a namespace across several pages", async () => {
        const provider = createStoreProvider(store.url());
        await provider.open?.();
        const pages = provider.namespace<number>("pages");
        await pages.setMany(Array.from({ length: 250 }, (_, index) => ({ key: `entry-${index}`, value: index })));
        await provider.namespace("other").set("entry-x", -1);

        const seen: number[] = [];
        for await (const [, value] of pages.iterator!(undefined)) {
          seen.push(value as number);
        }
        await pages.clear();
        await provider.close();

        expect(seen.sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 250 }, (_, index) => index));
      });

      it("journal batches commit and scan in key order", async () => {
        const backend: JournalBackend = createJournalBackend(store.url());
        await backend.open();
        const writer = new GroupCommitWriter(backend, silent, { commitDelayMs: 1 });

        const writes = [];
        for (let index = 0; index < 300; index += 1) {
          writes.push(writer.put(`job/${String(index).padStart(4, "0")}`, JSON.stringify({ index })));
        }
        writes.push(writer.put("offline/alice/1", "a1"), writer.put("offline/alicia/1", "x"), writer.delete("job/0005"));
        await Promise.all(writes);
        await writer.close();

        const reopened = createJournalBackend(store.url());
        await reopened.open();
        const jobs = await reopened.scan("job/");
        expect(jobs).to.have.length(299);
        expect(jobs[0]).to.deep.equal({ key: "job/0000", value: JSON.stringify({ index: 0 }) });
        expect(jobs.map((entry) => entry.key)).to.deep.equal([...jobs.map((entry) => entry.key)].sort());
        expect(jobs.some((entry) => entry.key === "job/0005")).to.equal(false);
        expect(await reopened.keys("offline/alice/")).to.deep.equal(["offline/alice/1"]);

        await reopened.write(new Map([...jobs.map((entry) => [entry.key, null] as [string, null]), ["offline/alice/1", null], ["offline/alicia/1", null]]));
        expect(await reopened.keys("")).to.deep.equal([]);
        await reopened.close();
      });

      it("server keeps offline messages across a restart", async () => {
        const config = { store: store.url(), registration: true, handlers: { echo: fixtureHandler("echo") } };
        const first = await startServer(config);
        const alice = await RawClient.connect(first.port);
        await login(alice, `alice-${store.name}`);
        const bobBefore = await RawClient.connect(first.port);
        await login(bobBefore, `bob-${store.name}`);
        bobBefore.close();
        while (first.bester.sessions.isOnline(`bob-${store.name}`)) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }

        const submitted = await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [`bob-${store.name}`], value: "for bob" } } } });
        const jobID = (submitted.submission as { jobID: string }).jobID;
        await alice.nextReply("jobNotification");
        alice.close();
        await first.bester.stop();

        const second = await startServer({ ...config, listen: { host: "127.0.0.1", port: first.port } });
        const bob = await RawClient.connect(second.port);
        await login(bob, `bob-${store.name}`, "secret", false);
        const output = await bob.nextReply("jobOutput");
        expect(output.job).to.deep.equal({ jobID: `${jobID}:alice-${store.name}@${first.bester.serverName}`, payload: { type: "echo", data: "for bob" } });
        bob.close();
        await second.stop();
        await first.stop();
      });
    });
  }
});
