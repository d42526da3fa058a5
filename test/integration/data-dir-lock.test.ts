import { expect } from "chai";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { startDaemon, stopDaemon, writeDaemonConfig, type DaemonProcess } from "../daemon-process.js";
import { runCli } from "../cli-runner.js";
import { fixtureHandler } from "../helper.js";
import { BesterClient } from "../../plugins/transport-tcp/client.js";

describe("one server per data folder", function () {
  this.timeout(60_000);
  let folder: string;
  const daemons: DaemonProcess[] = [];

  afterEach(async () => {
    for (const daemon of daemons.splice(0)) {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) {
        await stopDaemon(daemon, "SIGKILL");
      }
    }
    await rm(folder, { recursive: true, force: true });
  });

  it("refuses a second server and leaves the running one's sockets and jobs alone", async () => {
    const config = await writeDaemonConfig({ registration: true, handlers: { echo: fixtureHandler("delay-echo", { env: { DELAY_MS: "1500" } }) } });
    folder = config.folder;
    const dataDir = path.join(folder, "data");
    const first = await startDaemon(config.file);
    daemons.push(first);
    const client = await BesterClient.connect({ port: first.port });
    await client.register("alice", "secret-pass");
    await client.auth("alice", "secret-pass");
    // In the journal while the second server starts, which must not run it as well.
    const running = client.run("echo", "once");

    const secondStart = await startDaemon(config.file).then(
      (second) => {
        daemons.push(second);
        return "started";
      },
      (error: Error) => error.message,
    );

    expect(secondStart).to.include("[dataDirInUse]");
    expect(secondStart).to.include(`process ${first.child.pid}`);
    expect(existsSync(path.join(dataDir, "sockets", "echo.sock")), "the first server's handler socket").to.equal(true);
    expect((await readFile(path.join(dataDir, "bester.pid"), "utf8")).trim()).to.equal(String(first.child.pid));
    const result = await running;
    expect(result.outputs.map((output) => output.payload.data)).to.deep.equal(["once"]);
    expect(result.notification.status).to.equal("completed");
    await client.close();

    // A second server that had resumed the stored job would have stored its output for alice.
    const later = await BesterClient.connect({ port: first.port });
    const stored: unknown[] = [];
    later.on("output", (event) => stored.push(event.payload.data));
    await later.auth("alice", "secret-pass");
    await new Promise((resolve) => setTimeout(resolve, 500));
    await later.close();
    expect(stored).to.deep.equal([]);
  });

  it("reports dataDirInUse alone when logging to a file", async () => {
    const config = await writeDaemonConfig({});
    folder = config.folder;
    const first = await startDaemon(config.file);
    daemons.push(first);

    const second = await runCli(["start", "--config", config.file, "--log", path.join(folder, "logs", "second.log")]);

    expect(second.code).to.equal(1);
    expect(second.stderr).to.match(/^bester: .* \[dataDirInUse\]$/m);
    expect(second.stderr).not.to.include("sonic boom");
    expect(second.stderr).not.to.include("    at ");
    const lines = (await readFile(path.join(folder, "logs", "second.log"), "utf8")).trim().split("\n").map((line) => JSON.parse(line) as { msg: string; err?: { message: string } });
    const failure = lines.find((line) => line.msg === "start-up failed; this process stops");
    expect(failure?.err?.message).to.include(`process ${first.child.pid}`);
    expect(lines.map((line) => line.msg)).to.include("stopped before start-up finished");
    expect(lines.map((line) => line.msg)).not.to.include("server stopped");
  });

  it("starts after a server that was killed left its pid file", async () => {
    const config = await writeDaemonConfig({});
    folder = config.folder;
    const pidFile = path.join(folder, "data", "bester.pid");
    const killed = await startDaemon(config.file);
    await stopDaemon(killed, "SIGKILL");
    expect(existsSync(pidFile), "a killed server cannot remove its pid file").to.equal(true);

    const next = await startDaemon(config.file);
    daemons.push(next);
    expect((await readFile(pidFile, "utf8")).trim()).to.equal(String(next.child.pid));

    await stopDaemon(next, "SIGTERM");
    expect(existsSync(pidFile), "a stopped server removes its pid file").to.equal(false);
  });

  it("takes over a pid file whose process is a zombie", async () => {
    const config = await writeDaemonConfig({});
    folder = config.folder;
    // The forked child exits at once, and its parent never waits for it: a zombie for five
    // seconds, as a killed server is until its parent reaps it. A shell would reap it on a busy
    // machine, when the child ends before the shell's next command.
    const script = "import os, sys, time\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nprint(pid, flush=True)\ntime.sleep(5)";
    const holder = spawn("python3", ["-c", script]);
    const zombie = await new Promise<number>((resolve) => holder.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString("utf8").trim()))));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const state = readFileSync(`/proc/${zombie}/stat`, "utf8").split(") ")[1]!.charAt(0);
    const pidFile = path.join(folder, "data", "bester.pid");
    await mkdir(path.dirname(pidFile), { recursive: true });
    await writeFile(pidFile, `${zombie}\n`);

    const next = await startDaemon(config.file);
    daemons.push(next);
    holder.kill("SIGKILL");

    expect(state).to.equal("Z");
    expect((await readFile(pidFile, "utf8")).trim()).to.equal(String(next.child.pid));
  });
});
