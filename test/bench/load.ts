// The load generator, run as its own process so it does not share an event loop with the system
// under test. Prints one JSON line with the result on stdout. Modes:
//   throughput <bester|relay|gearman> <port> <clients> <window> <total> <payloadBytes> <deadlineMs>
//   idle <bester|relay|gearman> <port> <count> <deadlineMs>     (prints "ready", holds until SIGTERM)
//   gearman-workers <port> <count>                              (prints "ready", holds until SIGTERM)

import type net from "node:net";
import { BesterLink, GearmanLink, type JobLink } from "./job-links.js";
import { connectLoopback, startGearmanWorker } from "./gearman-wire.js";

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
  /** CPU seconds this load generator used during the run. */
  clientCpuSeconds: number;
}

function openLink(system: System, port: number, index: number): Promise<JobLink> {
  if (system === "gearman") {
    return GearmanLink.open(port);
  }
  return BesterLink.open(port, system === "bester" ? loadLogin(index) : undefined);
}

/**
 * Each link keeps `window` jobs in flight until it completed its share of `total`. No new job
 * starts after the deadline; a second deadline ends the run even if outputs are still missing.
 */
async function throughput(system: System, port: number, clients: number, window: number, total: number, payloadBytes: number, deadlineMs: number): Promise<ThroughputResult> {
  const links = await Promise.all(Array.from({ length: clients }, (_, index) => openLink(system, port, index)));
  const payload = "x".repeat(payloadBytes);
  const quota = Math.floor(total / clients);
  const latencies: number[] = [];
  let stopped = false;
  let timedOut = false;

  const started = process.hrtime.bigint();
  const cpuAtStart = process.cpuUsage();
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
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpuUsed = process.cpuUsage(cpuAtStart);
  clearTimeout(stopTimer);
  clearTimeout(hardTimer);
  for (const link of links) {
    link.close();
  }

  latencies.sort((a, b) => a - b);
  const quantile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    jobs: latencies.length,
    seconds: round(seconds),
    jobsPerSec: Math.round(latencies.length / seconds),
    p50ms: round(quantile(0.5)),
    p99ms: round(quantile(0.99)),
    timedOut: timedOut || stopped,
    clientCpuSeconds: round((cpuUsed.user + cpuUsed.system) / 1e6),
  };
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
  const [port, clients, window, total, payloadBytes, deadlineMs] = numbers as [number, number, number, number, number, number];
  const result = await throughput(args[0] as System, port, clients, window, total, payloadBytes, deadlineMs);
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
