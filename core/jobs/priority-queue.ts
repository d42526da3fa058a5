// Per-type job queue: higher priority first, first-in first-out among equal priorities.

import type { Job } from "./job.js";

/**
 * The queue the scheduler uses for one job type. It is an interface so a shared implementation
 * (for example on Redis, when several daemon processes serve one server name) can replace the
 * in-memory heap without touching the scheduler.
 */
export interface JobQueue {
  readonly size: number;
  push(job: Job): void;
  /**
   * Puts a job back ahead of the jobs of its priority that were never run, for retries after a
   * handler failure. Jobs put back keep their submission order among themselves.
   */
  pushFront(job: Job): void;
  shift(): Job | undefined;
  /** Returns the job shift() would return, without removing it. */
  peek(): Job | undefined;
  /** Removes and returns every queued job. */
  drain(): Job[];
  /** Removes and returns the first job, in shift() order, for which `match` is true. */
  removeFirst(match: (job: Job) => boolean): Job | undefined;
}

interface Entry {
  job: Job;
  /** Insertion order among the jobs that were never run. */
  sequence: number;
  /** Put back after a handler failure: ahead of its priority's other jobs. */
  retry: boolean;
}

/** A binary heap ordered by (priority descending, sequence ascending). */
export class HeapJobQueue implements JobQueue {
  private heap: Entry[] = [];
  private nextSequence = 0;

  get size(): number {
    return this.heap.length;
  }

  push(job: Job): void {
    this.insert({ job, sequence: this.nextSequence++, retry: false });
  }

  pushFront(job: Job): void {
    this.insert({ job, sequence: 0, retry: true });
  }

  shift(): Job | undefined {
    const heap = this.heap;
    if (heap.length === 0) {
      return undefined;
    }
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.siftDown(0);
    }
    return top.job;
  }

  peek(): Job | undefined {
    return this.heap[0]?.job;
  }

  drain(): Job[] {
    const jobs: Job[] = [];
    for (let job = this.shift(); job; job = this.shift()) {
      jobs.push(job);
    }
    return jobs;
  }

  /** Scans the whole heap, so it suits rare uses such as picking a job to run alone. */
  removeFirst(match: (job: Job) => boolean): Job | undefined {
    const heap = this.heap;
    let found = -1;
    for (let index = 0; index < heap.length; index += 1) {
      if (match(heap[index]!.job) && (found === -1 || this.before(heap[index]!, heap[found]!))) {
        found = index;
      }
    }
    if (found === -1) {
      return undefined;
    }

    const removed = heap[found]!;
    const last = heap.pop()!;
    if (found < heap.length) {
      heap[found] = last;
      this.siftDown(found);
      this.siftUp(found);
    }
    return removed.job;
  }

  private insert(entry: Entry): void {
    this.heap.push(entry);
    this.siftUp(this.heap.length - 1);
  }

  private before(a: Entry, b: Entry): boolean {
    if (a.job.priority !== b.job.priority) {
      return a.job.priority > b.job.priority;
    }
    if (a.retry !== b.retry) {
      return a.retry;
    }
    // Job ids sort by creation time, so jobs that a crash put back run again in submission order,
    // not in the order their connections broke.
    return a.retry ? a.job.id < b.job.id : a.sequence < b.sequence;
  }

  private siftUp(index: number): void {
    const heap = this.heap;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(heap[index]!, heap[parent]!)) {
        return;
      }
      [heap[index], heap[parent]] = [heap[parent]!, heap[index]!];
      index = parent;
    }
  }

  private siftDown(index: number): void {
    const heap = this.heap;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let first = index;
      if (left < heap.length && this.before(heap[left]!, heap[first]!)) {
        first = left;
      }
      if (right < heap.length && this.before(heap[right]!, heap[first]!)) {
        first = right;
      }
      if (first === index) {
        return;
      }
      [heap[index], heap[first]] = [heap[first]!, heap[index]!];
      index = first;
    }
  }
}
