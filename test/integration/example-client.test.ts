import { expect } from "chai";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { REPO_ROOT, startServer, tsHandler, type TestServer } from "../helper.js";

const run = promisify(execFile);

describe("example client count-files", () => {
  let server: TestServer;
  let folder: string;

  before(async () => {
    server = await startServer({ handlers: { wordcount: tsHandler("examples/handlers/wordcount.ts") } });
    await new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE)).add("alice", "alice-pw");
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-count-files-"));
  });

  after(async () => {
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it("prints word counts of several files", async () => {
    const first = path.join(folder, "first.txt");
    const second = path.join(folder, "second.txt");
    await writeFile(first, "one two three\nfour\n");
    await writeFile(second, "just five words right here");

    const { stdout } = await run(
      process.execPath,
      ["--import", "tsx", path.join(REPO_ROOT, "examples", "client", "count-files.ts"), "--server", `127.0.0.1:${server.port}`, "--user", "alice", first, second],
      { cwd: REPO_ROOT, env: { ...process.env, BESTER_PASSWORD: "alice-pw" } },
    );

    expect(stdout).to.equal(`${first}: 4 words, 2 lines\n${second}: 5 words, 1 line\n`);
  });
});
