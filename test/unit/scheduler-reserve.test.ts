import { expect } from "chai";
import { BesterError } from "../../core/errors.js";
import type { Job } from "../../core/jobs/job.js";
import { Scheduler } from "../../core/jobs/scheduler.js";

function job(id: string): Job {
  return { id, type: "t", data: null, priority: 0, user: "u", origin: "s:1", notify: true, chainLength: 0, attempts: 0, acceptedAt: 0 };
}

describe("scheduler queue reservations", () => {
  function scheduler(): Scheduler {
    const created = new Scheduler(async () => undefined, () => undefined);
    created.defineType("t", { maxQueued: 2, unavailableTimeoutMs: 60_000, retries: 0 });
    return created;
  }

  it("counts reserved places against maxQueued", () => {
    const queue = scheduler();
    queue.reserve("t");
    queue.reserve("t");

    expect(() => queue.reserve("t")).to.throw(BesterError).with.property("code", "queueFull");
  });

  it("frees a place when a reservation is released", () => {
    const queue = scheduler();
    const release = queue.reserve("t");
    queue.reserve("t");
    release();
    release();

    expect(() => queue.reserve("t")).to.not.throw();
    expect(() => queue.reserve("t")).to.throw(BesterError);
  });

  it("counts a queued job in place of its released reservation", () => {
    const queue = scheduler();
    queue.reserve("t")();
    queue.enqueue(job("a"));
    queue.reserve("t");

    expect(() => queue.checkCapacity("t")).to.throw(BesterError).with.property("code", "queueFull");
  });
});
