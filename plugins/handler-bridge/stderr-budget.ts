// How many stderr lines of one handler process the log takes at warn level. A handler that crashes
// at start would otherwise repeat its traceback at every restart, and a chatty one would flood the
// log. A budget per time window, rather than per process, lets a long-running handler's later
// tracebacks warn again.

export type StderrLevel = "warn" | "lastWarn" | "debug";

export class StderrBudget {
  private windowStart: number;
  private lines = 0;

  /**
   * @param limit lines per window that warn
   * @param windowMs length of a window; a new one starts with the first line after it ends
   */
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    now = Date.now(),
  ) {
    this.windowStart = now;
  }

  /**
   * Counts one line and returns its level: "lastWarn" for the line that uses up the window's budget,
   * "debug" after it. `ended` is the number of lines the window that just ended sent to debug.
   */
  take(now = Date.now()): { level: StderrLevel; ended: number } {
    let ended = 0;
    if (now - this.windowStart >= this.windowMs) {
      ended = Math.max(0, this.lines - this.limit);
      this.windowStart = now;
      this.lines = 0;
    }
    this.lines += 1;

    if (this.lines > this.limit) {
      return { level: "debug", ended };
    }
    return { level: this.lines === this.limit ? "lastWarn" : "warn", ended };
  }
}
