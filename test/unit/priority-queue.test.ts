import { expect } from "chai";
import fc from "fast-check";
import type { Job } from "../../core/jobs/job.js";
import { HeapJobQueue } from "../../core/jobs/priority-queue.js";

function job(id: string, priority: number): Job {
  return { id, type: "t", data: null, priority, user: "u", origin: "s:1", notify: true, chainLength: 0, attempts: 0, acceptedAt: 0 };
}

function drainIds(queue: HeapJobQueue): string[] {
  return queue.drain().map((entry) => entry.id);
}

describe("priority queue", () => {
  it("is empty at first", () => {
    const queue = new HeapJobQueue();

    expect(queue.size).to.equal(0);
    expect(queue.shift()).to.equal(undefined);
  });

  it("removes the first matching job", () => {
    const queue = new HeapJobQueue();
    for (const [id, priority] of [["a", 0], ["b", 3], ["c", 0], ["d", 3], ["e", 1]] as const) {
      queue.push(job(id, priority));
    }

    const removed = queue.removeFirst((queued) => queued.id === "c" || queued.id === "e" || queued.id === "a");

    expect(removed?.id, "the matching job shift() would return first").to.equal("e");
    expect(queue.removeFirst((queued) => queued.id === "x")).to.equal(undefined);
    expect(drainIds(queue)).to.deep.equal(["b", "d", "a", "c"]);
  });

  it("shifts higher priority first", () => {
    const queue = new HeapJobQueue();
    queue.push(job("low", -5));
    queue.push(job("mid", 0));
    queue.push(job("high", 9));

    expect(drainIds(queue)).to.deep.equal(["high", "mid", "low"]);
  });

  it("keeps submission order among equal priorities", () => {
    const queue = new HeapJobQueue();
    for (let index = 0; index < 50; index += 1) {
      queue.push(job(`j${index}`, 1));
    }

    expect(drainIds(queue)).to.deep.equal(Array.from({ length: 50 }, (_, index) => `j${index}`));
  });

  it("puts a retried job ahead of its priority but behind higher ones", () => {
    const queue = new HeapJobQueue();
    queue.push(job("a", 1));
    queue.push(job("b", 1));
    queue.push(job("urgent", 5));
    queue.pushFront(job("r1", 1));

    expect(drainIds(queue)).to.deep.equal(["urgent", "r1", "a", "b"]);
  });

  it("runs put-back jobs in submission order", () => {
    const queue = new HeapJobQueue();
    queue.push(job("z-fresh", 0));
    // Ids sort by creation time, as createJobId makes them.
    queue.pushFront(job("r3", 0));
    queue.pushFront(job("r1", 0));
    queue.pushFront(job("r2", 0));

    expect(drainIds(queue)).to.deep.equal(["r1", "r2", "r3", "z-fresh"]);
  });

  it("counts pushes and shifts in size", () => {
    const queue = new HeapJobQueue();
    queue.push(job("a", 0));
    queue.push(job("b", 0));
    queue.shift();

    expect(queue.size).to.equal(1);
    expect(queue.drain()).to.have.length(1);
    expect(queue.size).to.equal(0);
  });

  it("matches a stable sort by priority for any input", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -3, max: 3 }), { maxLength: 200 }), (priorities) => {
        const queue = new HeapJobQueue();
        const jobs = priorities.map((priority, index) => job(String(index), priority));
        jobs.forEach((entry) => queue.push(entry));

        const expected = [...jobs].sort((a, b) => b.priority - a.priority).map((entry) => entry.id);
        expect(drainIds(queue)).to.deep.equal(expected);
      }),
      { numRuns: 200 },
    );
  });

  it("keeps order when pushes and shifts interleave", () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }), { maxLength: 100 }), (steps) => {
        const queue = new HeapJobQueue();
        const model: Job[] = [];
        steps.forEach((priority, index) => {
          if (priority === undefined) {
            const expected = model.sort((a, b) => b.priority - a.priority).shift();
            expect(queue.shift()?.id).to.equal(expected?.id);
          } else {
            const entry = job(String(index), priority);
            queue.push(entry);
            model.push(entry);
          }
        });
      }),
      { numRuns: 200 },
    );
  });

  it("keeps order after removing any jobs", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: -2, max: 2 }), fc.boolean()), { maxLength: 120 }), (entries) => {
        const queue = new HeapJobQueue();
        const jobs = entries.map(([priority], index) => job(String(index), priority));
        jobs.forEach((entry) => queue.push(entry));
        const removeIds = new Set(entries.flatMap(([, remove], index) => (remove ? [String(index)] : [])));
        const sorted = [...jobs].sort((a, b) => b.priority - a.priority);

        // Removed jobs leave the queue, so each call finds the next one.
        const removed: string[] = [];
        let next = queue.removeFirst((queued) => removeIds.has(queued.id));
        while (next) {
          removed.push(next.id);
          next = queue.removeFirst((queued) => removeIds.has(queued.id));
        }

        expect(removed).to.deep.equal(sorted.filter((entry) => removeIds.has(entry.id)).map((entry) => entry.id));
        expect(drainIds(queue)).to.deep.equal(sorted.filter((entry) => !removeIds.has(entry.id)).map((entry) => entry.id));
      }),
      { numRuns: 200 },
    );
  });
});
