// Type checks of the client SDK's public types. Each `@ts-expect-error` line must fail to compile,
// so `npm run typecheck` (which includes test/) fails when a type loosens again. The runtime
// asserts only show that the accepted forms behave as written.

import { expect } from "chai";
import {
  BesterClientError,
  WIRE_ERROR_CODES,
  type ClientErrorCode,
  type JobNotificationEvent,
  type JobTypeStats,
  type ServerStatus,
  type WireError,
  type WireErrorCode,
} from "../../index.js";

/** True when A and B are the same type, false otherwise. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Returns the failure code after checking the status, which makes `error` required. */
function failureCode(event: JobNotificationEvent): WireErrorCode | undefined {
  if (event.status === "failed") {
    return event.error.code;
  }
  return undefined;
}

/** Returns the failure code without checking the status, which programs written before the union still do. */
function optionalFailureCode(event: JobNotificationEvent): WireErrorCode | undefined {
  return event.error?.code;
}

describe("client SDK types", () => {
  it("error codes reject misspelt codes", () => {
    const error = new BesterClientError("queueFull", "The queue is full.");

    // @ts-expect-error "queuefull" is no client error code, so the comparison cannot be true.
    expect(error.code === "queuefull").to.equal(false);
    expect(error.code === "queueFull").to.equal(true);
    // @ts-expect-error the constructor takes only known codes.
    expect(new BesterClientError("queuefull", "x").code).to.equal("queuefull");
  });

  it("client error codes include the client's own", () => {
    const own: ClientErrorCode[] = ["connectFailed", "connectionClosed", "timedOut", "unexpectedReply", "invalidArgument"];
    const wire: ClientErrorCode[] = Object.keys(WIRE_ERROR_CODES) as WireErrorCode[];

    expect(own).to.have.length(5);
    expect(wire).to.include("noHandler");
    // @ts-expect-error connectFailed comes from the client, never from the server.
    const notWire: WireErrorCode = "connectFailed";
    expect(notWire).to.equal("connectFailed");
  });

  it("wire error code is a known code", () => {
    const error: WireError = { code: "handlerTimeout", message: "The handler took too long." };
    // @ts-expect-error "timeout" is not a wire error code.
    const misspelt: WireError = { code: "timeout", message: "x" };

    expect(error.code).to.equal("handlerTimeout");
    expect(misspelt.code).to.equal("timeout");
  });

  it("notification status narrows the error", () => {
    const failed: JobNotificationEvent = { jobID: "j1", status: "failed", error: { code: "handlerFailed", message: "boom" } };
    const completed: JobNotificationEvent = { jobID: "j2", status: "completed" };
    // @ts-expect-error a failed notification always carries its error.
    const withoutError: JobNotificationEvent = { jobID: "j3", status: "failed" };
    // @ts-expect-error a completed notification carries no error.
    const completedWithError: JobNotificationEvent = { jobID: "j4", status: "completed", error: { code: "handlerFailed", message: "x" } };

    expect(failureCode(failed)).to.equal("handlerFailed");
    expect(failureCode(completed)).to.equal(undefined);
    expect(optionalFailureCode(failed)).to.equal("handlerFailed");
    expect(optionalFailureCode(completed)).to.equal(undefined);
    expect(withoutError.status).to.equal("failed");
    expect(completedWithError.status).to.equal("completed");
  });

  it("job type stats match the status report", () => {
    const same: Equal<ServerStatus["jobTypes"][number], JobTypeStats> = true;
    const stats: JobTypeStats = { type: "wordcount", queued: 1, running: 2, workers: 4, completed: 3, failed: 0 };

    expect(same).to.equal(true);
    expect(stats.workers).to.equal(4);
  });
});
