import { expect } from "chai";
import type { Job } from "../../core/jobs/job.js";
import { Scheduler, type HandlerWorker } from "../../core/jobs/scheduler.js";

function job(id: string, priority = 0): Job {
  return { id, type: "t", data: null, priority, user: "u", origin: "s:1", notify: true, chainLength: 0, attempts: 0, acceptedAt: 0 };
}

/** A run the test ends by hand; `breaksAtStart` is what the scheduler passed for it. */
interface HeldRun {
  job: Job;
  breaksAtStart: number;
  end(): void;
}

/**
 * Builds a scheduler with `workers` workers of type "t" whose runs stay in flight until the test
 * ends them, so a test can check which jobs are in flight at each step.
 */
function heldScheduler(workers: number): { scheduler: Scheduler; inFlight: HeldRun[]; started: string[] } {
  const inFlight: HeldRun[] = [];
  const started: string[] = [];
  const scheduler = new Scheduler(
    (runningJob, _worker, breaksAtStart) =>
      new Promise<void>((resolve) => {
        started.push(runningJob.id);
        const heldRun: HeldRun = {
          job: runningJob,
          breaksAtStart,
          end: () => {
            inFlight.splice(inFlight.indexOf(heldRun), 1);
            resolve();
          },
        };
        inFlight.push(heldRun);
      }),
    () => undefined,
  );
  scheduler.defineType("t", { maxQueued: 100, unavailableTimeoutMs: 60_000, retries: 2 });
  for (let index = 1; index <= workers; index += 1) {
    const worker: HandlerWorker = { name: `t#${index}`, run: () => new Promise(() => undefined) };
    scheduler.addWorker("t", worker);
  }
  return { scheduler, inFlight, started };
}

/** Lets the release callbacks of ended runs, which run in promise reactions, happen. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function ids(runs: HeldRun[]): string[] {
  return runs.map((run) => run.job.id);
}

/** Breaks every run in flight as a handler crash would: each is recorded, then retried or isolated. */
async function crash(scheduler: Scheduler, inFlight: HeldRun[]): Promise<boolean[]> {
  const verdicts: boolean[] = [];
  for (const run of [...inFlight]) {
    const alone = scheduler.recordBreak(run.job, run.breaksAtStart);
    verdicts.push(alone);
    scheduler.retry(run.job, true);
    run.end();
    // Each connection's close is its own event, so the release of one happens before the next close.
    await settle();
  }
  return verdicts;
}

describe("scheduler isolation", () => {
  it("records a crash of several jobs as shared", async () => {
    const { scheduler, inFlight } = heldScheduler(3);
    for (const id of ["a", "b", "c"]) {
      scheduler.enqueue(job(id));
    }

    const verdicts = await crash(scheduler, inFlight);

    // The first break finds others in flight, and the last finds the breaks that came before it.
    expect(verdicts).to.deep.equal([false, false, false]);
  });

  it("records a lone break as alone", () => {
    const { scheduler, inFlight } = heldScheduler(3);
    scheduler.enqueue(job("a"));

    expect(scheduler.recordBreak(inFlight[0]!.job, inFlight[0]!.breaksAtStart)).to.equal(true);
  });

  it("ignores breaks that ended before the run", async () => {
    const { scheduler, inFlight } = heldScheduler(2);
    scheduler.enqueue(job("a"));
    scheduler.recordBreak(inFlight[0]!.job, inFlight[0]!.breaksAtStart);
    inFlight[0]!.end();
    await settle();
    scheduler.enqueue(job("b"));

    expect(ids(inFlight)).to.deep.equal(["b"]);
    expect(scheduler.recordBreak(inFlight[0]!.job, inFlight[0]!.breaksAtStart)).to.equal(true);
  });

  it("runs isolated jobs one at a time", async () => {
    const { scheduler, inFlight, started } = heldScheduler(3);
    for (const id of ["a", "b", "c", "d", "e"]) {
      scheduler.enqueue(job(id));
    }
    const before = started.length;
    await crash(scheduler, inFlight);

    for (let step = 0; step < 3; step += 1) {
      expect(inFlight, `step ${step}`).to.have.length(1);
      inFlight[0]!.end();
      await settle();
    }

    // Retries go to the front in submission order, whatever order they broke in; the queued jobs
    // then run in parallel.
    expect(started.slice(before)).to.deep.equal(["a", "b", "c", "d", "e"]);
    expect(ids(inFlight)).to.deep.equal(["d", "e"]);
  });

  it("waits for jobs in flight before an isolated job", async () => {
    const { scheduler, inFlight } = heldScheduler(3);
    for (const id of ["a", "b", "c", "d"]) {
      scheduler.enqueue(job(id));
    }
    const first = inFlight[0]!;
    scheduler.recordBreak(first.job, first.breaksAtStart);
    scheduler.retry(first.job, true);
    first.end();
    await settle();

    // b and c are still in flight, so neither a nor d behind it starts on the free worker.
    expect(ids(inFlight)).to.deep.equal(["b", "c"]);
    inFlight[0]!.end();
    inFlight[0]!.end();
    await settle();
    expect(ids(inFlight)).to.deep.equal(["a"]);
  });

  it("holds higher priorities behind a waiting isolated job", async () => {
    const { scheduler, inFlight } = heldScheduler(2);
    scheduler.enqueue(job("a"));
    scheduler.enqueue(job("b"));
    const first = inFlight[0]!;
    scheduler.recordBreak(first.job, first.breaksAtStart);
    scheduler.retry(first.job, true);
    first.end();
    await settle();

    // A steady stream of higher priority jobs must not keep the isolated job waiting.
    scheduler.enqueue(job("urgent", 5));
    const whileWaiting = ids(inFlight);
    inFlight[0]!.end();
    await settle();
    const afterB = ids(inFlight);
    scheduler.enqueue(job("urgent2", 5));
    const whileAlone = ids(inFlight);
    inFlight[0]!.end();
    await settle();

    expect(whileWaiting).to.deep.equal(["b"]);
    expect(afterB).to.deep.equal(["a"]);
    expect(whileAlone).to.deep.equal(["a"]);
    expect(ids(inFlight)).to.deep.equal(["urgent", "urgent2"]);
  });

  it("keeps a lone job isolated when resent", async () => {
    const { scheduler, inFlight, started } = heldScheduler(2);
    scheduler.enqueue(job("a"));
    scheduler.enqueue(job("b"));
    await crash(scheduler, inFlight);
    const lone = inFlight[0]!;
    expect(lone.job.id).to.equal("a");

    // As after an unread break: a plain retry of the job that was running alone.
    scheduler.retry(lone.job);
    lone.end();
    await settle();

    expect(ids(inFlight)).to.deep.equal(["a"]);
    expect(started.slice(-2)).to.deep.equal(["a", "a"]);
  });

  it("runs retried jobs without isolation in parallel", async () => {
    const { scheduler, inFlight } = heldScheduler(2);
    scheduler.enqueue(job("a"));
    scheduler.enqueue(job("b"));
    const first = inFlight[0]!;
    scheduler.retry(first.job);
    first.end();
    await settle();

    expect(ids(inFlight)).to.deep.equal(["b", "a"]);
  });
});
