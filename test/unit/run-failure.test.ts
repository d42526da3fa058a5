import { expect } from "chai";
import { BesterError } from "../../core/errors.js";
import type { Job } from "../../core/jobs/job.js";
import { decideRunFailure, MAX_UNREAD_RESENDS } from "../../core/jobs/run-failure.js";
import { HandlerLinkError } from "../../plugins/handler-bridge/handler-connection.js";

describe("decideRunFailure", () => {
  function job(attempts = 0): Job {
    return { id: "j1", type: "upper", data: "x", priority: 0, user: "alice", origin: "127.0.0.1:2222", notify: true, chainLength: 0, attempts, acceptedAt: 0 };
  }

  const broken = new HandlerLinkError("handlerFailed", "The connection to handler \"upper\" closed before it replied.");
  const unread = new HandlerLinkError("handlerFailed", "The connection to handler \"upper\" closed before it replied.", true);
  const running = { accepting: true, retries: 2, resends: 0, alone: true };

  it("leaves jobs broken by shutdown", () => {
    expect(decideRunFailure(job(), broken, { ...running, accepting: false })).to.deep.equal({ action: "leave" });
  });

  it("resends unread jobs up to the cap", () => {
    expect(decideRunFailure(job(), unread, { ...running, retries: 0 })).to.deep.equal({ action: "resend" });

    const capped = decideRunFailure(job(), unread, { ...running, retries: 0, resends: MAX_UNREAD_RESENDS });
    expect(capped).to.deep.include({ action: "fail" });
  });

  it("retries while attempts remain", () => {
    expect(decideRunFailure(job(1), broken, running)).to.deep.equal({ action: "retry", reason: broken.message });
    expect(decideRunFailure(job(2), broken, running).action).to.equal("fail");
  });

  it("counts attempts in the message", () => {
    const decision = decideRunFailure(job(2), broken, running);

    expect(decision).to.deep.equal({
      action: "fail",
      error: {
        code: "handlerFailed",
        message: `${broken.message} It failed the same way on each of 3 attempts while running alone on the handler, so the job itself most likely makes the handler exit or close the connection. For a handler the server starts itself, the server log has its exit code and stderr.`,
      },
    });
  });

  it("blames a lone job without retries", () => {
    const decision = decideRunFailure(job(), broken, { ...running, retries: 0 });

    expect(decision).to.have.nested.property("error.code", "handlerFailed");
    expect(decision).to.have.nested.property("error.message").that.includes('No other job of type "upper" was in flight, so the job itself most likely made the handler exit');
  });

  it("isolates a shared break without counting", () => {
    expect(decideRunFailure(job(), broken, { ...running, alone: false })).to.deep.equal({ action: "isolate", reason: broken.message });
    // Out of retries, a shared break still isolates, because another job may have ended the handler.
    expect(decideRunFailure(job(2), broken, { ...running, alone: false })).to.deep.equal({ action: "isolate", reason: broken.message });
    expect(decideRunFailure(job(), broken, { ...running, retries: 0, alone: false }).action).to.equal("isolate");
  });

  it("resends unread shared breaks", () => {
    expect(decideRunFailure(job(), unread, { ...running, alone: false })).to.deep.equal({ action: "resend" });
  });

  it("keeps unread messages without blame", () => {
    const decision = decideRunFailure(job(), unread, { ...running, retries: 0, resends: MAX_UNREAD_RESENDS });

    expect(decision).to.deep.equal({ action: "fail", error: { code: "handlerFailed", message: unread.message } });
  });

  it("fails shared handler errors at once", () => {
    const failed = new BesterError("handlerFailed", "Handler \"upper\" failed: bad input.");
    const timedOut = new BesterError("handlerTimeout", "Handler \"upper\" did not reply within 10 ms.");

    expect(decideRunFailure(job(), failed, { ...running, alone: false }).action).to.equal("fail");
    expect(decideRunFailure(job(), timedOut, { ...running, alone: false })).to.deep.equal({ action: "fail", error: { code: "handlerTimeout", message: timedOut.message } });
  });

  it("fails handler errors at once", () => {
    const failed = new BesterError("handlerFailed", "Handler \"upper\" failed: bad input.");

    expect(decideRunFailure(job(), failed, running)).to.deep.equal({ action: "fail", error: { code: "handlerFailed", message: failed.message } });
  });

  it("fails plain exceptions as handlerFailed", () => {
    const decision = decideRunFailure(job(), new Error("boom"), running);

    expect(decision.action).to.equal("fail");
    expect(decision).to.have.nested.property("error.code", "handlerFailed");
  });
});
