// Runs the real `bester` command line in a child process, for CLI tests.

import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { REPO_ROOT } from "./helper.js";

export const CLI_ENTRY = path.join(REPO_ROOT, "core", "cli", "index.ts");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Text or bytes written to stdin, which is then closed. */
  input?: string | Buffer;
  cwd?: string;
  env?: Record<string, string>;
}

/** Starts `bester ARGS` without waiting for it; the caller reads its streams. */
export function spawnCli(args: string[], options: CliOptions = {}): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", CLI_ENTRY, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, BESTER_PASSWORD: "", ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin!.end(options.input ?? "");
  return child;
}

/** Runs `bester ARGS` to completion. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Resolves once the stream's accumulated text matches `pattern`, with the match. */
export function waitForOutput(stream: NodeJS.ReadableStream, pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  let text = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.off("data", onData);
      reject(new Error(`No output matching ${pattern} within ${timeoutMs} ms; got: ${text}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      text += chunk.toString("utf8");
      const match = text.match(pattern);
      if (match) {
        clearTimeout(timer);
        stream.off("data", onData);
        resolve(match);
      }
    };
    stream.on("data", onData);
  });
}
