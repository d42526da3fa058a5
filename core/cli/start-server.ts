// The work behind `bester start`: load the config, start the server with a spinner over the
// start-up steps, and stop cleanly on SIGINT or SIGTERM. The start command imports this file only
// when it runs, so other commands do not load the whole server.

import { mkdirSync, openSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { pino } from "pino";
import type { Bester } from "../bester.js";
import { createBester } from "../config/builtins.js";
import { loadConfig } from "../config/loader.js";
import type { ResolvedConfig } from "../config/types.js";
import { createLogger, type Logger } from "../log.js";
import { BesterClientError } from "../../plugins/transport-tcp/client-error.js";
import { displayPath } from "./display-path.js";
import { createProgress } from "./spinner.js";
import { stopOnEscapedErrors } from "./escaped-errors.js";
import { terminalLogStream } from "./terminal-log.js";
import { packageVersion } from "./version.js";

export interface StartOptions {
  config?: string;
  listen?: string;
  log?: string;
}

export async function start(options: StartOptions): Promise<void> {
  const listen = options.listen === undefined ? undefined : parseListen(options.listen);
  const progress = await createProgress();
  progress.step("loading config");
  let config: ResolvedConfig;
  try {
    config = await loadConfig({ file: options.config, listen });
  } catch (error) {
    progress.fail("loading config failed");
    throw error;
  }

  const { log, logTarget } = openLog(config, options.log);
  // One line that ties the log to a version, a config file and a process, for reports and restarts.
  log.info({ version: packageVersion(), node: process.version, pid: process.pid, config: config.file, dataDir: config.dataDir }, "server starting");
  progress.step("applying plugins");
  let bester: Bester;
  try {
    bester = await createBester(config, { log });
  } catch (error) {
    progress.fail("applying plugins failed");
    throw error;
  }
  stopOnEscapedErrors(log, logTarget, () => ({ ...countJobs(bester, bester.engine.completingJobs), text: describeLeft(bester) }));

  // Installed before the start, so a signal during a slow start-up (a Redis store, handlers that
  // take seconds to connect) still stops the handlers it started instead of leaving them behind.
  let started = false;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal skips the drain. Stored jobs run again after the next start, and the
      // handler bridge sends SIGTERM to the handler process groups as this process exits.
      process.stderr.write(`${signal} received again; stopping at once. ${describeLeft(bester)}\n`);
      log.warn({ signal }, "second stop signal; exiting without waiting for running jobs");
      process.exit(1);
    }
    stopping = true;
    if (started) {
      process.stderr.write(`${signal} received; ${describeDrain(bester, signal)}\n`);
    } else {
      progress.fail(`${signal} received during start-up; stopping`);
    }
    bester
      .stop()
      .then(() => {
        process.stderr.write(`${describeStopped(bester)}\n`);
        process.exit(0);
      })
      .catch((error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));

  let addresses: string[];
  try {
    addresses = await bester.start((step) => {
      if (!stopping) {
        progress.step(step);
      }
    });
  } catch (error) {
    if (stopping) {
      // The signal's stop ends the process; a start-up step it cut short is no failure to report.
      return new Promise<never>(() => {});
    }
    progress.fail("start-up failed");
    // The log may be a running server's, as when both use one data folder, so name this process.
    log.error({ err: error, pid: process.pid }, "start-up failed; this process stops");
    await bester.stop().catch(() => undefined);
    throw error;
  }

  if (stopping) {
    return;
  }
  started = true;

  const types = bester.scheduler.typeNames();
  // The server name differs from the listening address when server.name is set, as behind NAT.
  const named = addresses.includes(bester.serverName) ? "" : ` as ${bester.serverName}`;
  progress.succeed(`listening on ${addresses.join(", ") || "no address"}${named}`);
  if (addresses.length === 0) {
    // omitBuiltins can leave out transport-tcp without a transport plugin in its place.
    process.stderr.write("warning: no plugin opened a listener, so no client can connect. Remove transport-tcp from omitBuiltins or add a transport plugin.\n");
  }
  process.stderr.write(`handlers: ${types.join(", ") || "(none)"}; store: ${bester.store.description}; logs: ${logTarget}\n`);
  const resumed = bester.engine.resumedJobs;
  if (resumed > 0) {
    // After a crash this is the first sign on the terminal that the previous run left work behind.
    process.stderr.write(`resumed ${resumed} stored job${resumed === 1 ? "" : "s"} left unfinished by the previous run\n`);
  }
  const disconnected = bester.scheduler.stats().filter((entry) => entry.workers === 0).map((entry) => entry.type);
  if (disconnected.length > 0) {
    // Their jobs wait rather than fail, so warn here; otherwise the first sign is a handlerUnavailable job.
    process.stderr.write(`warning: no connection yet to handler${disconnected.length === 1 ? "" : "s"} ${disconnected.join(", ")}; check the command and socket in the config and the log\n`);
  }
  process.stderr.write("Press Ctrl-C to stop.\n");
}

