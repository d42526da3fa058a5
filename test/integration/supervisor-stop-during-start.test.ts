// HandlerSupervisor.start() awaits mkdir and rm before it spawns. A stop() in that gap, as when the
// restart timer fires during shutdown, finds no process, so start() must not spawn one afterwards.

import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { pino } from "pino";
import { HandlerSupervisor } from "../../plugins/handler-bridge/supervisor.js";

/** Ids of the processes whose command line is `command`, read from /proc. */
function processesRunning(command: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^[0-9]+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim() === command;
      } catch {
        return false;
      }
    })
    .map(Number);
}

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

    const running = processesRunning(marker);
    for (const pid of running) {
      process.kill(pid, "SIGKILL");
    }
    await rm(folder, { recursive: true, force: true });

    expect(running, "handler processes left after stop()").to.deep.equal([]);
  });
});
