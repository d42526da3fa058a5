// The load generator, run as its own process so it does not share an event loop with the system
// under test. Prints one JSON line with the result on stdout. Modes:
//   throughput <bester|relay|gearman> <port> <clients> <window> <warmup> <total> <payloadBytes> <deadlineMs>
//   idle <bester|relay|gearman> <port> <count> <deadlineMs>     (prints "ready", holds until SIGTERM)
//   gearman-workers <port> <count>                              (prints "ready", holds until SIGTERM)

import type net from "node:net";
import { BesterLink, GearmanLink, type JobLink } from "./job-links.js";
import { connectLoopback, startGearmanWorker } from "./gearman-wire.js";
import { totalCpuSeconds } from "./cpu-time.js";

type System = "bester" | "relay" | "gearman";

/**
 * Returns the login of throughput client `n`, the user `bench-n`, whose password the accounts plugin
 * checks with scrypt. Each connection is its own user because a user's outputs go to every
 * connection the user has open, while a Gearman client gets only the results of its own jobs.
 */
function loadLogin(index: number) {
  return { username: `bench-${index}`, password: "bench-password-for-loopback-only", register: true };
}
const IDLE_USER = "bench-idle";
const OPEN_BATCH = 200;

export interface ThroughputResult {
  jobs: number;
  seconds: number;
  jobsPerSec: number;
  p50ms: number;
  p99ms: number;
  timedOut: boolean;
  /** CPU seconds this load generator used during the measured phase. */
  clientCpuSeconds: number;
  /** CPU seconds of the server processes during the measured phase. */
  serverCpuSeconds: number;
  /** CPU seconds of the handler processes during the measured phase. */
  handlerCpuSeconds: number;
}

function openLink(system: System, port: number, index: number): Promise<JobLink> {
  if (system === "gearman") {
    return GearmanLink.open(port);
  }
  return BesterLink.open(port, system === "bester" ? loadLogin(index) : undefined);
}

/**
 * Runs `total` jobs over the open links, each keeping `window` jobs in flight until it completed its
 * share. No new job starts after the deadline, and a second deadline ends the phase even if outputs are
 * still missing.
 */
async function phase(links: JobLink[], window: number, total: number, payloadBytes: number, deadlineMs: number): Promise<{ latencies: number[]; seconds: number; timedOut: boolean }> {
  const payload = "x".repeat(payloadBytes);
  const quota = Math.floor(total / links.length);
  const latencies: number[] = [];
  let stopped = false;
  let timedOut = false;

  const started = process.hrtime.bigint();
  const stopTimer = setTimeout(() => (stopped = true), deadlineMs);
  const runs = links.map(
    (link) =>
      new Promise<void>((resolve) => {
        let sent = 0;
        let done = 0;
        const submit = () => {
          const submittedAt = process.hrtime.bigint();
          sent += 1;
          link.submit(payload, () => {
            latencies.push(Number(process.hrtime.bigint() - submittedAt) / 1e6);
            done += 1;
            if (done === quota || (stopped && done === sent)) {
              resolve();
            } else if (sent < quota && !stopped) {
              submit();
            }
          });
        };
        for (let index = 0; index < Math.min(window, quota); index += 1) {
          submit();
        }
      }),
  );
  let hardTimer: NodeJS.Timeout | undefined;
  const hardStop = new Promise<void>((resolve) => {
    hardTimer = setTimeout(() => {
      timedOut = true;
      resolve();
    }, deadlineMs + 10_000);
  });
  await Promise.race([Promise.all(runs), hardStop]);
  clearTimeout(stopTimer);
  clearTimeout(hardTimer);
  return { latencies, seconds: Number(process.hrtime.bigint() - started) / 1e9, timedOut: timedOut || stopped };
}

