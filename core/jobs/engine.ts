// The job lifecycle: accept, run on a handler, carry out the director, notify. Each accepted job
// ends with exactly one notification to its submitter (none for handoffs from peers).

import type { Logger } from "pino";
import { BesterError, type WireError } from "../errors.js";
import type { BesterHooks } from "../hooks.js";
import { rawOr, rememberRaw, type RawJson } from "../protocol/raw-json.js";
import type { SessionRegistry } from "../sessions.js";
import { directingError, runDirector } from "./directing.js";
import { LocalDelivery } from "./local-delivery.js";
import { createJobId, formatOutputId, type HandlerOutput, type Job } from "./job.js";
import { decideRunFailure, isLinkBreak } from "./run-failure.js";
import type { HandlerWorker, Scheduler } from "./scheduler.js";

export interface SubmitOptions {
  user: string;
  type: string;
  data: unknown;
  priority?: number;
  /** Server the submitter belongs to; defaults to this server. */
  origin?: string;
  /** False for handoffs, which send no notification. */
  notify?: boolean;
  /** The original JSON bytes of `data`, spliced into the handler frame instead of serialising it again. */
  rawData?: RawJson;
  /**
   * Called with the new job right before it is queued, so the caller can hold the job's events
   * until its reply to the submitter has left. The job can run, but sends nothing, before
   * submit() resolves.
   */
  onQueued?: (job: Job) => void;
}

export interface EngineOptions {
  serverName: string;
  maxChainLength: number;
}

export class JobEngine {
  private accepting = true;
  private completing = 0;
  private interrupted = 0;
  private resumed = 0;
  private unreadResends = new WeakMap<Job, number>();
  /**
   * Jobs whose onJobAccepted taps are still running (the promise) or failed (`false`). Such a job
   * already runs, but its results wait for acceptance, and a failed acceptance discards them.
   */
  private acceptance = new WeakMap<Job, Promise<void> | false>();
  private readonly local: LocalDelivery;

  constructor(
    private readonly hooks: BesterHooks,
    private readonly scheduler: Scheduler,
    sessions: SessionRegistry,
    private readonly log: Logger,
    private readonly options: EngineOptions,
  ) {
    this.local = new LocalDelivery(hooks, sessions, log, options);
  }

  setServerName(name: string): void {
    this.options.serverName = name;
  }

  /** Stops accepting new jobs; jobs already accepted continue. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /**
   * Accepts a job: runs onJobSubmit, checks the type and queue limit, queues the job and lets
   * onJobAccepted persist it. Resolves with the job once the submitter may receive `accepted`.
   */
  async submit(options: SubmitOptions): Promise<Job> {
    if (!this.accepting) {
      throw new BesterError("shuttingDown", "The server is shutting down and accepts no new jobs. Resubmit once it is back.");
    }

    let job: Job = {
      id: createJobId(),
      type: options.type,
      data: options.data,
      priority: options.priority ?? 0,
      user: options.user,
      origin: options.origin ?? this.options.serverName,
      notify: options.notify ?? true,
      chainLength: 0,
      attempts: 0,
      acceptedAt: Date.now(),
    };
    rememberRaw(job, "data", options.rawData);
    if (this.hooks.onJobSubmit.isUsed()) {
      job = await this.hooks.onJobSubmit.promise(job);
    }
    this.scheduler.checkCapacity(job.type);

    if (!this.hooks.onJobAccepted.isUsed()) {
      options.onQueued?.(job);
      this.scheduler.enqueue(job);
      return job;
    }

    // The job runs on its handler while the taps persist it, so a store's commit adds nothing to
    // the job's round trip. The taps start first: they see the job as submitted.
    const accepted = this.hooks.onJobAccepted.promise(job);
    this.acceptance.set(job, accepted);
    options.onQueued?.(job);
    this.scheduler.enqueue(job);
    try {
      await accepted;
    } catch (error) {
      this.acceptance.set(job, false);
      throw error;
    }
    this.acceptance.delete(job);
    return job;
  }

  /** Queues a job again after a restart, with its stored state. */
  resume(job: Job): void {
    this.resumed += 1;
    this.scheduler.enqueue(job);
  }

  /** Jobs a store plugin queued again at start, left unfinished by the previous run. */
  get resumedJobs(): number {
    return this.resumed;
  }

