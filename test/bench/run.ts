// `npm run bench`: runs one workload through gearmand, the naive relay and Bester NG (memory and
// sqlite stores), each in its own processes on 127.0.0.1, and prints a table with the ratios.
// `npm run bench -- --help` lists the options.
// Besides latency it reports the CPU time per job of the server, its handler processes and the
// load generator, because on a machine with few cores all of them compete for the same CPUs.

import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { createProgress } from "../../core/cli/spinner.js";
import { childFileLimit, rssMiB } from "./processes.js";
import { besterMemory, besterSqlite, gearmand, holdIdle, relay, runLoad, type SystemDefinition } from "./systems.js";
import type { ThroughputResult } from "./load.js";

const USAGE = `Usage: npm run bench -- [options]

Runs one workload through gearmand, a naive Node.js relay and Bester NG (memory and sqlite stores)
on 127.0.0.1 and prints jobs/s, p50 and p99 latency, CPU per job and the ratios between them.

Options:
  --jobs N        measured jobs per throughput run (default 36000)
  --repeat N      rounds; each runs every system once (default 3)
  --only LIST     comma-separated systems: gearmand, relay, memory, sqlite (default all)
  --skip-idle     skip the 10 000 idle connections
  --skip-large    skip the 1 MiB round trips
  --profile DIR   write CPU profiles of each Bester NG daemon and its handler process to DIR
  --json FILE     also write the rows as JSON to FILE
  --help          print this text
`;

const values = parseOptions();

if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const WORKLOAD = { clients: 4, window: 32, payloadBytes: 64, jobs: Number(values.jobs), deadlineMs: 60_000 };
const WARMUP_JOBS = 4000;
const REPEAT = Math.max(1, Number(values.repeat));
const LARGE = { payloadBytes: 1024 * 1024, warmup: 4, jobs: 40, deadlineMs: 60_000 };
const IDLE = { connections: 10_000, deadlineMs: 180_000 };
const SETTLE_MS = 1500;

/** CPU microseconds per job during a throughput run, by process group. */
interface CpuPerJob {
  server: number;
  handlers: number;
  client: number;
  total: number;
}

interface Measured extends ThroughputResult {
  cpu: CpuPerJob;
}

interface Row {
  name: string;
  skipped?: string;
  /** One throughput run per round, in round order. */
  runs: Measured[];
  largeP50ms?: number;
  idle?: { held: number; rssBeforeMiB: number; rssMiB: number };
}

const keys: Record<string, SystemDefinition> = { gearmand, relay, memory: besterMemory, sqlite: besterSqlite };
const selected = values.only ? values.only.split(",").map((key) => keys[key.trim()] ?? fail(`Unknown --only entry "${key}". Use ${Object.keys(keys).join(", ")}.`)) : Object.values(keys);
const token = randomBytes(32).toString("hex");
const progress = await createProgress();

function fail(message: string): never {
  throw new Error(message);
}

function loadArgs(system: SystemDefinition, port: number, clients: number, window: number, warmup: number, jobs: number, bytes: number, deadlineMs: number): string[] {
  return ["throughput", system.protocol, String(port), String(clients), String(window), String(warmup), String(jobs), String(bytes), String(deadlineMs)];
}

