// Runs the daemon as a real child process through the CLI (`bester start --config FILE`), so tests
// can SIGKILL or SIGTERM it and start it again on the same store.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import type { BesterConfig } from "../core/config/types.js";
import { freePort, REPO_ROOT } from "./helper.js";

const CLI = path.join(REPO_ROOT, "core", "cli", "index.ts");

export interface DaemonProcess {
  child: ChildProcess;
  port: number;
  /** Parsed JSON log lines written to stdout so far. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code, or null when a signal ended the process. */
  exited: Promise<number | null>;
}

/**
 * Creates a temporary folder holding `bester.config.json`, with the data folder beside it. The
 * port is fixed, so the server name, which stored jobs carry, stays the same across restarts.
 */
export async function writeDaemonConfig(config: BesterConfig): Promise<{ folder: string; file: string }> {
  const folder = await mkdtemp(path.join(os.tmpdir(), "bester-daemon-"));
  const file = path.join(folder, "bester.config.json");
  const full: BesterConfig = {
    listen: { host: "127.0.0.1", port: await freePort() },
    store: `sqlite://${path.join(folder, "data", "bester.sqlite")}`,
    dataDir: path.join(folder, "data"),
    ...config,
  };
  await writeFile(file, JSON.stringify(full, null, 2));
  return { folder, file };
}

/** Starts the daemon on a config file and resolves once it logs "server ready". */
export async function startDaemon(configFile: string, timeoutMs = 20_000): Promise<DaemonProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "start", "--config", configFile, "--log", "stdout"], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The daemon did not become ready within ${timeoutMs} ms. stderr: ${stderr}`)), timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`The daemon exited with ${code} before it was ready. stderr: ${stderr}`));
    });
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === "server ready") {
        clearTimeout(timer);
        const address = (entry.addresses as string[])[0]!;
        resolve(Number(address.split(":").pop()));
      }
    });
  });
  return { child, port, logs, exited };
}

/** Sends `signal` and waits for the process to exit. */
export async function stopDaemon(daemon: DaemonProcess, signal: NodeJS.Signals): Promise<number | null> {
  daemon.child.kill(signal);
  return daemon.exited;
}
