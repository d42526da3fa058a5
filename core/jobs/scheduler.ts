// Per-type queues and the workers that drain them. A worker is one handler connection: it takes
// one job at a time, so a type's concurrency is its number of workers. The scheduler uses
// no sockets. The handler bridge adds and removes workers as connections come and go.

import { BesterError } from "../errors.js";
import type { Job } from "./job.js";
import { HeapJobQueue, type JobQueue } from "./priority-queue.js";

/** Runs one job on one handler connection. */
export interface HandlerWorker {
  /** For logs, e.g. `wordcount#2`. */
  readonly name: string;
  /**
   * Sends the job and resolves with the handler's final reply object. Reports each `progress`
   * frame through `onProgress`. Rejects with a BesterError: `handlerFailed` with `retryable`
   * set when the connection broke mid-job (and `unread` too when the handler most likely never
   * read the job), or `handlerTimeout`.
   */
  run(job: Job, onProgress: (progress: unknown) => void): Promise<Record<string, unknown>>;
}

export interface JobTypeOptions {
  /** Queued jobs beyond which new submissions get `queueFull`. */
  maxQueued: number;
  /** How long jobs wait while the type has no worker before failing with `handlerUnavailable`. */
  unavailableTimeoutMs: number;
  /** Extra attempts on another connection after a connection breaks mid-job. */
  retries: number;
}

export interface JobTypeStats {
  type: string;
  queued: number;
  running: number;
  workers: number;
  completed: number;
  failed: number;
}

interface JobType {
  options: JobTypeOptions;
  queue: JobQueue;
  idle: HandlerWorker[];
  workers: Set<HandlerWorker>;
  running: number;
  completed: number;
  failed: number;
  unavailableTimer?: NodeJS.Timeout;
}

/** Called for each job a worker takes; the job engine supplies it. */
export type ExecuteJob = (job: Job, worker: HandlerWorker) => Promise<void>;

/** Called with jobs that waited too long for a worker. */
export type ExpireJobs = (jobs: Job[]) => void;

export class Scheduler {
  private types = new Map<string, JobType>();
  private paused = false;

  constructor(
    private readonly execute: ExecuteJob,
    private readonly expire: ExpireJobs,
  ) {}

  defineType(type: string, options: JobTypeOptions): void {
    if (this.types.has(type)) {
      throw new BesterError("invalidConfig", `Handler type "${type}" is defined twice. Give each handler type one entry.`);
    }
    this.types.set(type, {
      options,
      queue: new HeapJobQueue(),
      idle: [],
      workers: new Set(),
      running: 0,
      completed: 0,
      failed: 0,
    });
  }

  optionsOf(type: string): JobTypeOptions | undefined {
    return this.types.get(type)?.options;
  }

  hasType(type: string): boolean {
    return this.types.has(type);
  }

  typeNames(): string[] {
    return [...this.types.keys()];
  }

  /** Throws `noHandler` for an unknown type and `queueFull` when the type's queue is at its limit. */
  checkCapacity(type: string): void {
    const entry = this.require(type);
    if (entry.queue.size >= entry.options.maxQueued) {
      throw new BesterError("queueFull", `The queue for type "${type}" is full at its maximum of ${entry.options.maxQueued} jobs. Retry later, or raise handlers.${type}.maxQueued.`);
    }
  }

  /** Queues a job. The limit is checked at submission only, so chain steps and restored jobs always fit. */
  enqueue(job: Job): void {
    const entry = this.require(job.type);
    entry.queue.push(job);
    this.armUnavailableTimer(job.type, entry);
    this.pump(job.type, entry);
  }

  /** Puts a job back at the front of its priority after a retryable handler failure. */
  retry(job: Job): void {
    const entry = this.require(job.type);
    entry.queue.pushFront(job);
    this.armUnavailableTimer(job.type, entry);
    this.pump(job.type, entry);
  }

  /** Adds a worker for `type` and returns a function that removes it. */
  addWorker(type: string, worker: HandlerWorker): () => void {
    const entry = this.require(type);
    entry.workers.add(worker);
    entry.idle.push(worker);
    if (entry.unavailableTimer) {
      clearTimeout(entry.unavailableTimer);
      entry.unavailableTimer = undefined;
    }
    this.pump(type, entry);

    return () => {
      entry.workers.delete(worker);
      const index = entry.idle.indexOf(worker);
      if (index !== -1) {
        entry.idle.splice(index, 1);
      }
      this.armUnavailableTimer(type, entry);
    };
  }

  recordOutcome(type: string, status: "completed" | "failed"): void {
    const entry = this.types.get(type);
    if (entry) {
      entry[status] += 1;
    }
  }

  /** Stops handing out jobs; queued jobs stay queued. */
  pause(): void {
    this.paused = true;
  }

  /** Number of jobs currently on a worker, over all types. */
  get running(): number {
    let total = 0;
    for (const entry of this.types.values()) {
      total += entry.running;
    }
    return total;
  }

  stats(): JobTypeStats[] {
    return [...this.types].map(([type, entry]) => ({
      type,
      queued: entry.queue.size,
      running: entry.running,
      workers: entry.workers.size,
      completed: entry.completed,
      failed: entry.failed,
    }));
  }

  private require(type: string): JobType {
    const entry = this.types.get(type);
    if (!entry) {
      throw new BesterError("noHandler", `No handler is registered for type "${type}". Use one of: ${this.typeNames().join(", ") || "(none configured)"}.`);
    }
    return entry;
  }

  private pump(type: string, entry: JobType): void {
    while (!this.paused && entry.idle.length > 0 && entry.queue.size > 0) {
      const worker = entry.idle.shift()!;
      const job = entry.queue.shift()!;
      entry.running += 1;

      const release = () => {
        entry.running -= 1;
        if (entry.workers.has(worker)) {
          entry.idle.push(worker);
        }
        this.pump(type, entry);
      };
      // then(release, release) instead of finally(): finally allocates two more closures and a promise per job.
      void this.execute(job, worker).then(release, release);
    }
  }

  /**
   * Starts the wait limit when jobs are queued and no worker exists. Jobs wait through brief
   * handler restarts; only a handler missing for the whole limit fails them.
   */
  private armUnavailableTimer(type: string, entry: JobType): void {
    if (entry.workers.size > 0 || entry.queue.size === 0 || entry.unavailableTimer) {
      return;
    }
    entry.unavailableTimer = setTimeout(() => {
      entry.unavailableTimer = undefined;
      if (entry.workers.size === 0) {
        this.expire(entry.queue.drain());
      }
    }, entry.options.unavailableTimeoutMs);
    entry.unavailableTimer.unref();
  }
}
