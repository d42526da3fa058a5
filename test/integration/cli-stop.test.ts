import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runCli, spawnCli, waitForOutput } from "../cli-runner.js";
import { fixtureHandler, waitUntil } from "../helper.js";

// What `bester start` prints and does on Ctrl-C while jobs run: the first signal waits for the
// running jobs and prints that it does, a second one stops at once and leaves the jobs stored.
describe("bester start stopped while jobs run", function () {
  this.timeout(60_000);
  let folder: string;
  let config: string;
  let daemon: ChildProcess | undefined;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-cli-stop-"));
    config = path.join(folder, "bester.config.json");
    await writeFile(
      config,
      JSON.stringify({
        listen: { host: "127.0.0.1", port: 0 },
        registration: true,
        dataDir: path.join(folder, "data"),
        handlers: { slow: fixtureHandler("delay-echo", { connections: 2, env: { DELAY_MS: "20000" } }) },
      }),
    );
  });

  after(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill("SIGKILL");
    }
    await rm(folder, { recursive: true, force: true });
  });

  async function start(): Promise<string> {
    daemon = spawnCli(["start", "-c", config, "--log", path.join(folder, "bester.log")]);
    const [, address] = await waitForOutput(daemon.stderr!, /listening on (127\.0\.0\.1:\d+)/);
    return address!;
  }

  it("start --log with a folder exits 1", async () => {
    const result = await runCli(["start", "-c", config, "--log", folder]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include(`bester: The log file ${folder} cannot be opened: it is a folder. Pass a file path, stdout or stderr to --log. [invalidArgument]`);
  });

  it("second Ctrl-C stops at once and keeps the jobs", async () => {
    const server = await start();
    for (const text of ["one", "two"]) {
      const submitted = await runCli(["submit", "--server", server, "-u", "alice", "-p", "pw", "--register", "-t", "slow", "--text", text, "--no-wait"]);
      expect(submitted.code).to.equal(0);
    }
    // Both handler connections are idle, so the jobs start at once; each then runs for 20 s.
    await new Promise((resolve) => setTimeout(resolve, 500));

    const first = daemon!;
    first.kill("SIGINT");
    const [waiting] = await waitForOutput(first.stderr!, /SIGINT received; stopping: waiting up to 10 s for 2 running jobs\. [^\n]*\n/);
    const stoppedAt = Date.now();
    first.kill("SIGINT");
    const [code] = (await once(first, "exit")) as [number];
    const stopMs = Date.now() - stoppedAt;

    expect(waiting).to.include("stay stored and run after the next start");
    expect(waiting).to.include("Press Ctrl-C again to stop at once");
    expect(code).to.equal(1);
    // Without the second signal the drain alone would take 10 s.
    expect(stopMs).to.be.below(8000);

    await start();
    const logText = () => readFileSync(path.join(folder, "bester.log"), "utf8");
    await waitUntil(() => logText().includes("resumed jobs left unfinished"), "the restarted server resumed the jobs");
    const resumedLine = logText().split("\n").find((line) => line.includes("resumed jobs left unfinished"))!;
    expect((JSON.parse(resumedLine) as { resumed: number }).resumed).to.equal(2);

    daemon!.kill("SIGKILL");
  });
});
