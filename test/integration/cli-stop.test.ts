import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runCli, spawnCli, waitForOutput } from "../cli-runner.js";
import { fixtureHandler, waitUntil } from "../helper.js";
import { runningProcesses } from "../processes.js";

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

  async function start(configFile = config): Promise<string> {
    daemon = spawnCli(["start", "-c", configFile, "--log", path.join(folder, "bester.log")]);
    const [, address] = await waitForOutput(daemon.stderr!, /listening on (127\.0\.0\.1:\d+)/);
    return address!;
  }

  /** Writes a config with one handler connection and a 1 s drain time, so a stop leaves one job running and the rest queued. */
  async function writeShortDrainConfig(name: string, store: string): Promise<string> {
    const file = path.join(folder, name);
    await writeFile(
      file,
      JSON.stringify({
        listen: { host: "127.0.0.1", port: 0 },
        registration: true,
        store,
        dataDir: path.join(folder, `${name}-data`),
        shutdown: { drainTimeoutMs: 1000 },
        handlers: { slow: fixtureHandler("delay-echo", { connections: 1, env: { DELAY_MS: "20000" } }) },
      }),
    );
    return file;
  }

  /** Submits `count` slow jobs, stops the server with one Ctrl-C and returns its exit code and stderr. */
  async function submitAndStop(server: string, count: number): Promise<{ code: number; stderr: string }> {
    for (let index = 1; index <= count; index += 1) {
      const submitted = await runCli(["submit", "--server", server, "-u", "alice", "-p", "pw", "--register", "-t", "slow", "--text", `job ${index}`, "--no-wait"]);
      expect(submitted.code).to.equal(0);
    }
    // The one handler connection takes the first job at once; the others wait in the queue.
    await new Promise((resolve) => setTimeout(resolve, 500));

    const stopped = daemon!;
    let stderr = "";
    stopped.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const exited = once(stopped, "exit");
    stopped.kill("SIGINT");
    const [code] = (await exited) as [number];
    return { code, stderr };
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
    let after = "";
    first.stderr!.on("data", (chunk: Buffer) => (after += chunk.toString("utf8")));
    const stoppedAt = Date.now();
    first.kill("SIGINT");
    const [code] = (await once(first, "exit")) as [number];
    const stopMs = Date.now() - stoppedAt;

    expect(waiting).to.include("stay stored and run after the next start");
    expect(waiting).to.include("Press Ctrl-C again to stop at once");
    expect(code).to.equal(1);
    expect(after).to.include("SIGINT received again; stopping at once. 2 accepted jobs (2 running, 0 queued) stay stored and run after the next start.\n");
    // Without the second signal the drain alone would take 10 s.
    expect(stopMs).to.be.below(8000);

    await start();
    const logText = () => readFileSync(path.join(folder, "bester.log"), "utf8");
    await waitUntil(() => logText().includes("resumed jobs left unfinished"), "the restarted server resumed the jobs");
    const resumedLine = logText().split("\n").find((line) => line.includes("resumed jobs left unfinished"))!;
    expect((JSON.parse(resumedLine) as { resumed: number }).resumed).to.equal(2);

    daemon!.kill("SIGKILL");
  });

  it("counts the jobs a durable store keeps", async () => {
    const durable = await writeShortDrainConfig("durable.json", `sqlite://${path.join(folder, "durable.sqlite")}`);
    const server = await start(durable);

    const { code, stderr } = await submitAndStop(server, 3);

    expect(code).to.equal(0);
    expect(stderr).to.include("stopped: 3 accepted jobs (1 still running after the 1 s drain time, 2 queued) stay stored and run after the next start\n");

    // The log file is shared with the other tests, so only a line added by this restart counts.
    const logText = () => readFileSync(path.join(folder, "bester.log"), "utf8");
    const resumedLines = () => logText().split("\n").filter((line) => line.includes("resumed jobs left unfinished"));
    const earlier = resumedLines().length;
    daemon = spawnCli(["start", "-c", durable, "--log", path.join(folder, "bester.log")]);
    const [terminalLine] = await waitForOutput(daemon.stderr!, /resumed \d+ stored jobs? left unfinished by the previous run\n/);
    await waitUntil(() => resumedLines().length > earlier, "the restarted server resumed the jobs");
    expect((JSON.parse(resumedLines().at(-1)!) as { resumed: number }).resumed).to.equal(3);
    expect(terminalLine).to.equal("resumed 3 stored jobs left unfinished by the previous run\n");

    daemon!.kill("SIGKILL");
  });

  it("counts the jobs the memory store loses", async () => {
    const memory = await writeShortDrainConfig("memory.json", "memory");
    const server = await start(memory);

    const { code, stderr } = await submitAndStop(server, 2);

    expect(code).to.equal(0);
    expect(stderr).to.include("stopped: 2 accepted jobs (1 still running after the 1 s drain time, 1 queued) are lost, because the store is memory\n");
  });

  it("SIGTERM during start-up stops the handlers", async () => {
    // A unique sleep time, so this test finds its own handler process among the machine's.
    const seconds = String(900 + Math.floor(Math.random() * 99));
    const slowStart = path.join(folder, "slow-start.json");
    await writeFile(
      slowStart,
      JSON.stringify({
        listen: { host: "127.0.0.1", port: 0 },
        dataDir: path.join(folder, "slow-start-data"),
        handlers: { never: { command: ["sleep", seconds] } },
      }),
    );
    const starting = spawnCli(["start", "-c", slowStart, "--log", path.join(folder, "slow-start.log")]);
    let stderr = "";
    starting.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const handlerRuns = () => runningProcesses().some((entry) => entry.commandLine === `sleep ${seconds}`);
    await waitUntil(handlerRuns, "the handler process to start");

    const exited = once(starting, "exit");
    starting.kill("SIGTERM");
    const [code] = (await exited) as [number];

    expect(code).to.equal(0);
    expect(stderr).to.include("SIGTERM received during start-up; stopping\n");
    expect(stderr).to.include("stopped");
    expect(stderr).to.not.include("listening on");
    expect(handlerRuns()).to.equal(false);
  });
});
