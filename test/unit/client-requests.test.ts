import { expect } from "chai";
import { setTimeout as sleep } from "node:timers/promises";
import { BesterClientError } from "../../plugins/transport-tcp/client-error.js";
import { PendingRequests } from "../../plugins/transport-tcp/client-requests.js";

function settledState(promise: Promise<unknown>): { value?: unknown; error?: unknown; settled: boolean } {
  const state: { value?: unknown; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { value, settled: true }),
    (error: unknown) => Object.assign(state, { error, settled: true }),
  );
  return state;
}

describe("PendingRequests", () => {
  it("resolves replies in request order", async () => {
    const requests = new PendingRequests(0, () => undefined);
    const first = requests.add("auth");
    const second = requests.add("newJob");

    expect(requests.resolveNext({ reply: "auth" })).to.equal(true);
    expect(requests.resolveNext({ reply: "jobSubmission" })).to.equal(true);
    expect(requests.resolveNext({ reply: "extra" })).to.equal(false);

    expect(await first.reply).to.deep.equal({ reply: "auth" });
    expect(await second.reply).to.deep.equal({ reply: "jobSubmission" });
  });

  it("starts the deadline at the write", async () => {
    const timeouts: BesterClientError[] = [];
    const requests = new PendingRequests(200, (error) => timeouts.push(error));
    const request = requests.add("newJob");
    const state = settledState(request.reply);

    // Not written yet: a long upload does not count against the deadline.
    await sleep(300);
    expect(state.settled).to.equal(false);
    request.written();
    await sleep(100);
    expect(state.settled).to.equal(false);
    await sleep(200);

    expect(state.settled).to.equal(true);
    expect((state.error as BesterClientError).code).to.equal("timedOut");
    expect(timeouts).to.have.length(1);
    expect(timeouts[0]).to.equal(state.error);
    expect(requests.size).to.equal(0);
  });

  it("times out only the oldest request", async () => {
    const timeouts: BesterClientError[] = [];
    const requests = new PendingRequests(150, (error) => timeouts.push(error));
    const first = requests.add("auth");
    first.written();
    await sleep(100);
    const second = requests.add("status");
    second.written();
    const secondState = settledState(second.reply);

    const error = await first.reply.catch((caught: unknown) => caught);

    expect((error as BesterClientError).code).to.equal("timedOut");
    expect((error as BesterClientError).message).to.include("auth request within 150 ms");
    expect(secondState.settled).to.equal(false);
    expect(requests.size).to.equal(1);
    requests.rejectAll(new Error("closed"));
  });

  it("ignores a write callback after the reply", async () => {
    const timeouts: BesterClientError[] = [];
    const requests = new PendingRequests(100, (error) => timeouts.push(error));
    const request = requests.add("auth");

    requests.resolveNext({ reply: "auth" });
    request.written();
    await sleep(250);

    expect(await request.reply).to.deep.equal({ reply: "auth" });
    expect(timeouts).to.have.length(0);
  });

  it("rejectAll rejects every request", async () => {
    const requests = new PendingRequests(100, () => undefined);
    const first = requests.add("auth");
    const second = requests.add("status");
    first.written();
    const closed = new Error("closed");

    requests.rejectAll(closed);

    expect(await first.reply.catch((caught: unknown) => caught)).to.equal(closed);
    expect(await second.reply.catch((caught: unknown) => caught)).to.equal(closed);
    expect(requests.size).to.equal(0);
  });
});
