import { expect } from "chai";
import { Writable } from "node:stream";
import { createLogger, logRequestFailure } from "../../core/log.js";
import { BesterError } from "../../core/errors.js";

/** Returns a logger that writes to a list of parsed lines, and the list. */
function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger({ stream }), lines };
}

describe("log error serialisation", () => {
  it("keeps a wrapping error's message as is", () => {
    const { log, lines } = captureLogger();
    const cause = new Error("disk full");
    const error = new BesterError("pluginFailed", 'Plugin "archive" failed in hook onJobDone: disk full', { cause });

    log.error({ err: error }, "finishing the job failed");

    const err = lines[0]!.err as { message: string; cause: { message: string } };
    expect(err.message).to.equal('Plugin "archive" failed in hook onJobDone: disk full');
    expect(err.cause.message).to.equal("disk full");
  });

  it("logs an error without a cause unchanged", () => {
    const { log, lines } = captureLogger();

    log.error({ err: new Error("socket closed") }, "send failed");

    const err = lines[0]!.err as { message: string; type: string; cause?: unknown };
    expect(err.message).to.equal("socket closed");
    expect(err.type).to.equal("Error");
    expect(err.cause).to.equal(undefined);
  });
});

describe("request failure logging", () => {
  it("logs a plain failure at error level each time", () => {
    const { log, lines } = captureLogger();

    logRequestFailure(log, new Error("bug"), { user: "alice" }, "job submission failed");
    logRequestFailure(log, new Error("bug"), { user: "alice" }, "job submission failed");

    expect(lines.map((line) => line.level)).to.deep.equal([50, 50]);
    expect(lines[0]!.user).to.equal("alice");
  });

  it("warns once per kind for a store outage", () => {
    const { log, lines } = captureLogger();
    log.level = "debug";
    const outage = new BesterError("pluginFailed", "journal commit failed", { cause: new BesterError("storeUnavailable", "Redis at redis://127.0.0.1:6379 is unreachable") });

    logRequestFailure(log, outage, {}, "job submission failed");
    logRequestFailure(log, outage, {}, "job submission failed");
    logRequestFailure(log, outage, {}, "login failed with an error");

    expect(lines.map((line) => [line.msg, line.level])).to.deep.equal([
      ["job submission failed", 40],
      ["job submission failed", 20],
      ["login failed with an error", 40],
    ]);
  });
});
