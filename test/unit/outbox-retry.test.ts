import { ClientOfflineError, ErrorReply } from "@redis/client";
import { expect } from "chai";
import pino from "pino";
import { BesterError } from "../../core/errors.js";
import { endSentence } from "../../core/errors.js";
import { OutboxRetry } from "../../plugins/federation/outbox-retry.js";
import { isStoreUnreachable } from "../../plugins/store/unreachable.js";

const STORE = "redis://127.0.0.1:6379";

function retryWith(timeoutMs: number): OutboxRetry {
  return new OutboxRetry({ timeoutMs, store: () => STORE, log: pino({ level: "silent" }) });
}

/** Returns a write that throws each of `errors` in turn, then resolves with "stored". */
function failingWrite(errors: Error[]): { write: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    write: async () => {
      calls += 1;
      const error = errors[calls - 1];
      if (error) {
        throw error;
      }
      return "stored";
    },
    calls: () => calls,
  };
}

describe("outbox retry", () => {
  it("unreachable store errors", () => {
    expect(isStoreUnreachable(new ClientOfflineError())).to.equal(true);
    expect(isStoreUnreachable(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), { code: "ECONNREFUSED" }))).to.equal(true);
    expect(isStoreUnreachable(new ErrorReply("LOADING Redis is loading the dataset in memory"))).to.equal(true);
    expect(isStoreUnreachable(new ErrorReply("OOM command not allowed when used memory > 'maxmemory'."))).to.equal(false);
    expect(isStoreUnreachable(new Error("SQLITE_FULL: database or disk is full"))).to.equal(false);
    expect(isStoreUnreachable("The client is offline")).to.equal(false);
  });

  it("retries until the write succeeds", async () => {
    const { write, calls } = failingWrite([new ClientOfflineError(), new ClientOfflineError()]);
    const result = await retryWith(5000).run(write, { peer: "b:1", jobId: "j1", requestedAt: Date.now() });
    expect(result).to.equal("stored");
    expect(calls()).to.equal(3);
  });

  it("other errors fail at once", async () => {
    const { write, calls } = failingWrite([new ErrorReply("OOM command not allowed")]);
    const error = await retryWith(5000).run(write, { peer: "b:1", requestedAt: Date.now() }).catch((failure: unknown) => failure);
    expect(error).to.be.instanceOf(BesterError);
    expect((error as BesterError).code).to.equal("directorFailed");
    expect((error as BesterError).message).to.equal("Storing the message for peer b:1 in the outbox failed; the server log has the details.");
    expect(calls()).to.equal(1);
  });

  it("zero limit fails at once", async () => {
    const { write, calls } = failingWrite([new ClientOfflineError()]);
    const error = await retryWith(0).run(write, { peer: "b:1", requestedAt: Date.now() }).catch((failure: unknown) => failure);
    expect((error as BesterError).code).to.equal("directorFailed");
    expect((error as BesterError).message).to.match(/^Storing the message for peer b:1 in the outbox failed because the server's store was unreachable for 0\.0 s, the limit set by federation\.outboxRetryMs\. Submit the job again once the store is back\.$/);
    expect(calls()).to.equal(1);
  });

  it("close holds a retrying write", async () => {
    const retry = retryWith(60_000);
    const { write } = failingWrite(Array.from({ length: 100 }, () => new ClientOfflineError()));
    let settled = false;
    void retry.run(write, { peer: "b:1", requestedAt: Date.now() }).then(() => (settled = true), () => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    retry.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled).to.equal(false);
  });

  it("stop holds a write past its limit", async () => {
    const retry = retryWith(200);
    retry.stop();
    const { write } = failingWrite(Array.from({ length: 100 }, () => new ClientOfflineError()));
    let settled = false;
    void retry.run(write, { peer: "b:1", requestedAt: Date.now() }).then(() => (settled = true), () => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(settled).to.equal(false);
  });

  it("sentence ending", () => {
    expect(endSentence("The client is offline")).to.equal("The client is offline.");
    expect(endSentence("Disk full.")).to.equal("Disk full.");
  });
});
