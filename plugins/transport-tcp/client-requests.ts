// The requests a BesterClient connection waits on. The server replies in request order, so the
// oldest waiting request takes the next reply. A request with no reply within its deadline fails
// with `timedOut`, and the connection must close after that, because a late reply would otherwise
// be taken for the next request's.

import { BesterClientError } from "./client-error.js";

interface Waiting {
  /** The request's name, such as `auth` or `newJob`, for the timeout message. */
  name: string;
  resolve: (reply: Record<string, unknown>) => void;
  reject: (error: Error) => void;
  /** The Date.now() value by which the reply must arrive, set once the request's frame is written. */
  deadline?: number;
  /** Set once the request left the queue, so a late write callback starts no timer. */
  done?: boolean;
}

export class PendingRequests {
  private queue: Waiting[] = [];
  /** One timer for the whole queue, armed for the oldest request's deadline, instead of one per request. */
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param timeoutMs how long a written request may wait for its reply; 0 waits without limit.
   * @param onTimeout called after a request failed with `timedOut`, to close the connection.
   */
  constructor(
    private readonly timeoutMs: number,
    private readonly onTimeout: (error: BesterClientError) => void,
  ) {}

  get size(): number {
    return this.queue.length;
  }

  /**
   * Adds a request to the end of the queue. Returns its reply and a callback for the moment its
   * frame has been written, which starts its deadline, so a long upload does not count against it.
   */
  add(name: string): { reply: Promise<Record<string, unknown>>; written: () => void } {
    let waiting!: Waiting;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      waiting = { name, resolve, reject };
    });
    this.queue.push(waiting);

    const written = () => {
      if (this.timeoutMs === 0 || waiting.done) {
        return;
      }
      waiting.deadline = Date.now() + this.timeoutMs;
      this.arm(this.timeoutMs);
    };
    return { reply, written };
  }

  /** Settles the oldest request with `reply`; returns false when no request waits. */
  resolveNext(reply: Record<string, unknown>): boolean {
    const waiting = this.queue.shift();
    if (!waiting) {
      return false;
    }
    waiting.done = true;
    waiting.resolve(reply);
    return true;
  }

  /** Rejects every waiting request with `error` and empties the queue. */
  rejectAll(error: Error): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiting of this.queue.splice(0)) {
      waiting.done = true;
      waiting.reject(error);
    }
  }

  private arm(delayMs: number): void {
    if (this.timer) {
      return;
    }
    this.timer = setTimeout(() => this.check(), delayMs);
    // A client that only waits for replies must not keep a process alive on its own: the socket does.
    this.timer.unref();
  }

  /** Fails the oldest request when its deadline has passed, or re-arms the timer for that deadline. */
  private check(): void {
    this.timer = undefined;
    const oldest = this.queue[0];
    if (!oldest) {
      return;
    }

    // Frames are written in queue order, so the oldest request has the earliest deadline, and one
    // without a deadline is still being written.
    const now = Date.now();
    if (oldest.deadline === undefined || oldest.deadline > now) {
      this.arm(oldest.deadline === undefined ? this.timeoutMs : oldest.deadline - now);
      return;
    }

    this.queue.shift();
    oldest.done = true;
    const error = new BesterClientError(
      "timedOut",
      `The server sent no reply to the ${oldest.name} request within ${this.timeoutMs} ms (requestTimeoutMs). The client closed the connection, because replies arrive in request order and a late one would be taken for the next request's. Check that the server is running and not overloaded.`,
    );
    oldest.reject(error);
    this.onTimeout(error);
  }
}
