// Signals for a handler's whole process group. The supervisor starts each handler as the leader of
// a group of its own. A string command's shell, the program it runs and any workers that program
// forks therefore get the same SIGTERM, and a shell that exits first leaves nothing running.

const POLL_MS = 50;

/** Leaders of the handler groups started and not yet ended, for the exit hook below. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

/**
 * Records a started handler group. When the daemon exits with the group still running, as after
 * a second Ctrl-C or an error that escapes every tap, the group gets SIGTERM. A handler that does
 * not watch its parent would otherwise keep running, and keep its socket, after the daemon is gone.
 */
export function trackGroup(leader: number): void {
  liveGroups.add(leader);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Only synchronous work runs in an "exit" handler, and process.kill is synchronous.
    process.on("exit", () => {
      for (const group of liveGroups) {
        signalGroup(group, "SIGTERM");
      }
    });
  }
}

/** Forgets a group that ended or was stopped. */
export function untrackGroup(leader: number): void {
  liveGroups.delete(leader);
}

/** Sends `signal` to every process in the group led by `leader`; returns false when the group is empty. */
export function signalGroup(leader: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-leader, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") {
      return false;
    }
    throw error;
  }
}

/** Returns whether any process of the group led by `leader` still runs. */
export function groupAlive(leader: number): boolean {
  // Signal 0 checks for existence and delivers nothing.
  return signalGroup(leader, 0 as unknown as NodeJS.Signals);
}

/**
 * Resolves true once the group led by `leader` has no process left, or false after `timeoutMs`.
 * The kernel has no event for a group emptying, so it polls.
 */
export async function waitForGroupExit(leader: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (groupAlive(leader)) {
    if (Date.now() >= deadline) {
      return false;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return true;
}
