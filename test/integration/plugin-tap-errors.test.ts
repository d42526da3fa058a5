import { expect } from "chai";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import { connectAs, fixtureHandler, startServer, submitJob, type TestServer } from "../helper.js";

/** Throws a plain Error from the tap named by the job data's `fail`, or from the `boom` request. */
const failingPlugin = {
  name: "failing-taps",
  apply(bester: Bester) {
    bester.hooks.onJobSubmit.tapPromise("failing-taps", async (job) => {
      const fail = (job.data as { fail?: string }).fail;
      if (fail === "submit") {
        throw new Error("the quota service is unreachable");
      }
      if (fail === "reject") {
        throw new BesterError("notPermitted", "Jobs of this kind are not allowed here.");
      }
      return job;
    });
    bester.hooks.onJobAccepted.tapPromise("failing-taps", async (job) => {
      if ((job.data as { fail?: string }).fail === "accept") {
        throw new Error("the audit log is read-only");
      }
    });
    bester.hooks.onClientRequest.for("boom").tapPromise("failing-taps", async () => {
      throw new Error("the boom request always fails");
    });
  },
};

describe("plugin tap errors", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") }, plugins: [failingPlugin] });
  });

  after(async () => {
    await server.stop();
  });

  /** Returns the error-level log lines whose message is `msg`. */
  function errorLines(msg: string): Array<Record<string, unknown>> {
    return server.logs.filter((line) => line.level === 50 && line.msg === msg);
  }

  it("logs a plain error in onJobSubmit", async () => {
    const client = await connectAs(server.port, "alice");

    const submission = await submitJob(client, "echo", { fail: "submit" });

    expect(submission.status).to.equal("rejected");
    expect(submission.error?.code).to.equal("internalError");
    const [line] = errorLines("job submission failed");
    expect(line, "an error line for the failed submission").to.not.equal(undefined);
    expect(line!.user).to.equal("alice");
    expect((line!.err as { message: string }).message).to.include('Plugin "failing-taps" failed in hook onJobSubmit: the quota service is unreachable');
    client.close();
  });

  it("logs a plain error in onJobAccepted", async () => {
    const client = await connectAs(server.port, "bob");

    const submission = await submitJob(client, "echo", { fail: "accept" });

    expect(submission.error?.code).to.equal("internalError");
    const line = errorLines("job submission failed").find((entry) => entry.user === "bob");
    expect((line?.err as { message: string } | undefined)?.message).to.include('Plugin "failing-taps" failed in hook onJobAccepted: the audit log is read-only');
    client.close();
  });

  it("logs a plain error in a request tap", async () => {
    const client = await connectAs(server.port, "carol");

    const reply = await client.request({ request: "boom" });

    expect((reply.error as { code: string }).code).to.equal("internalError");
    const [line] = errorLines("request handler failed");
    expect(line!.request).to.equal("boom");
    expect((line!.err as { message: string }).message).to.include('Plugin "failing-taps" failed in hook onClientRequest.for("boom"): the boom request always fails');
    client.close();
  });

  it("logs a coded rejection at debug level only", async () => {
    const client = await connectAs(server.port, "dave");
    const errorsBefore = server.logs.filter((line) => line.level === 50).length;

    const submission = await submitJob(client, "echo", { fail: "reject" });

    expect(submission.error).to.deep.equal({ code: "notPermitted", message: "Jobs of this kind are not allowed here." });
    expect(server.logs.filter((line) => line.level === 50).length).to.equal(errorsBefore);
    const rejected = server.logs.find((line) => line.msg === "job submission rejected" && line.user === "dave");
    expect(rejected?.level).to.equal(20);
    expect(rejected?.code).to.equal("notPermitted");
    client.close();
  });
});