/** Counts the jobs on a handler (with `completing` ones still carrying out their director) and the queued ones. */
function countJobs(bester: Bester, completing = 0): { running: number; queued: number } {
  let running = completing;
  let queued = 0;
  for (const entry of bester.scheduler.stats()) {
    running += entry.running;
    queued += entry.queued;
  }
  return { running, queued };
}

/** States what becomes of `count` accepted jobs left at a stop, which depends on the store. */
function fateOf(bester: Bester, count: number): string {
  const one = count === 1;
  return bester.store.durable ? `${one ? "stays" : "stay"} stored and run${one ? "s" : ""} after the next start` : `${one ? "is" : "are"} lost, because the store is memory`;
}

function jobsText(count: number): string {
  return `${count} accepted job${count === 1 ? "" : "s"}`;
}

/** Describes what the stop waits for, so the terminal does not stay silent through the drain unexplained. */
function describeDrain(bester: Bester, signal: string): string {
  const { running, queued } = countJobs(bester);
  if (running === 0) {
    return "stopping";
  }
  const seconds = bester.config.shutdown.drainTimeoutMs / 1000;
  // The subject, "jobs still running then, and the queued", is plural whatever the counts.
  return `stopping: waiting up to ${seconds} s for ${running} running job${running === 1 ? "" : "s"}. Jobs still running then, and the ${queued} queued, ${fateOf(bester, 2)}. ${signal === "SIGINT" ? "Press Ctrl-C again" : `Send ${signal} again`} to stop at once.`;
}

/** Counts the accepted jobs a stop at once leaves, and states what becomes of them. */
function describeLeft(bester: Bester): string {
  const { running, queued } = countJobs(bester, bester.engine.completingJobs);
  const total = running + queued;
  if (total === 0) {
    return "No accepted job was left.";
  }
  return `${jobsText(total)} (${running} running, ${queued} queued) ${fateOf(bester, total)}.`;
}

/** Returns the last line after a stop: how many accepted jobs did not end, and what becomes of them. */
function describeStopped(bester: Bester): string {
  const { queued, running } = bester.unfinishedJobs();
  const total = queued + running;
  if (total === 0) {
    return "stopped";
  }
  const parts: string[] = [];
  if (running > 0) {
    parts.push(`${running} still running after the ${bester.config.shutdown.drainTimeoutMs / 1000} s drain time`);
  }
  if (queued > 0) {
    parts.push(`${queued} queued`);
  }
  return `stopped: ${jobsText(total)} (${parts.join(", ")}) ${fateOf(bester, total)}`;
}

/** JSON log lines go to stdout for services; on a terminal they go to a file so the console stays readable. */
function openLog(config: ResolvedConfig, destination: string | undefined): { log: Logger; logTarget: string } {
  const target = destination ?? (process.stdout.isTTY ? path.join(config.dataDir, "bester.log") : "stdout");
  if (target === "stdout" || target === "stderr") {
    return { log: createLogger({ level: config.logLevel, destination: target === "stdout" ? 1 : 2 }), logTarget: target };
  }

  const logFile = path.resolve(target);
  // Opened here rather than by pino in the background: when start-up fails and the process exits
  // at once, pino's exit flush throws "sonic boom is not ready yet" on a file that is still opening.
  let descriptor: number;
  try {
    mkdirSync(path.dirname(logFile), { recursive: true });
    descriptor = openSync(logFile, "a");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "EISDIR" ? "it is a folder" : (error as Error).message;
    throw new BesterClientError("invalidArgument", `The log file ${logFile} cannot be opened: ${reason}. Pass a file path, stdout or stderr to --log.`, { cause: error });
  }
  const file = pino.destination({ dest: descriptor, sync: false });
  // On a terminal, warnings and errors also go to stderr as readable lines, so problems are seen at
  // once. The file keeps the JSON lines, stacks included.
  const stream = process.stdout.isTTY
    ? pino.multistream([
        { level: "trace", stream: file },
        { level: "warn", stream: terminalLogStream() },
      ])
    : file;
  return { log: createLogger({ level: config.logLevel, stream }), logTarget: displayPath(logFile) };
}

/** Parses `--listen` as `port`, `host:port` or `[ipv6]:port`. */
function parseListen(value: string): { host?: string; port: number } {
  const colon = value.lastIndexOf(":");
  const portText = colon === -1 ? value : value.slice(colon + 1);
  const host = colon === -1 ? undefined : value.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(portText);
  // A host with a colon is an IPv6 address, in brackets or not; "127.0.0.1:2223:5" is a mistake.
  const badHost = host === "" || (host !== undefined && host.includes(":") && isIP(host) !== 6);
  if (!/^[0-9]+$/.test(portText) || port < 1 || port > 65535 || badHost) {
    throw new BesterClientError("invalidArgument", `--listen "${value}" is not a port or host:port. Examples: --listen 2223, --listen 127.0.0.1:2223.`);
  }
  return { host, port };
}
