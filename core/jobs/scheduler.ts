// Per-type queues and the workers that drain them. A worker is one handler connection: it takes
// one job at a time, so a type's concurrency is its number of workers. The scheduler uses
// no sockets. The handler bridge adds and removes workers as connections come and go.
//
// The connections of a type usually lead to one handler process, so a job that crashes it breaks
// the connections of every job in flight. Such jobs are retried alone: while an isolated job runs,
// no other job of its type is in flight, so its next break shows whether it is the cause.

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
  /**
   * Extra attempts after a connection breaks mid-job while the job runs alone. A break while other
   * jobs of the type were in flight counts no attempt.
   */
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
  /** Count of the type's runs whose connection broke mid-job since start, for recordBreak(). */
  breaks: number;
  /**
   * Ids of queued jobs that must run with no other job of the type in flight. Ids, not objects, so
   * a queue that stores copies of jobs elsewhere works the same.
   */
  isolated: Set<string>;
  /** Id of the isolated job in flight. No other job of the type is handed out meanwhile. */
  loneJobId: string | undefined;
  unavailableTimer?: NodeJS.Timeout;
}

/**
 * Called for each job a worker takes; the job engine supplies it. `breaksAtStart` is the type's
 * count of broken runs when the run started, for recordBreak().
 */
export type ExecuteJob = (job: Job, worker: HandlerWorker, breaksAtStart: number) => Promise<void>;

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
      breaks: 0,
      isolated: new Set(),
      loneJobId: undefined,
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

  /**
   * Puts a job back at the front of its priority after a retryable handler failure. With `alone`,
   * the job next runs with no other job of its type in flight. A job that was running alone stays
   * isolated either way, until a run of it ends without a broken connection.
   */
  retry(job: Job, alone = false): void {
    const entry = this.require(job.type);
    if (alone || entry.loneJobId === job.id) {
      entry.isolated.add(job.id);
    }
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

  /**
   * Counts a run of `job` whose connection broke mid-job and returns whether the job ran alone.
   * It ran alone when no other job of its type was in flight at the break and no other run of the
   * type broke during this run. Only a lone break shows that the job itself ended the handler.
   */
  recordBreak(job: Job, breaksAtStart: number): boolean {
    const entry = this.require(job.type);
    // The run of `job` itself still counts in `running` until the engine's execute() resolves.
    const alone = entry.running <= 1 && entry.breaks === breaksAtStart;
    entry.breaks += 1;
    return alone;
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
      // The config is read once at start, so a handler just added to it is missing until a restart.
      throw new BesterError("noHandler", `No handler is registered for type "${type}". Use one of: ${this.typeNames().join(", ") || "(none configured)"}. A handler added to the config takes effect when the server restarts.`);
    }
    return entry;
  }

  private pump(type: string, entry: JobType): void {
    while (!this.paused && entry.idle.length > 0 && entry.queue.size > 0 && entry.loneJobId === undefined) {
      // While a job waits to run alone, nothing else starts: once the jobs in flight end, it goes
      // first, ahead of higher priorities too. Letting them pass would let a steady stream of them
      // hold it, and every job behind it, back for good.
      // NOTE: after a crash every job in flight broke, so the wait is short. A job whose connection
      // stayed up delays it until that job ends, which with timeoutMs 0 has no limit.
      const alone = entry.isolated.size > 0;
      if (alone && entry.running > 0) {
        return;
      }

      const job = alone ? entry.queue.removeFirst((queued) => entry.isolated.has(queued.id)) : entry.queue.shift();
      if (!job) {
        // An isolated id whose job left the queue another way, as when it expired.
        entry.isolated.clear();
        continue;
      }
      const worker = entry.idle.shift()!;
      entry.running += 1;
      if (alone) {
        entry.isolated.delete(job.id);
        entry.loneJobId = job.id;
      }

      const release = () => {
        entry.running -= 1;
        if (alone) {
          entry.loneJobId = undefined;
        }
        if (entry.workers.has(worker)) {
          entry.idle.push(worker);
        }
        this.pump(type, entry);
      };
      // then(release, release) instead of finally(): finally allocates two more closures and a promise per job.
      void this.execute(job, worker, entry.breaks).then(release, release);
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
        entry.isolated.clear();
        this.expire(entry.queue.drain());
      }
    }, entry.options.unavailableTimeoutMs);
    entry.unavailableTimer.unref();
  }
}
