// Starts a real redis-server on a free loopback port for store tests, with persistence off and its
// files in a temporary folder.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort } from "./helper.js";

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts redis-server, on `port` when given (to restart one), with `args` added to its command line,
 * and resolves once it accepts connections.
 */
export async function startRedis(options: { port?: number; args?: string[] } = {}): Promise<RedisServer> {
  const folder = await mkdtemp(path.join(os.tmpdir(), "bester-redis-"));
  const port = options.port ?? (await freePort());
  const child: ChildProcess = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder, ...(options.args ?? [])], {
    stdio: "ignore",
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("error", () => undefined);

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (await canConnect(port)) {
      break;
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`redis-server did not start on port ${port}. Install it with: apt-get install -y redis-server`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      child.kill("SIGTERM");
      await exited;
      await rm(folder, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
