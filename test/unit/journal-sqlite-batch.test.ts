import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sqlite3 from "sqlite3";
import { SqliteJournalBackend } from "../../plugins/journal/sqlite-backend.js";

/** Runs `sql` on a second connection to the journal's file, as another program would. */
async function execOn(file: string, sql: string): Promise<void> {
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const opened = new sqlite3.Database(file, (error) => (error ? reject(error) : resolve(opened)));
  });
  await new Promise<void>((resolve, reject) => db.exec(sql, (error) => (error ? reject(error) : resolve())));
  await new Promise<void>((resolve) => db.close(() => resolve()));
}

describe("sqlite journal batch statements (unit)", () => {
  let dir: string;
  let backend: SqliteJournalBackend;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "bester-journal-batch-"));
    backend = new SqliteJournalBackend(path.join(dir, "journal.sqlite"));
    await backend.open();
  });

  afterEach(async () => {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("applies batches larger than one statement", async () => {
    const keys = Array.from({ length: 1000 }, (_, index) => `job:${String(index).padStart(4, "0")}`);
    await backend.write(new Map(keys.map((key) => [key, `v1 ${key}`])));

    const second = new Map<string, string | null>();
    keys.forEach((key, index) => second.set(key, index % 3 === 0 ? null : `v2 ${key}`));
    second.set("job:9999", "new");
    await backend.write(second);

    const expected = keys.filter((_, index) => index % 3 !== 0).map((key) => ({ key, value: `v2 ${key}` }));
    expected.push({ key: "job:9999", value: "new" });
    expect(await backend.scan("job:")).to.deep.equal(expected);
  });

  it("keeps values with quotes, unicode and empty strings", async () => {
    await backend.write(new Map([["a", "it's \"quoted\" ü 🚀"], ["b", ""], ["c", "x"]]));
    await backend.write(new Map([["c", null]]));

    expect(await backend.scan("")).to.deep.equal([{ key: "a", value: "it's \"quoted\" ü 🚀" }, { key: "b", value: "" }]);
  });

  it("keeps keys and values with NUL characters", async () => {
    await backend.write(new Map([["nul\0key", "a\0b"], ["plain", "it's"]]));

    expect(await backend.scan("")).to.deep.equal([{ key: "nul\0key", value: "a\0b" }, { key: "plain", value: "it's" }]);
  });

  it("applies a large batch with bound values", async () => {
    // The NUL key keeps the batch off the SQL-script path, so 1000 rows take three bound INSERTs.
    const keys = Array.from({ length: 1000 }, (_, index) => `bound:${String(index).padStart(4, "0")}`);
    await backend.write(new Map([...keys.map((key) => [key, `v ${key}'`] as [string, string]), ["bound:\0", "nul"]]));
    await backend.write(new Map(keys.filter((_, index) => index % 2 === 0).map((key) => [key, null] as [string, null]).concat([["bound:\0", null]])));

    const entries = await backend.scan("bound:");
    expect(entries).to.have.length(500);
    expect(entries[0]).to.deep.equal({ key: "bound:0001", value: "v bound:0001'" });
  });

  it("applies a batch larger than 1 MiB", async () => {
    const big = "x".repeat(700 * 1024);
    await backend.write(new Map([["a", big], ["b", `${big}'`]]));

    const entries = await backend.scan("");
    expect(entries.map((entry) => entry.key)).to.deep.equal(["a", "b"]);
    expect(entries[0]!.value).to.equal(big);
    expect(entries[1]!.value).to.equal(`${big}'`);
  });

  it("writes nothing from a batch SQLite rejects", async () => {
    await backend.write(new Map([["keep", "1"], ["gone", "1"]]));
    await execOn(path.join(dir, "journal.sqlite"), "CREATE TRIGGER reject_bad BEFORE INSERT ON bester_journal WHEN NEW.key = 'bad' BEGIN SELECT RAISE(ABORT, 'rejected by the test'); END;");

    const error = await backend.write(new Map([["gone", null], ["keep", "2"], ["bad", "x"]])).then(() => undefined, (caught: unknown) => caught);
    await backend.write(new Map([["after", "1"]]));

    expect((error as Error).message).to.include("rejected by the test");
    expect(await backend.scan("")).to.deep.equal([{ key: "after", value: "1" }, { key: "gone", value: "1" }, { key: "keep", value: "1" }]);
  });

  it("writes nothing from a batch that fails", async () => {
    await backend.write(new Map([["keep", "1"], ["gone", "1"]]));
    const failing = new Map<string, string | null>([["gone", null], ["keep", "2"], ["bad", undefined as unknown as string]]);

    const error = await backend.write(failing).then(() => undefined, (caught: unknown) => caught);

    expect(error).to.be.instanceOf(Error);
    expect(await backend.scan("")).to.deep.equal([{ key: "gone", value: "1" }, { key: "keep", value: "1" }]);
  });
});
