// How to start each system under test on 127.0.0.1: gearmand with its workers, the naive relay with
// the bench handler, and the Bester NG daemon (which spawns the bench handler itself).

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { descendants } from "./cpu-time.js";
import { findProgram, freePort, startChild, waitForPort, type Child } from "./processes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const tsx = (file: string, ...args: string[]) => [process.execPath, "--import", "tsx", path.join(here, file), ...args];
const START_TIMEOUT_MS = 30_000;

export const GEARMAND_INSTALL_HINT = "gearmand is not installed; skipping its row. Install it with: apt-get install -y gearman-job-server";

/** A started system: the port clients use, the process whose memory counts, and how to stop it. */
export interface RunningSystem {
  port: number;
  /** Process id of the daemon itself, for RSS. */
  pid: number;
  /** Processes whose CPU time counts as the server's, and as its handlers'. */
  serverPids(): number[];
  handlerPids(): number[];
  stop(): Promise<void>;
}

export interface SystemDefinition {
  /** Row label in the table. */
  name: string;
  /** Protocol the load generator speaks to it. */
  protocol: "gearman" | "relay" | "bester";
  /** A reason to skip the row, or undefined when it can run. */
  unavailable(): string | undefined;
  start(options: StartOptions): Promise<RunningSystem>;
}

export interface StartOptions {
  /** Shared secret for the idle test's logins. */
  token: string;
  /** When set, the Bester daemon and its handler process write V8 CPU profiles into this folder. */
  profileDir?: string;
}

async function stopAll(children: Child[], dataDir?: string): Promise<void> {
  for (const child of children.reverse()) {
    await child.stop();
  }
  if (dataDir) {
    await rm(dataDir, { recursive: true, force: true });
  }
}

export const gearmand: SystemDefinition = {
  name: "gearmand",
  protocol: "gearman",
  unavailable: () => (findProgram("gearmand") ? undefined : GEARMAND_INSTALL_HINT),
  async start() {
    const port = await freePort();
    const server = startChild("gearmand", ["gearmand", "--listen=127.0.0.1", `--port=${port}`, "--threads=2", "--log-file=none"]);
    const children = [server];
    let workers: Child;
    try {
      await waitForPort(port, START_TIMEOUT_MS);
      workers = startChild("gearman workers", tsx("load.ts", "gearman-workers", String(port), "4"));
      children.push(workers);
      await workers.waitForLine("ready", START_TIMEOUT_MS);
    } catch (error) {
      await stopAll(children);
      throw error;
    }
    return { port, pid: server.pid, serverPids: () => [server.pid], handlerPids: () => [workers.pid], stop: () => stopAll(children) };
  },
};

export const relay: SystemDefinition = {
  name: "naive relay",
  protocol: "relay",
  unavailable: () => undefined,
  async start() {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "bester-bench-relay-"));
    const socket = path.join(dataDir, "upper.sock");
    const handler = startChild("relay handler", tsx("upper-handler.ts"), { BENCH_HANDLER_SOCKET: socket });
    const children = [handler];
    try {
      await handler.waitForLine("ready", START_TIMEOUT_MS);
      const server = startChild("naive relay", tsx("relay.ts", socket, "4"));
      children.push(server);
      const port = Number((await server.waitForLine("ready", START_TIMEOUT_MS)).split(" ")[1]);
      return { port, pid: server.pid, serverPids: () => [server.pid], handlerPids: () => [handler.pid], stop: () => stopAll(children, dataDir) };
    } catch (error) {
      await stopAll(children, dataDir);
      throw error;
    }
  },
};

function besterDaemon(store: "memory" | "sqlite"): SystemDefinition {
  return {
    name: `Bester NG (${store})`,
    protocol: "bester",
    unavailable: () => undefined,
    async start({ token, profileDir }) {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), `bester-bench-${store}-`));
      const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
      const command = [process.execPath, ...profile, "--import", "tsx", path.join(here, "daemon.ts"), store, dataDir];
      const server = startChild(`Bester NG daemon (${store})`, command, { BENCH_TOKEN: token, ...(profileDir ? { BENCH_PROFILE_DIR: profileDir } : {}) });
      try {
        const port = Number((await server.waitForLine("ready", START_TIMEOUT_MS)).split(" ")[1]);
        // The handler bridge spawns the handler process, so every process below the daemon is a handler.
        return { port, pid: server.pid, serverPids: () => [server.pid], handlerPids: () => descendants(server.pid), stop: () => stopAll([server], dataDir) };
      } catch (error) {
        await stopAll([server], dataDir);
        throw error;
      }
    },
  };
}

export const besterMemory = besterDaemon("memory");
export const besterSqlite = besterDaemon("sqlite");

/** Starts a load generator process in `mode` and resolves with its JSON result line. */
export async function runLoad<T>(args: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<T> {
  const load = startChild(`load generator (${args.join(" ")})`, tsx("load.ts", ...args), env);
  try {
    return JSON.parse(await load.waitForLine("{", timeoutMs)) as T;
  } finally {
    await load.stop();
  }
}

/** Starts an idle-connection holder; resolves once it holds its connections, with the count and its stop function. */
export async function holdIdle(args: string[], timeoutMs: number, env: Record<string, string>): Promise<{ held: number; stop: () => Promise<void> }> {
  const load = startChild(`idle connections (${args.join(" ")})`, tsx("load.ts", ...args), env);
  try {
    const held = Number((await load.waitForLine("ready", timeoutMs)).split(" ")[1]);
    return { held, stop: () => load.stop() };
  } catch (error) {
    await load.stop();
    throw error;
  }
}
