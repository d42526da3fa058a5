import { expect } from "chai";
import { rm } from "node:fs/promises";
import path from "node:path";
import { pino } from "pino";
import type { JournalBatch } from "../../plugins/journal/backend.js";
import { GroupCommitWriter, type GroupCommitOptions } from "../../plugins/journal/group-commit.js";
import { SqliteJournalBackend } from "../../plugins/journal/sqlite-backend.js";
import { makeTempDir } from "../helper.js";

/** The SQLite journal, recording the keys of each batch. Its first batch waits until `release` is called. */
class GatedBackend extends SqliteJournalBackend {
  readonly batches: string[][] = [];
  private gate: Promise<void> | undefined;
  release!: () => void;

  constructor(file: string) {
    super(file);
    this.gate = new Promise<void>((resolve) => (this.release = resolve));
  }

  override async write(batch: JournalBatch): Promise<void> {
    this.batches.push([...batch.keys()]);
    const gate = this.gate;
    this.gate = undefined;
    await gate;
    await super.write(batch);
  }
}

/** The SQLite journal, recording the keys of each batch. Its first batch fails. */
class FailOnceBackend extends SqliteJournalBackend {
  readonly batches: string[][] = [];

  override async write(batch: JournalBatch): Promise<void> {
    this.batches.push([...batch.keys()]);
    if (this.batches.length === 1) {
      throw new Error("injected failure");
    }
    await super.write(batch);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("group commit batching (unit)", () => {
  let dir: string;

  beforeEach(async () => {
    dir = await makeTempDir("bester-group-commit-");
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("batches writes made during a commit", async () => {
    const backend = new GatedBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
    const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), { commitDelayMs: 100 });

    const first = writer.put("k1", "1");
    await sleep(150);
    const during = [writer.put("k2", "2"), writer.delete("k1")];
    backend.release();
    await Promise.all([first, ...during]);
    await writer.close();

    expect(backend.batches).to.deep.equal([["k1"], ["k2", "k1"]]);
    const reopened = new SqliteJournalBackend(path.join(dir, "journal.sqlite"));
    await reopened.open();
    expect(await reopened.scan("")).to.deep.equal([{ key: "k2", value: "2" }]);
    await reopened.close();
  });

  it("commits after commitIdleMs without writes", async () => {
    const backend = new GatedBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
    backend.release();
    const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), { commitDelayMs: 10_000, commitIdleMs: 400 });

    const started = Date.now();
    const first = writer.put("k1", "1");
    await sleep(200);
    const second = writer.put("k2", "2");
    // 450 ms after the first write but only 250 ms after the second: the batch is still open.
    await sleep(250);
    const openAfter = backend.batches.length;
    await Promise.all([first, second]);
    const waitedMs = Date.now() - started;
    await writer.close();

    expect(openAfter).to.equal(0);
    expect(backend.batches).to.deep.equal([["k1", "k2"]]);
    expect(waitedMs).to.be.below(5000);
  });

  it("caps an open batch at commitDelayMs", async () => {
    const keys = Array.from({ length: 16 }, (_, index) => `k${String(index).padStart(2, "0")}`);
    /** Puts the keys 50 ms apart through a writer with `options` and returns the batches it committed. */
    const batchesOfStream = async (file: string, options: GroupCommitOptions): Promise<string[][]> => {
      const backend = new GatedBackend(path.join(dir, file));
      await backend.open();
      backend.release();
      const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), options);

      const writes: Array<Promise<void>> = [];
      for (const key of keys) {
        writes.push(writer.put(key, key));
        await sleep(50);
      }
      await Promise.all(writes);
      await writer.close();
      return backend.batches;
    };

    const uncapped = await batchesOfStream("uncapped.sqlite", { commitDelayMs: 60_000, commitIdleMs: 250 });
    const capped = await batchesOfStream("capped.sqlite", { commitDelayMs: 200, commitIdleMs: 250 });

    // 16 writes 50 ms apart never leave the batch idle for 250 ms, so only commitDelayMs ends it.
    expect(uncapped).to.deep.equal([keys]);
    expect(capped.flat()).to.deep.equal(keys);
    expect(capped.length).to.be.within(3, 8);
  });

  it("commits at once after a flush", async () => {
    const backend = new GatedBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
    const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), { commitDelayMs: 2000, commitIdleMs: 2000 });

    const first = writer.put("k1", "1");
    void writer.flush();
    await sleep(20);
    const second = writer.put("k2", "2");
    const flushed = writer.flush();
    backend.release();
    const started = Date.now();
    await Promise.all([first, second, flushed]);
    const waitedMs = Date.now() - started;
    await writer.close();

    expect(backend.batches).to.deep.equal([["k1"], ["k2"]]);
    expect(waitedMs).to.be.below(1500);
  });

  it("commits a full batch at once", async () => {
    const backend = new GatedBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
    const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), { commitDelayMs: 10_000, commitIdleMs: 10_000, maxBatch: 2 });

    const first = [writer.put("a", "1"), writer.put("b", "2")];
    await sleep(10);
    const second = [writer.put("c", "3"), writer.put("d", "4")];
    backend.release();
    const started = Date.now();
    await Promise.all([...first, ...second]);
    const waitedMs = Date.now() - started;
    await writer.close();

    expect(backend.batches).to.deep.equal([["a", "b"], ["c", "d"]]);
    expect(waitedMs).to.be.below(5000);
  });

  it("commits a large value at once", async () => {
    const backend = new GatedBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
    backend.release();
    const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), { commitDelayMs: 10_000, commitIdleMs: 10_000 });
    const large = "x".repeat(256 * 1024);

    const started = Date.now();
    await Promise.all([writer.put("small", "1"), writer.put("large", large), writer.put("after", "2")]);
    const waitedMs = Date.now() - started;
    await writer.close();

    expect(backend.batches).to.deep.equal([["small", "large", "after"]]);
    expect(waitedMs).to.be.below(5000);
    const reopened = new SqliteJournalBackend(path.join(dir, "journal.sqlite"));
    await reopened.open();
    expect((await reopened.scan("large"))[0]?.value).to.equal(large);
    await reopened.close();
  });

  it("delays values below the large size", async () => {
    const backend = new GatedBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
    backend.release();
    const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), { commitDelayMs: 10_000, commitIdleMs: 10_000 });

    void writer.put("almost", "x".repeat(256 * 1024 - 1));
    await sleep(200);

    expect(backend.batches).to.deep.equal([]);
    await writer.close();
    expect(backend.batches).to.deep.equal([["almost"]]);
  });

  it("rejects a failed batch's writes and flush", async () => {
    const backend = new FailOnceBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
    const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), { commitDelayMs: 0 });
    const outcome = (promise: Promise<void>) => promise.then(() => "committed", (error: Error) => error.message);

    const failed = [outcome(writer.put("k1", "1")), outcome(writer.delete("k0")), outcome(writer.flush())];
    await sleep(1);
    const later = outcome(writer.put("k2", "2"));
    const results = await Promise.all([...failed, later]);
    await writer.close();

    expect(results).to.deep.equal(["injected failure", "injected failure", "injected failure", "committed"]);
    expect(backend.batches).to.deep.equal([["k1", "k0"], ["k2"]]);
  });

  it("commits at once with a zero wait", async () => {
    const cases: GroupCommitOptions[] = [
      { commitIdleMs: 0, commitDelayMs: 10_000 },
      { commitIdleMs: 10_000, commitDelayMs: 0 },
      { commitIdleMs: 10_000, commitDelayMs: 10_000, maxBatch: 1 },
    ];
    for (const [index, options] of cases.entries()) {
      const backend = new GatedBackend(path.join(dir, `zero-${index}.sqlite`));
      await backend.open();
      backend.release();
      const writer = new GroupCommitWriter(backend, pino({ level: "silent" }), options);

      const started = Date.now();
      await Promise.all([writer.put("a", "1"), writer.put("b", "2")]);
      const waitedMs = Date.now() - started;
      await writer.close();

      expect(backend.batches, JSON.stringify(options)).to.deep.equal([["a", "b"]]);
      expect(waitedMs, JSON.stringify(options)).to.be.below(5000);
    }
  });

  it("settles writes made while close commits", async () => {
    const backend = new GatedBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
    const writer = new GroupCommitWriter(backend, pino({ level: "silent" }));

    const first = writer.put("k1", "1");
    const closed = writer.close();
    await sleep(20);
    // The write comes before close() resolves, while close's last batch is committing.
    const during = writer.put("k2", "2").then(() => "committed", (error: Error) => error.message);
    backend.release();
    await Promise.all([first, closed]);

    // A write accepted before close() returned is committed, not left for a closed backend.
    expect(await during).to.equal("committed");
    expect(backend.batches).to.deep.equal([["k1"], ["k2"]]);
  });
});
