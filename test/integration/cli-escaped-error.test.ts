import { expect } from "chai";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawnCli, waitForOutput } from "../cli-runner.js";
import { fixtureHandler, waitUntil } from "../helper.js";
import { runningProcesses } from "../processes.js";

/**
 * Returns the JavaScript of a config whose plugin runs `fault`, a statement, 300 ms after the
 * server is ready. `handlers` is the config's handlers section.
 */
function faultyConfig(folder: string, fault: string, handlers: Record<string, unknown> = {}): string {
  return `export default {
  listen: { host: "127.0.0.1", port: 0 },
  dataDir: ${JSON.stringify(path.join(folder, "data"))},
  handlers: ${JSON.stringify(handlers)},
  plugins: [{
    name: "faulty-timer",
    apply(bester) {
      bester.hooks.ready.tap("faulty-timer", () => {
        setTimeout(() => { ${fault} }, 300);
      });
    },
  }],
};
`;
}

describe("bester start with an error outside any tap", function () {
  this.timeout(60_000);
  let folder: string;

  beforeEach(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-escaped-"));
  });

  afterEach(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  /** Starts a server with the faulty plugin and returns its exit code, stderr and JSON log lines. */
  async function runUntilExit(fault: string, handlers?: Record<string, unknown>): Promise<{ code: number; stderr: string; logs: Array<Record<string, unknown>> }> {
    const config = path.join(folder, "bester.config.mjs");
    await writeFile(config, faultyConfig(folder, fault, handlers));
    const logFile = path.join(folder, "bester.log");
    const daemon = spawnCli(["start", "-c", config, "--log", logFile]);
    let stderr = "";
    daemon.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const exited = once(daemon, "exit");
    await waitForOutput(daemon.stderr!, /listening on/);
    const [code] = (await exited) as [number];
    const logs = readFileSync(logFile, "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    return { code, stderr, logs };
  }

  it("logs a thrown error and exits 1", async () => {
    const { code, stderr, logs } = await runUntilExit(`throw new Error("timer broke");`);

    expect(code).to.equal(1);
    expect(stderr).to.include(`bester: uncaught exception: timer broke. The server stops; the log (${path.join(folder, "bester.log")}) has the stack. No accepted job was left.\n`);
    const fatal = logs.find((line) => line.msg === "uncaught exception; the server stops");
    expect(fatal?.level).to.equal(60);
    expect(fatal?.unfinishedJobs).to.deep.equal({ running: 0, queued: 0 });
    expect((fatal?.err as { message: string }).message).to.equal("timer broke");
    expect((fatal?.err as { stack: string }).stack).to.include("bester.config.mjs");
  });

  it("logs an unhandled rejection and exits 1", async () => {
    const { code, stderr, logs } = await runUntilExit(`Promise.reject(new Error("nobody waits"));`);

    expect(code).to.equal(1);
    expect(stderr).to.include("bester: unhandled promise rejection: nobody waits.");
    const fatal = logs.find((line) => line.msg === "unhandled promise rejection; the server stops");
    expect(fatal?.level).to.equal(60);
    expect((fatal?.err as { message: string }).message).to.equal("nobody waits");
  });

  it("stops the handler processes it leaves", async () => {
    // The echo handler exits once it detects that the daemon is gone. The sleep beside it in the
    // handler's process group does not watch the daemon, as many handler programs do not.
    const seconds = String(900 + Math.floor(Math.random() * 99));
    const echo = fixtureHandler("echo");
    const command = `sleep ${seconds} & exec ${(echo.command as string[]).join(" ")}`;
    const sleepRuns = () => runningProcesses().some((entry) => entry.commandLine === `sleep ${seconds}`);

    const { code } = await runUntilExit(`throw new Error("timer broke");`, { echo: { ...echo, command } });

    expect(code).to.equal(1);
    await waitUntil(() => !sleepRuns(), "the handler's sleep to end", 3000);
    expect(sleepRuns()).to.equal(false);
  });
});
