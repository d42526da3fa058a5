import { expect } from "chai";
import { BesterError } from "../../core/errors.js";
import type { Job } from "../../core/jobs/job.js";
import { Scheduler, type HandlerWorker } from "../../core/jobs/scheduler.js";

function job(id: string): Job {
  return { id, type: "t", data: null, priority: 0, user: "u", origin: "s:1", notify: true, chainLength: 0, attempts: 0, acceptedAt: 0 };
}

describe("scheduler queue limit", () => {
  function scheduler(): Scheduler {
    const created = new Scheduler(() => new Promise<void>(() => undefined), () => undefined);
    created.defineType("t", { maxQueued: 2, unavailableTimeoutMs: 60_000, retries: 0 });
    return created;
  }

  it("rejects a submission with queueFull once maxQueued jobs wait", () => {
    const queue = scheduler();
    queue.checkCapacity("t");
    queue.enqueue(job("a"));
    queue.checkCapacity("t");
    queue.enqueue(job("b"));

    expect(() => queue.checkCapacity("t")).to.throw(BesterError).with.property("code", "queueFull");
  });

  it("frees a place when a worker takes a queued job", () => {
    const queue = scheduler();
    queue.enqueue(job("a"));
    queue.enqueue(job("b"));
    const worker: HandlerWorker = { name: "t#1", run: () => new Promise(() => undefined) };
    queue.addWorker("t", worker);

    expect(() => queue.checkCapacity("t")).to.not.throw();
    expect(queue.stats()[0]).to.include({ queued: 1, running: 1 });
  });

  it("rejects an unknown type with noHandler", () => {
    expect(() => scheduler().checkCapacity("other")).to.throw(BesterError).with.property("code", "noHandler");
  });
});
