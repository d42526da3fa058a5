// Child processes for the benchmark: every system under test and every load generator runs in its
// own process, started through bash so its open-file limit can be raised for 10 000 connections.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import readline from "node:readline";

/**
 * Open files each child asks for: 10 000 idle connections need more than the usual 1024. Where the
 * hard limit is lower (a container without CAP_SYS_RESOURCE), the child gets the hard limit.
 */
export const CHILD_FILE_LIMIT = 65_536;
const STOP_GRACE_MS = 10_000;

export class Child {
  private lines: string[] = [];
  private stderrTail: string[] = [];
  private waiters: Array<{ prefix: string; resolve: (line: string) => void }> = [];
  private exited: Promise<number | null>;

  constructor(
    readonly label: string,
    private readonly process: ChildProcess,
  ) {
    readline.createInterface({ input: process.stdout! }).on("line", (line) => {
      const index = this.waiters.findIndex((waiter) => line.startsWith(waiter.prefix));
      if (index === -1) {
        this.lines.push(line);
      } else {
        this.waiters.splice(index, 1)[0]!.resolve(line);
      }
    });
    readline.createInterface({ input: process.stderr! }).on("line", (line) => {
      this.stderrTail.push(line);
      this.stderrTail.splice(0, this.stderrTail.length - 20);
    });
    this.exited = new Promise((resolve) => process.once("exit", (code) => resolve(code)));
  }

  get pid(): number {
    return this.process.pid!;
  }

  /** Resolves with the first stdout line starting with `prefix`; rejects if the child exits or the time runs out. */
  async waitForLine(prefix: string, timeoutMs: number): Promise<string> {
    const seen = this.lines.findIndex((line) => line.startsWith(prefix));
    if (seen !== -1) {
      return this.lines.splice(seen, 1)[0]!;
    }
    let timer: NodeJS.Timeout | undefined;
    const line = new Promise<string>((resolve) => this.waiters.push({ prefix, resolve }));
    const failure = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.failure(`printed no "${prefix}" line within ${timeoutMs} ms`)), timeoutMs);
      void this.exited.then((code) => reject(this.failure(`exited with code ${code} before printing "${prefix}"`)));
    });
    try {
      return await Promise.race([line, failure]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the child to exit on its own; kills it after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<number | null> {
    const timer = setTimeout(() => this.process.kill("SIGKILL"), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** SIGTERM, then SIGKILL after a grace period. */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) {
      return;
    }
    this.process.kill("SIGTERM");
    await this.waitForExit(STOP_GRACE_MS);
  }

  private failure(what: string): Error {
    return new Error(`${this.label} ${what}. Its last stderr lines:\n${this.stderrTail.join("\n")}`);
  }
}

/** Starts `command` with the raised open-file limit; `exec` keeps the pid that of the command itself. */
export function startChild(label: string, command: string[], env: Record<string, string> = {}): Child {
  const child = spawn("bash", ["-c", `ulimit -n ${CHILD_FILE_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, "bash", ...command], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Child(label, child);
}

/** The open-file limit children actually get, for the report. */
export function childFileLimit(): string {
  const result = spawnSync("bash", ["-c", `ulimit -n ${CHILD_FILE_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ulimit -n`], { encoding: "utf8" });
  return result.stdout.trim();
}

/** Resident memory of a process in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Math.round(Number(match[1]) / 1024) : NaN;
}

/** A port that was free a moment ago on 127.0.0.1, for servers that cannot listen on port 0. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until something accepts connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.createConnection({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms.`);
}

/** Full path of a program on PATH, or undefined. */
export function findProgram(name: string): string | undefined {
  const result = spawnSync("bash", ["-c", `command -v ${name}`], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : undefined;
}
