// Starts a handler process from its configured command, restarts it with backoff when it exits,
// and stops it on shutdown. The process learns its socket from BESTER_SOCKET and the daemon's
// process id from BESTER_DAEMON_PID.

import { existsSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import readline from "node:readline";
import type { Logger } from "pino";
import type { ResolvedHandlerConfig } from "../../core/config/types.js";
import { signalGroup, trackGroup, untrackGroup, waitForGroupExit } from "./process-group.js";
import { shellScript } from "./shell-command.js";
import { StderrBudget } from "./stderr-budget.js";

const MIN_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;
/**
 * A process that ran this long, or replied to a job, counts as healthy, so its next crash restarts
 * quickly again. A reply shows that the handler works, so a crash after one most likely came from
 * a job, and the engine isolates jobs until it finds that one.
 */
const HEALTHY_RUN_MS = 10_000;
const STOP_GRACE_MS = 5_000;
/** stderr lines of one process that warn per STDERR_WINDOW_MS; the rest of the window go to debug. */
const STDERR_WARN_LINES = 20;
const STDERR_WINDOW_MS = 60_000;

export class HandlerSupervisor {
  /** Code of the last failed start, such as ENOENT, until a start succeeds. */
  private lastSpawnError: string | undefined;
  private child: ChildProcess | undefined;
  private restartDelayMs = MIN_RESTART_DELAY_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private crashes = 0;
  /** Crashes since the handler last ran healthy; sets how loudly the next one is logged. */
  private crashesInARow = 0;
  private stopping = false;
  /** Whether the running process replied to a job since it started. */
  private replied = false;
  private startedAt = 0;
  /** The end of the last process for the status report, e.g. "exit code 1" or "signal SIGKILL". */
  private lastExit: string | undefined;

  constructor(
    private readonly type: string,
    private readonly config: ResolvedHandlerConfig,
    private readonly log: Logger,
  ) {}

  /** Exits and failed starts since the server started. */
  get restarts(): number {
    return this.crashes;
  }

  /** Process id of the running handler, for status and tests. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Returns the status report's row for this handler process. */
  statusRow(): Record<string, string | number | null> {
    const running = this.child !== undefined;
    let state = "restarting";
    if (running) {
      state = "running";
    } else if (this.stopping) {
      state = "stopped";
    }
    return {
      type: this.type,
      state,
      pid: this.child?.pid ?? null,
      uptimeSeconds: running ? Math.floor((Date.now() - this.startedAt) / 1000) : null,
      restarts: this.crashes,
      lastExit: this.lastExit ?? null,
    };
  }

  /** Records that the handler replied to a job, which makes its next crash restart it quickly. */
  noteReply(): void {
    this.replied = true;
  }

  async start(): Promise<void> {
    await mkdir(path.dirname(this.config.socket), { recursive: true });
    // A socket file left by a crashed handler would make the new one fail with EADDRINUSE.
    await rm(this.config.socket, { force: true });
    // stop() may have run during the awaits, as when the restart timer fires during shutdown. It
    // found no process then, so a process started now would never be stopped.
    if (this.stopping) {
      return;
    }
    this.spawn();
  }

  /**
   * Starts the process in its own process group, so a Ctrl-C in the terminal reaches only the
   * daemon, which then stops its handlers in order instead of racing them.
   */
  private spawn(): void {
    const command = this.config.command!;
    const env = { ...process.env, ...this.config.env, BESTER_SOCKET: this.config.socket, BESTER_TYPE: this.type, BESTER_DAEMON_PID: String(process.pid) };
    const child = Array.isArray(command)
      ? spawn(command[0]!, command.slice(1), { cwd: this.config.cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
      : // The shell may stay as the handler's parent, as for `cd dir && prog`, so signals go to the process group.
        spawn(shellScript(command), { cwd: this.config.cwd, env, shell: true, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const startedAt = Date.now();
    this.startedAt = startedAt;
    this.child = child;
    this.replied = false;
    // Logged on "spawn": a command that does not exist gets a pid of undefined and an "error" instead.
    child.once("spawn", () => {
      trackGroup(child.pid!);
      this.lastSpawnError = undefined;
      this.log.info({ type: this.type, pid: child.pid }, "handler process started");
    });

    readline.createInterface({ input: child.stdout! }).on("line", (line) => this.log.debug({ type: this.type, pid: child.pid }, line));
    this.forwardStderr(child);

    // A command that cannot start (missing program, no permission) emits "error" and may never
    // emit "exit", so both events lead to the same restart, once.
    let ended = false;
    const restart = (fields: Record<string, unknown>, message: string) => {
      if (ended) {
        return;
      }
      ended = true;
      this.child = undefined;
      if (this.stopping) {
        return;
      }
      // A program left behind by a string command's shell would keep the socket from the new process.
      // signalGroup does nothing when the group is already empty.
      if (child.pid !== undefined) {
        signalGroup(child.pid, "SIGKILL");
        untrackGroup(child.pid);
      }

      if (this.replied || Date.now() - startedAt > HEALTHY_RUN_MS) {
        this.restartDelayMs = MIN_RESTART_DELAY_MS;
        this.crashesInARow = 0;
      }
      this.crashes += 1;
      this.crashesInARow += 1;
      // A handler that keeps failing would repeat this line every 10 s while the server runs. After
      // the first three in a row, only every tenth is a warning, and the rest go to debug.
      const level = isLoudCrash(this.crashesInARow) ? "warn" : "debug";
      this.log[level]({ type: this.type, ...fields, crashes: this.crashes, restartInMs: this.restartDelayMs }, message);
      this.restartTimer = setTimeout(() => {
        void this.start().catch((error: unknown) => this.log.error({ type: this.type, err: error }, "handler restart failed"));
      }, this.restartDelayMs);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, MAX_RESTART_DELAY_MS);
    };

    child.on("error", (error: NodeJS.ErrnoException) => {
      // The same failure on every retry is logged at error once; the retry lines count the rest.
      if (error.code !== this.lastSpawnError) {
        this.lastSpawnError = error.code;
        // The stack of a spawn error points into Node.js and helps no one; the code and the program do.
        const program = Array.isArray(command) ? command[0] : "/bin/sh";
        // spawn reports a missing working folder as ENOENT too, so check which one is missing.
        const cwdMissing = this.config.cwd !== undefined && !existsSync(this.config.cwd);
        let reason = error.message;
        if (cwdMissing) {
          reason = `working folder ${this.config.cwd} not found`;
        } else if (error.code === "ENOENT") {
          reason = `program "${program}" not found`;
        }
        this.log.error({ type: this.type, code: error.code, command, cwd: this.config.cwd }, `handler process could not start: ${reason}. Check handlers.${this.type}.command and handlers.${this.type}.cwd`);
      }
      this.lastExit = `start failed: ${error.code ?? error.message}`;
      restart({ code: error.code }, "handler process failed to start; retrying");
    });
    child.on("exit", (code, signal) => {
      this.lastExit = signal ? `signal ${signal}` : `exit code ${code}`;
      restart({ code, signal }, "handler process exited; restarting");
    });
  }

  /**
   * Logs the process's stderr lines as warnings, but not without end: a handler that crashes at
   * start with a stack trace would print it every 10 s for as long as the server runs. As with the
   * restart lines, only the first three processes of a crash series and every tenth one warn. The
   * other processes' lines go to debug, and so do a process's lines beyond STDERR_WARN_LINES a minute.
   */
  private forwardStderr(child: ChildProcess): void {
    // Loud unless this process would be a quiet crash in a row of them, or until it replied to a
    // job: a healthy handler's stderr always warns.
    const loudAtStart = isLoudCrash(this.crashesInARow + 1);
    const budget = new StderrBudget(STDERR_WARN_LINES, STDERR_WINDOW_MS);
    readline.createInterface({ input: child.stderr! }).on("line", (line) => {
      const fields = { type: this.type, pid: child.pid, stderr: line };
      const loud = loudAtStart || (this.replied && this.child === child);
      if (!loud) {
        this.log.debug(fields, "handler wrote to stderr");
        return;
      }

      const { level, ended } = budget.take();
      if (ended > 0) {
        this.log.warn({ type: this.type, pid: child.pid, debugLines: ended }, `handler wrote ${ended} stderr lines beyond ${STDERR_WARN_LINES} a minute, logged at debug level; its lines warn again`);
      }
      if (level === "debug") {
        this.log.debug(fields, "handler wrote to stderr");
        return;
      }
      this.log.warn(fields, "handler wrote to stderr");
      if (level === "lastWarn") {
        this.log.warn({ type: this.type, pid: child.pid }, `handler wrote ${STDERR_WARN_LINES} lines to stderr within a minute; its further lines in that minute go to the log at debug level`);
      }
    });
  }

  /**
   * Sends SIGTERM to the handler's process group, then SIGKILL to what is left of it after the
   * grace period.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
      if (child?.pid !== undefined) {
        untrackGroup(child.pid);
      }
      return;
    }
    const leader = child.pid;

    const exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        this.log.info({ type: this.type, pid: leader, code, signal }, "handler process stopped");
        resolve();
      });
    });
    signalGroup(leader, "SIGTERM");
    if (!(await waitForGroupExit(leader, STOP_GRACE_MS))) {
      this.log.warn({ type: this.type, pid: leader }, "handler process ignored SIGTERM; killing it");
      signalGroup(leader, "SIGKILL");
    }
    await exited;
    untrackGroup(leader);

    await rm(this.config.socket, { force: true });
  }
}

/** Returns whether the `inARow`-th crash in a row is logged as a warning: the first three and every tenth. */
function isLoudCrash(inARow: number): boolean {
  return inARow <= 3 || inARow % 10 === 0;
}
