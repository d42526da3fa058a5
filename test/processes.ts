// The processes running on this machine, read from /proc, for tests that check which handler
// processes a server left behind. Linux only, as the handler supervisor's process groups are.

import { readdirSync, readFileSync } from "node:fs";

export interface RunningProcess {
  pid: number;
  /** The process group, field 5 of /proc/<pid>/stat. */
  processGroup: number;
  /** The arguments joined by spaces. */
  commandLine: string;
}

/** Lists the processes that still exist; one that exits during the scan is left out. */
export function runningProcesses(): RunningProcess[] {
  const found: RunningProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) {
      continue;
    }
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // The command name in parentheses may contain spaces, so the fields after it are split.
      const processGroup = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      const commandLine = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim();
      found.push({ pid: Number(entry), processGroup, commandLine });
    } catch {
      continue;
    }
  }
  return found;
}