/** Starts the system, runs one warmed-up throughput load (and the 1 MiB load when asked), and stops it. */
async function throughputRound(system: SystemDefinition, row: Row, round: number, withLarge: boolean): Promise<void> {
  const running = await system.start({ token, profileDir: values.profile });
  try {
    progress.step(`${system.name}: ${WARMUP_JOBS} warm-up jobs, then ${WORKLOAD.jobs} jobs of ${WORKLOAD.payloadBytes} bytes, ${WORKLOAD.clients}×${WORKLOAD.window} in flight (round ${round} of ${REPEAT})`);
    const pids = { BENCH_SERVER_PIDS: running.serverPids().join(","), BENCH_HANDLER_PIDS: running.handlerPids().join(",") };
    const result = await runLoad<ThroughputResult>(loadArgs(system, running.port, WORKLOAD.clients, WORKLOAD.window, WARMUP_JOBS, WORKLOAD.jobs, WORKLOAD.payloadBytes, WORKLOAD.deadlineMs), 2 * WORKLOAD.deadlineMs + 30_000, pids);
    const perJob = (seconds: number) => Math.round((seconds / result.jobs) * 1e6);
    const server = perJob(result.serverCpuSeconds);
    const handlers = perJob(result.handlerCpuSeconds);
    const client = perJob(result.clientCpuSeconds);
    row.runs.push({ ...result, cpu: { server, handlers, client, total: server + handlers + client } });

    if (withLarge) {
      progress.step(`${system.name}: ${LARGE.jobs} round trips of 1 MiB`);
      const large = await runLoad<ThroughputResult>(loadArgs(system, running.port, 1, 1, LARGE.warmup, LARGE.jobs, LARGE.payloadBytes, LARGE.deadlineMs), LARGE.deadlineMs + 30_000);
      row.largeP50ms = large.p50ms;
    }
  } finally {
    await running.stop();
  }
}

/** Measures the daemon's memory with 10 000 idle connections, on a fresh daemon so the figure is what they cost and not what the load left behind. */
async function measureIdle(system: SystemDefinition, row: Row): Promise<void> {
  const fresh = await system.start({ token });
  try {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const rssBeforeMiB = rssMiB(fresh.pid);
    progress.step(`${system.name}: opening ${IDLE.connections} idle ${system.protocol === "gearman" ? "" : "authenticated "}connections`);
    const holder = await holdIdle(["idle", system.protocol, String(fresh.port), String(IDLE.connections), String(IDLE.deadlineMs)], IDLE.deadlineMs + 30_000, { BENCH_TOKEN: token });
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    row.idle = { held: holder.held, rssBeforeMiB, rssMiB: rssMiB(fresh.pid) };
    await holder.stop();
  } finally {
    await fresh.stop();
  }
}

/** Returns the run with the median jobs/s. */
function median(runs: Measured[]): Measured | undefined {
  const sorted = [...runs].sort((a, b) => a.jobsPerSec - b.jobsPerSec);
  return sorted[Math.floor(sorted.length / 2)];
}

function table(rows: Row[]): string {
  const lines = [
    "| system | jobs/s | p50 ms | p99 ms | CPU µs/job: server + handlers + client = total | 1 MiB p50 ms | RSS, 10 000 idle (MiB) |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const row of rows) {
    const t = median(row.runs);
    if (row.skipped || !t) {
      lines.push(`| ${row.name} | skipped | | | | | |`);
      continue;
    }
    const idle = row.idle ? `${row.idle.rssMiB} (${row.idle.held} open, ${row.idle.rssBeforeMiB} before)` : "not run";
    const cpu = `${t.cpu.server} + ${t.cpu.handlers} + ${t.cpu.client} = ${t.cpu.total}`;
    lines.push(`| ${row.name}${t.timedOut ? " (hit time limit)" : ""} | ${t.jobsPerSec} | ${t.p50ms} | ${t.p99ms} | ${cpu} | ${row.largeP50ms ?? "not run"} | ${idle} |`);
  }
  return lines.join("\n");
}

/**
 * Describes `pick(a) / pick(b)` from the runs of the same round: each ratio, then their median.
 * Runs of one round are minutes apart at most, so they share the machine's conditions.
 */
