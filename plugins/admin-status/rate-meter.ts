// Counts finished jobs in one-second buckets to report jobs per second over a sliding window.

const WINDOW_SECONDS = 60;

export class RateMeter {
  private total = 0;
  /** Count per second, indexed by (second % WINDOW_SECONDS). */
  private buckets = new Array<number>(WINDOW_SECONDS).fill(0);
  /** The second each bucket counts, so a stale bucket reads as zero. */
  private bucketSecond = new Array<number>(WINDOW_SECONDS).fill(-1);

  constructor(
    private readonly startedAt: number,
    private readonly now: () => number = Date.now,
  ) {}

  record(): void {
    const second = Math.floor(this.now() / 1000);
    const index = second % WINDOW_SECONDS;
    if (this.bucketSecond[index] !== second) {
      this.bucketSecond[index] = second;
      this.buckets[index] = 0;
    }
    this.buckets[index]! += 1;
    this.total += 1;
  }

  /** Finished jobs per second since start. */
  sinceStart(): number {
    const seconds = Math.max((this.now() - this.startedAt) / 1000, 1);
    return round(this.total / seconds);
  }

  /** Finished jobs per second over the last minute, or over the uptime when it is shorter. */
  lastMinute(): number {
    const second = Math.floor(this.now() / 1000);
    let count = 0;
    for (let index = 0; index < WINDOW_SECONDS; index += 1) {
      if (second - this.bucketSecond[index]! < WINDOW_SECONDS) {
        count += this.buckets[index]!;
      }
    }
    const window = Math.min(WINDOW_SECONDS, Math.max((this.now() - this.startedAt) / 1000, 1));
    return round(count / window);
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
