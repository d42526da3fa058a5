import { expect } from "chai";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import sqlite3 from "sqlite3";
import { SqliteJournalBackend } from "../../plugins/journal/sqlite-backend.js";
import { FILE_VALUE_CHARS } from "../../plugins/journal/value-files.js";
import { REPO_ROOT } from "../helper.js";

/** Runs `sql` on a second connection to the journal's file and returns its rows, as another program would. */
async function queryOn(file: string, sql: string): Promise<Array<Record<string, unknown>>> {
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const opened = new sqlite3.Database(file, (error) => (error ? reject(error) : resolve(opened)));
  });
  const rows = await new Promise<Array<Record<string, unknown>>>((resolve, reject) => db.all(sql, (error, found) => (error ? reject(error) : resolve(found as Array<Record<string, unknown>>))));
  await new Promise<void>((resolve) => db.close(() => resolve()));
  return rows;
}

/** Waits until the value folder contains `count` files, because write() does not wait for the removal of replaced files. */
async function filesAfterRemovals(folder: string, count: number): Promise<string[]> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const names = await readdir(folder);
    if (names.length === count) {
      return names;
    }
    await sleep(10);
  }
  return readdir(folder);
}

describe("sqlite journal value files (unit)", () => {
  let dir: string;
  let file: string;
  let folder: string;
  let backend: SqliteJournalBackend;
  const large = (mark: string) => `${mark}${"x".repeat(FILE_VALUE_CHARS)}`;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "bester-journal-files-"));
    file = path.join(dir, "journal.sqlite");
    folder = `${file}-values`;
    backend = new SqliteJournalBackend(file);
    await backend.open();
  });

  afterEach(async () => {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("stores a large value in its own file", async () => {
    await backend.write(new Map([["job/a", large("a")], ["job/b", "small"]]));

    const rows = await queryOn(file, "SELECT key, length(value) AS chars FROM bester_journal ORDER BY key");
    expect(rows.map((row) => row.key)).to.deep.equal(["job/a", "job/b"]);
    expect(rows[0]!.chars, "the row of the large value holds only a reference").to.be.below(64);
    expect(rows[1]!.chars).to.equal(5);
    expect(await readdir(folder)).to.have.length(1);
    expect(await backend.scan("job/")).to.deep.equal([{ key: "job/a", value: large("a") }, { key: "job/b", value: "small" }]);
  });

  it("keeps values below the limit in the table", async () => {
    const below = "y".repeat(FILE_VALUE_CHARS - 1);
    await backend.write(new Map([["job/a", below]]));

    expect(await readdir(folder)).to.deep.equal([]);
    expect(await backend.scan("job/")).to.deep.equal([{ key: "job/a", value: below }]);
  });

  it("removes the file of a replaced value", async () => {
    await backend.write(new Map([["job/a", large("first")]]));
    const [first] = await readdir(folder);
    await backend.write(new Map([["job/a", large("second")]]));

    const names = await filesAfterRemovals(folder, 1);
    expect(names).to.have.length(1);
    expect(names[0]).to.not.equal(first);
    expect(await backend.scan("job/")).to.deep.equal([{ key: "job/a", value: large("second") }]);
  });

  it("removes the file of a deleted key", async () => {
    await backend.write(new Map([["job/a", large("a")], ["job/b", large("b")]]));
    await backend.write(new Map([["job/a", null]]));

    expect(await filesAfterRemovals(folder, 1)).to.have.length(1);
    expect(await backend.scan("job/")).to.deep.equal([{ key: "job/b", value: large("b") }]);
  });

  it("reads stored files and sweeps stray ones after a reopen", async () => {
    await backend.write(new Map([["job/a", large("a")]]));
    await backend.close();
    // A file whose reference never committed, as a crash between the two leaves it.
    await writeFile(path.join(folder, "stray"), large("stray"));

    backend = new SqliteJournalBackend(file);
    await backend.open();

    expect(await readdir(folder)).to.have.length(1);
    expect(await readdir(folder)).to.not.include("stray");
    expect(await backend.scan("job/")).to.deep.equal([{ key: "job/a", value: large("a") }]);
  });

  it("removes the files of a batch SQLite rejects", async () => {
    await backend.write(new Map([["job/keep", large("keep")]]));
    await queryOn(file, "CREATE TRIGGER reject_bad BEFORE INSERT ON bester_journal WHEN NEW.key = 'job/bad' BEGIN SELECT RAISE(ABORT, 'rejected by the test'); END;");

    const error = await backend.write(new Map([["job/keep", large("new")], ["job/bad", large("bad")]])).then(() => undefined, (caught: unknown) => caught);

    expect((error as Error).message).to.include("rejected by the test");
    expect(await readdir(folder)).to.have.length(1);
    expect(await backend.scan("job/")).to.deep.equal([{ key: "job/keep", value: large("keep") }]);
  });

  it("names the key when a stored file is missing", async () => {
    await backend.write(new Map([["job/a", large("a")]]));
    const [name] = await readdir(folder);
    await rm(path.join(folder, name!));

    const error = await backend.scan("job/").then(() => undefined, (caught: unknown) => caught);

    expect((error as Error).message).to.include('journal key "job/a"');
    expect((error as Error).message).to.include("Restore the file, or delete the key");
  });

  it("leaves no value file behind when one of a batch's file writes fails", async () => {
    // `ulimit -f 1024` caps every file the child writes at 1 MiB; Node.js ignores SIGXFSZ, so a
    // write past the cap fails with EFBIG instead of killing the process.
    const script = path.join(REPO_ROOT, "test", "fixtures", "journal", "write-two-large-values.ts");
    const command = `ulimit -f 1024 && exec "$0" --import tsx "$@"`;
    const limited = path.join(dir, "limited.sqlite");
    const { stdout } = await promisify(execFile)("bash", ["-c", command, process.execPath, script, limited, String(FILE_VALUE_CHARS), String(2 * 1024 * 1024)], { cwd: REPO_ROOT });

    const result = JSON.parse(stdout) as { errorCode: string; filesAfterFailure: string[]; keysAfterFailure: string[]; keysAfterNext: string[] };
    expect(result.errorCode).to.equal("EFBIG");
    expect(result.filesAfterFailure, "neither the file that was written nor the partial one is left").to.deep.equal([]);
    expect(result.keysAfterFailure).to.deep.equal([]);
    expect(result.keysAfterNext).to.deep.equal(["job/next"]);
  });
});
