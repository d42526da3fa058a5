// HandlerSupervisor.start() awaits mkdir and rm before it spawns. A stop() in that gap, as when the
// restart timer fires during shutdown, finds no process, so start() must not spawn one afterwards.

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { pino } from "pino";
import { HandlerSupervisor } from "../../plugins/handler-bridge/supervisor.js";
import { runningProcesses } from "../processes.js";

describe("supervisor stop during a start", () => {
  it("leaves no handler process running", async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), "bester-supervisor-stop-"));
    const seconds = `30.${process.pid}`;
    const marker = `sleep ${seconds}`;
    const supervisor = new HandlerSupervisor(
      "leak",
      { command: ["sleep", seconds], socket: path.join(folder, "leak.sock"), cwd: folder, env: {} } as never,
      pino({ level: "silent" }),
    );

    const starting = supervisor.start();
    await supervisor.stop();
    await starting;
    await new Promise((resolve) => setTimeout(resolve, 300));

    const running = runningProcesses()
      .filter((entry) => entry.commandLine === marker)
      .map((entry) => entry.pid);
    for (const pid of running) {
      process.kill(pid, "SIGKILL");
    }
    await rm(folder, { recursive: true, force: true });

    expect(running, "handler processes left after stop()").to.deep.equal([]);
  });
});
