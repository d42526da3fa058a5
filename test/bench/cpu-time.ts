// CPU time of the processes behind one system, read from /proc, so the table shows where each
// job's CPU goes: the server, its handler processes, and the load generator. On a machine with
// few cores the processes share the CPUs, so jobs/s follows the sum of these costs.

import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of utime and stime (USER_HZ). `getconf CLK_TCK` prints 100 on the bench machine, the usual Linux value. */
const TICKS_PER_SECOND = 100;

/** Returns the user plus system CPU seconds of one process, all its threads included, or 0 once it exited. */
export function cpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  // The command name in parentheses may contain spaces, so fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const userTicks = Number(fields[11]);
  const systemTicks = Number(fields[12]);
  return (userTicks + systemTicks) / TICKS_PER_SECOND;
}

/** Ids of every process below `pid`, children first found through /proc/<pid>/task/<tid>/children. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return found;
  }
  for (const thread of threads) {
    let children: string;
    try {
      children = readFileSync(`/proc/${pid}/task/${thread}/children`, "utf8");
    } catch {
      continue;
    }
    for (const child of children.split(" ").filter((entry) => entry.length > 0).map(Number)) {
      found.push(child, ...descendants(child));
    }
  }
  return found;
}

/** Sums the CPU seconds of `pids`. */
export function totalCpuSeconds(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}
