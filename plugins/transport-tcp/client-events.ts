// Event types of BesterClient and an async iterator over one of its events, so a program can
// write `for await (const output of client.outputs())`.

import type { EventEmitter } from "node:events";
import type { WireError } from "../../core/errors.js";

export interface JobOutputEvent {
  /** `<jobID>:<user>@<server>` */
  jobID: string;
  payload: { type: string; data: unknown };
}

/**
 * A job's end. The server sends `error` with every failed notification and never with a completed
 * one, so checking `status` narrows the type. `error?: undefined` keeps `event.error?.code`
 * valid without that check.
 */
export type JobNotificationEvent =
  | { jobID: string; status: "completed"; error?: undefined }
  | { jobID: string; status: "failed"; error: WireError };

export interface JobProgressEvent {
  jobID: string;
  progress: unknown;
}

/** Events of BesterClient with their listener arguments. */
export interface ClientEvents {
  /** A `jobOutput` message: a handler's output delivered to this connection's user. */
  output: [JobOutputEvent];
  /** A `jobNotification` message: a job this user submitted completed or failed. */
  notification: [JobNotificationEvent];
  /** A `jobProgress` message: a handler reported progress on a job this user submitted. */
  progress: [JobProgressEvent];
  /** An `error` message sent outside any request, such as the authentication timeout. */
  serverError: [WireError];
  /**
   * The connection was lost and the client now tries to reconnect. Emitted only with the
   * `reconnect` option, once per lost connection: without it a lost connection emits only `close`.
   */
  disconnect: [Error];
  /** The client reconnected (and logged in again when it had logged in before). */
  reconnect: [{ attempt: number }];
  /**
   * The client is closed for good: close() was called, or the connection was lost and not regained.
   * `lost` is the error that ended the connection, and undefined after close().
   */
  close: [lost?: Error];
}

/**
 * Iterates over every `event` emitted from now on, buffering events the loop has not consumed
 * yet. The iteration ends when `endEvent` fires or the loop breaks.
 */
export function iterateEvents<T>(emitter: EventEmitter<any>, event: string, endEvent: string, isEnded: () => boolean): AsyncIterableIterator<T> {
  const buffered: T[] = [];
  let waiting: ((result: IteratorResult<T>) => void) | undefined;
  let ended = isEnded();

  const onEvent = (value: T) => {
    if (waiting) {
      const resolve = waiting;
      waiting = undefined;
      resolve({ value, done: false });
    } else {
      buffered.push(value);
    }
  };
  const onEnd = () => finish();

  function finish(): IteratorResult<T> {
    ended = true;
    emitter.off(event, onEvent);
    emitter.off(endEvent, onEnd);
    const result: IteratorResult<T> = { value: undefined, done: true };
    if (waiting) {
      const resolve = waiting;
      waiting = undefined;
      resolve(result);
    }
    return result;
  }

  if (!ended) {
    emitter.on(event, onEvent);
    emitter.on(endEvent, onEnd);
  }

  return {
    next(): Promise<IteratorResult<T>> {
      if (buffered.length > 0) {
        return Promise.resolve({ value: buffered.shift()!, done: false });
      }
      if (ended) {
        return Promise.resolve({ value: undefined, done: true });
      }
      return new Promise((resolve) => (waiting = resolve));
    },
    return(): Promise<IteratorResult<T>> {
      buffered.length = 0;
      return Promise.resolve(finish());
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * Job ids whose notification was emitted, oldest first, so a notification the daemon repeats after
 * a crash is dropped. The oldest id is dropped once the set contains more than `limit`.
 */
export class NotifiedJobs {
  private readonly ids = new Set<string>();

  constructor(private readonly limit: number) {}

  /** Remembers the job id and returns whether this is its first notification. Job ids are unique per server. */
  first(event: JobNotificationEvent): boolean {
    if (this.ids.has(event.jobID)) {
      return false;
    }
    this.ids.add(event.jobID);
    if (this.ids.size > this.limit) {
      this.ids.delete(this.ids.values().next().value!);
    }
    return true;
  }
}
