import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SqliteJournalBackend } from "../../plugins/journal/sqlite-backend.js";

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

  it("writes nothing from a batch that fails", async () => {
    await backend.write(new Map([["keep", "1"], ["gone", "1"]]));
    const failing = new Map<string, string | null>([["gone", null], ["keep", "2"], ["bad", undefined as unknown as string]]);

    const error = await backend.write(failing).then(() => undefined, (caught: unknown) => caught);

    expect(error).to.be.instanceOf(Error);
    expect(await backend.scan("")).to.deep.equal([{ key: "gone", value: "1" }, { key: "keep", value: "1" }]);
  });
});