  /** Moves a job to its next handler for a `handler` director; checks the chain limit first. */
  continueWith(job: Job, type: string, data: unknown): void {
    if (job.chainLength + 1 >= this.options.maxChainLength) {
      throw new BesterError("chainTooLong", `Job ${job.id} passed through ${job.chainLength + 1} handlers, the maximum (maxChainLength). Check the handlers for a loop, or raise maxChainLength.`);
    }
    if (!this.scheduler.hasType(type)) {
      throw new BesterError("noHandler", `The handler director names type "${type}", which has no handler on this server. Fix the handler's director or configure handlers.${type}.`);
    }
    job.chainLength += 1;
    job.attempts = 0;
    job.type = type;
    job.data = data;
    if (this.hooks.onJobUpdated.isUsed()) {
      this.hooks.onJobUpdated.promise(job).catch((error: unknown) => this.log.error({ err: error, jobId: job.id }, "onJobUpdated tap failed; a restart may run the previous step again"));
    }
    this.scheduler.enqueue(job);
  }

  /**
   * Runs one job on a worker; the scheduler calls this. Never rejects. Resolves once the worker is
   * free again, which is when the handler replied: the director and the job's end go on after.
   */
  readonly execute = async (job: Job, worker: HandlerWorker, breaksAtStart: number): Promise<void> => {
    if (this.acceptance.get(job) === false) {
      // Its acceptance failed and the submitter received `rejected`, so the job must not run.
      return;
    }

    let reply: Record<string, unknown>;
    try {
      reply = await worker.run(job, (progress) => this.reportProgress(job, progress));
    } catch (error) {
      this.handleRunError(job, worker, breaksAtStart, error);
      return;
    }

    // Releasing the connection here saves holding it through delivery and through onJobDone taps,
    // such as a journal waiting for its commit, so the next job starts at once.
    this.completing += 1;
    // One then() with both callbacks instead of catch() plus finally(): two promises fewer per job.
    this.complete(job, reply).then(this.completed, (error: unknown) => {
      this.completed();
      this.log.error({ err: error, jobId: job.id }, "completing the job failed");
    });
  };

  private readonly completed = (): void => {
    this.completing -= 1;
  };

  /** Jobs whose handler replied and whose director or end is still running; shutdown waits for them. */
  get completingJobs(): number {
    return this.completing;
  }

  /** Jobs whose handler connection shutdown closed before the reply; they did not end in this run. */
  get interruptedJobs(): number {
    return this.interrupted;
  }

  /** Carries out the handler's reply: runs its director, then finishes the job. */
  private async complete(job: Job, reply: Record<string, unknown>): Promise<void> {
    // Checked first, so a job with no acceptance pending, the usual case, costs no extra promise.
    if (this.acceptance.has(job) && !(await this.isAccepted(job))) {
      this.log.warn({ jobId: job.id, type: job.type }, "the job's acceptance failed after its handler replied, so its result is discarded");
      return;
    }

    try {
      const outcome = await runDirector(this.hooks, job, reply);
      if (outcome === "done") {
        await this.finish(job, { status: "completed" });
      }
    } catch (error) {
      await this.finish(job, { status: "failed", error: directingError(this.log, job, error) });
    }
  }

  /**
   * Waits for the job's onJobAccepted taps and returns false when they failed. Nothing a job
   * produces is sent before its acceptance is final, so a job whose submitter received `rejected`
   * sends nothing.
   */
  private async isAccepted(job: Job): Promise<boolean> {
    const pending = this.acceptance.get(job);
    if (pending === false) {
      return false;
    }
    try {
      await pending;
      return true;
    } catch {
      // submit() reports the failure to the submitter.
      return false;
    }
  }

  /** Fails jobs that waited for a worker longer than the type allows. */
  readonly expire = (jobs: Job[]): void => {
    for (const job of jobs) {
      // A job that was on a connection when it closed may be what ended the handler, so the message mentions it.
      const earlier = job.attempts > 0 ? ` The job was sent to the handler before, and the connection closed before a reply ${job.attempts === 1 ? "once" : `${job.attempts} times`}, so the job itself may make the handler exit.` : "";
      void this.finish(job, {
        status: "failed",
        error: {
          code: "handlerUnavailable",
          message: `No handler for type "${job.type}" connected within ${this.scheduler.optionsOf(job.type)?.unavailableTimeoutMs ?? "its"} ms (handlers.${job.type}.unavailableTimeoutMs). Check that the handler process runs and listens on its socket; the server log names the socket.${earlier}`,
        },
      });
    }
  };

  /** Sends a message to a local user, online or stored for a later login; see LocalDelivery.deliverToUser. */
  deliverToUser(user: string, message: Record<string, unknown>): Promise<void> {
    return this.local.deliverToUser(user, message);
  }