function pairedRatio(a: Row | undefined, b: Row | undefined, pick: (run: Measured) => number): string {
  if (!a || !b) {
    return "n/a";
  }
  const ratios = a.runs.map((run, index) => (b.runs[index] ? pick(run) / pick(b.runs[index]!) : NaN)).filter((value) => Number.isFinite(value));
  if (ratios.length === 0) {
    return "n/a";
  }
  const middle = [...ratios].sort((x, y) => x - y)[Math.floor(ratios.length / 2)]!;
  return ratios.length === 1 ? `${middle.toFixed(2)}×` : `${middle.toFixed(2)}× (rounds: ${ratios.map((value) => value.toFixed(2)).join(", ")})`;
}

function ratios(rows: Row[]): string {
  const find = (name: string) => rows.find((row) => row.name === name && !row.skipped && row.runs.length > 0);
  const memory = find(besterMemory.name);
  const sqlite = find(besterSqlite.name);
  const gear = find(gearmand.name);
  const naive = find(relay.name);
  const jobsPerSec = (run: Measured) => run.jobsPerSec;
  const lines: string[] = [];
  for (const bester of [memory, sqlite]) {
    if (!bester) {
      continue;
    }
    // Only the systems this run measured are compared.
    const versus = [gear && `jobs/s vs gearmand ${pairedRatio(bester, gear, jobsPerSec)}`, naive && `jobs/s vs relay ${pairedRatio(bester, naive, jobsPerSec)}`];
    if (gear) {
      versus.push(`p99 vs gearmand's ${pairedRatio(bester, gear, (run) => run.p99ms)}`, `CPU per job vs gearmand's ${pairedRatio(bester, gear, (run) => run.cpu.total)}`);
    }
    const parts = versus.filter((part): part is string => typeof part === "string");
    if (parts.length > 0) {
      lines.push(`${bester.name}:`, ...parts.map((part) => `  ${part}`));
    }
  }
  if (memory && sqlite) {
    lines.push(`sqlite store: jobs/s vs the memory store ${pairedRatio(sqlite, memory, jobsPerSec)}`);
  }
  return lines.join("\n");
}

const rows: Row[] = selected.map((system) => ({ name: system.name, skipped: system.unavailable(), runs: [] }));
for (const row of rows.filter((candidate) => candidate.skipped)) {
  process.stderr.write(`${row.skipped}\n`);
}
// Rounds go through every system in turn, so a slow minute on a shared machine hits all of them
// alike, and the ratios of one round compare runs made minutes apart at most.
for (let round = 1; round <= REPEAT; round += 1) {
  for (const [index, system] of selected.entries()) {
    if (!rows[index]!.skipped) {
      await throughputRound(system, rows[index]!, round, round === 1 && !values["skip-large"]);
    }
  }
}
if (!values["skip-idle"]) {
  for (const [index, system] of selected.entries()) {
    if (!rows[index]!.skipped) {
      await measureIdle(system, rows[index]!);
    }
  }
}
progress.succeed("benchmark finished");

const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
process.stdout.write(`\nMachine: ${os.cpus().length} CPUs (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}; children run with ulimit -n ${childFileLimit()}\n`);
process.stdout.write(`Workload: ${WORKLOAD.clients} clients × ${WORKLOAD.window} in flight, 4 handler connections, ${WORKLOAD.payloadBytes}-byte payloads, ${WORKLOAD.jobs} jobs after ${WARMUP_JOBS} warm-up jobs, ${REPEAT} round${REPEAT === 1 ? "" : "s"}, the table shows each system's median run\n\n`);
process.stdout.write(`${table(rows)}\n\n${ratios(rows)}\n`);
if (values.json) {
  writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
}

/** Parses the command line; an unknown or malformed option prints its error and the usage, and exits with 2. */
function parseOptions() {
  try {
    return parseArgs({
      options: {
        help: { type: "boolean", default: false },
        jobs: { type: "string", default: "36000" },
        repeat: { type: "string", default: "3" },
        only: { type: "string" },
        "skip-idle": { type: "boolean", default: false },
        "skip-large": { type: "boolean", default: false },
        profile: { type: "string" },
        json: { type: "string" },
      },
    }).values;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}