/**
 * Warms up with `warmup` jobs, then measures `total` jobs on the same connections in the same
 * process, so the load generator's own code is compiled and warm when the measured phase starts.
 * The CPU time of the server and handler processes (ids in BENCH_SERVER_PIDS and
 * BENCH_HANDLER_PIDS) is read right around the measured phase.
 */
async function throughput(system: System, port: number, clients: number, window: number, warmup: number, total: number, payloadBytes: number, deadlineMs: number): Promise<ThroughputResult> {
  const links = await Promise.all(Array.from({ length: clients }, (_, index) => openLink(system, port, index)));
  if (warmup > 0) {
    await phase(links, window, warmup, payloadBytes, deadlineMs);
  }

  const serverPids = pidList(process.env.BENCH_SERVER_PIDS);
  const handlerPids = pidList(process.env.BENCH_HANDLER_PIDS);
  const serverBefore = totalCpuSeconds(serverPids);
  const handlersBefore = totalCpuSeconds(handlerPids);
  const cpuAtStart = process.cpuUsage();
  const measured = await phase(links, window, total, payloadBytes, deadlineMs);
  const cpuUsed = process.cpuUsage(cpuAtStart);
  const serverCpuSeconds = totalCpuSeconds(serverPids) - serverBefore;
  const handlerCpuSeconds = totalCpuSeconds(handlerPids) - handlersBefore;
  for (const link of links) {
    link.close();
  }

  const latencies = measured.latencies.sort((a, b) => a - b);
  const quantile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    jobs: latencies.length,
    seconds: round(measured.seconds),
    jobsPerSec: Math.round(latencies.length / measured.seconds),
    p50ms: round(quantile(0.5)),
    p99ms: round(quantile(0.99)),
    timedOut: measured.timedOut,
    clientCpuSeconds: round((cpuUsed.user + cpuUsed.system) / 1e6),
    serverCpuSeconds: round(serverCpuSeconds),
    handlerCpuSeconds: round(handlerCpuSeconds),
  };
}

function pidList(text: string | undefined): number[] {
  return (text ?? "").split(",").filter((entry) => entry.length > 0).map(Number);
}

/** Opens `count` connections (logged in, except for gearmand) in batches and holds them. */
async function idle(system: System, port: number, count: number, deadlineMs: number): Promise<net.Socket[] | JobLink[]> {
  const token = process.env.BENCH_TOKEN ?? "";
  const deadline = Date.now() + deadlineMs;
  const held: Array<net.Socket | JobLink> = [];
  while (held.length < count && Date.now() < deadline) {
    const batch = Math.min(OPEN_BATCH, count - held.length);
    held.push(
      ...(await Promise.all(
        Array.from({ length: batch }, () =>
          system === "gearman" ? connectLoopback(port) : BesterLink.open(port, { username: IDLE_USER, password: token }),
        ),
      )),
    );
  }
  return held as net.Socket[] | JobLink[];
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function holdUntilTerminated(): void {
  process.on("SIGTERM", () => process.exit(0));
  setInterval(() => undefined, 60_000);
}

const [mode, ...args] = process.argv.slice(2);
const numbers = args.slice(1).map(Number);
if (mode === "throughput") {
  const [port, clients, window, warmup, total, payloadBytes, deadlineMs] = numbers as [number, number, number, number, number, number, number];
  const result = await throughput(args[0] as System, port, clients, window, warmup, total, payloadBytes, deadlineMs);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else if (mode === "idle") {
  const [port, count, deadlineMs] = numbers as [number, number, number];
  const held = await idle(args[0] as System, port, count, deadlineMs);
  process.stdout.write(`ready ${held.length}\n`);
  holdUntilTerminated();
} else if (mode === "gearman-workers") {
  const [port, count] = [Number(args[0]), Number(args[1])];
  await Promise.all(Array.from({ length: count }, () => startGearmanWorker(port)));
  process.stdout.write("ready\n");
  holdUntilTerminated();
} else {
  throw new Error(`Unknown mode "${mode}". Use throughput, idle or gearman-workers.`);
}