  /** Delivers without the account check, in the same event-loop turn; see LocalDelivery.deliverToKnownUser. */
  deliverToKnownUser(user: string, message: Record<string, unknown>): Promise<void> {
    return this.local.deliverToKnownUser(user, message);
  }

  /** Builds the `jobOutput` message for one handler output. */
  outputMessage(job: Job, output: HandlerOutput): Record<string, unknown> {
    return { reply: "jobOutput", job: { jobID: formatOutputId(job), payload: { type: job.type, data: rawOr(output, "payload") } } };
  }

  private handleRunError(job: Job, worker: HandlerWorker, breaksAtStart: number, error: unknown): void {
    const resends = this.unreadResends.get(job) ?? 0;
    const retries = this.scheduler.optionsOf(job.type)?.retries ?? 0;
    const alone = isLinkBreak(error) ? this.scheduler.recordBreak(job, breaksAtStart) : true;
    const decision = decideRunFailure(job, error, { accepting: this.accepting, retries, resends, alone });
    const context = { jobId: job.id, type: job.type, worker: worker.name };

    switch (decision.action) {
      case "leave":
        // Shutdown closed the connection under the job: it stays stored and runs after the next start.
        this.interrupted += 1;
        this.log.info(context, "job interrupted by shutdown; left for the next start");
        return;
      case "resend":
        this.unreadResends.set(job, resends + 1);
        this.log.debug(context, "handler closed the connection without reading the job; resending it");
        this.scheduler.retry(job);
        return;
      case "isolate":
        // The message is enough here: the error comes from the connection, so its stack adds nothing.
        this.log.warn({ ...context, reason: decision.reason }, "handler connection failed mid-job while other jobs were in flight; retrying the job alone without counting an attempt");
        this.scheduler.retry(job, true);
        return;
      case "retry":
        job.attempts += 1;
        this.log.warn({ ...context, attempt: job.attempts, reason: decision.reason }, "handler connection failed mid-job; retrying on another connection");
        // The job broke its connection alone, so it stays alone: a second crash then breaks no other job.
        this.scheduler.retry(job, true);
        return;
      case "fail":
        void this.finish(job, { status: "failed", error: decision.error });
    }
  }

  private reportProgress(job: Job, progress: unknown): void {
    if (this.acceptance.has(job)) {
      // Progress waits for the job's acceptance, as its output does.
      void this.isAccepted(job).then((accepted) => accepted && this.reportProgress(job, progress));
      return;
    }

    const report = { job, progress };
    if (job.notify) {
      this.deliverToKnownUser(job.user, { reply: "jobProgress", job: { jobID: job.id, progress } }).catch((error: unknown) => this.log.warn({ err: error, jobId: job.id, user: job.user }, "progress report not delivered"));
    }
    if (this.hooks.onJobProgress.isUsed()) {
      this.hooks.onJobProgress.promise(report).catch((error: unknown) => this.log.error({ err: error, jobId: job.id }, "onJobProgress tap failed"));
    }
  }

  /** Runs onJobEnd, sends the job's one notification and runs onJobDone. */
  async finish(job: Job, outcome: { status: "completed" } | { status: "failed"; error: WireError }): Promise<void> {
    if (this.acceptance.has(job) && !(await this.isAccepted(job))) {
      return;
    }

    this.scheduler.recordOutcome(job.type, outcome.status);
    if (outcome.status === "failed") {
      this.log.warn({ jobId: job.id, type: job.type, user: job.user, code: outcome.error.code, reason: outcome.error.message }, "job failed");
    } else if (this.log.isLevelEnabled("debug")) {
      // Checked first, so the hot path builds no log object at the default level.
      this.log.debug({ jobId: job.id, type: job.type, user: job.user, ms: Date.now() - job.acceptedAt }, "job completed");
    }

    if (this.hooks.onJobEnd.isUsed()) {
      // The submitter still hears about the job when recording its end fails; a restart may run it again.
      await this.hooks.onJobEnd.promise(job, outcome).catch((error: unknown) => this.log.error({ err: error, jobId: job.id }, "onJobEnd tap failed"));
    }

    try {
      if (job.notify) {
        await this.deliverToKnownUser(job.user, { reply: "jobNotification", job: { ...outcome, jobID: job.id } });
      }
      if (this.hooks.onJobDone.isUsed()) {
        await this.hooks.onJobDone.promise(job, outcome);
      }
    } catch (error) {
      this.log.error({ err: error, jobId: job.id }, "finishing the job failed");
    }
  }
}

