// Whether a process id still names a running process, for pid files and for handlers that watch
// the daemon that started them.

import { readFileSync } from "node:fs";

/**
 * Checks that process `pid` runs. Signal 0 tests that it exists, and EPERM means it exists under
 * another user. A zombie counts as gone: a killed process stays one until its parent reaps it, a
 * second or so after kill -9 and for good under an init that never reaps, and it has no open files.
 */
export function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

/** Reads the process state from /proc. Where there is no /proc, the signal check alone decides. */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // The state follows the command name, which is in parentheses and may itself contain ") ".
  const nameEnd = stat.lastIndexOf(")");
  return stat.charAt(nameEnd + 2) === "Z";
}
