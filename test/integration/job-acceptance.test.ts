import path from "node:path";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "chai";
import type { Bester } from "../../core/bester.js";
import { BesterError } from "../../core/errors.js";
import { deliverTo } from "../../plugins/handler-bridge/serve-handler.js";
import {
  connectAs,
  makeTempDir,
  notificationFor,
  serveInProcess,
  startServer,
  submitJob,
  type InProcessHandler,
  type TestServer,
  waitUntil,
} from "../helper.js";

/** Marks of the jobs the in-process handler received, and of those it replied to. */
const received = new Set<string>();
const replied = new Set<string>();

/**
 * Holds each job's acceptance, as a store's commit does, until the handler replied to it. For
 * data {"fail": true} it then rejects the job, as a store whose write failed does.
 */
const acceptAfterReply = {
  name: "accept-after-reply",
  apply(bester: Bester) {
    bester.hooks.onJobAccepted.tapPromise("accept-after-reply", async (job) => {
      const data = job.data as { mark: string; fail?: boolean };
      await waitUntil(() => replied.has(data.mark), `the handler replied to ${data.mark}`);
      // Lets the reply reach the daemon, so the job's result is ready before its acceptance ends.
      await sleep(50);
      if (data.fail) {
        throw new BesterError("storeFailed", `Storing job ${job.id} failed: the disk is full.`);
      }
    });
  },
};

describe("jobs run while their acceptance is pending", () => {
  let server: TestServer;
  let sockets: string;
  let handler: InProcessHandler;

  before(async () => {
    sockets = await makeTempDir("bester-accept-");
    handler = await serveInProcess(path.join(sockets, "mark.sock"), "mark", (payload: { mark: string }, job, tools) => {
      received.add(payload.mark);
      tools.progress(`started ${payload.mark}`);
      replied.add(payload.mark);
      return { payload, director: deliverTo(job.from) };
    });
    server = await startServer({
      registration: true,
      plugins: [acceptAfterReply],
      handlers: { mark: { socket: path.join(sockets, "mark.sock"), connections: 2 } },
    });
  });

  after(async () => {
    await server.stop();
    await handler.stop();
    await rm(sockets, { recursive: true, force: true });
  });

  it("runs jobs before acceptance ends", async () => {
    const client = await connectAs(server.port, "alice");
    const submission = await submitJob(client, "mark", { mark: "ok-1" });
    expect(submission.status).to.equal("accepted");
    const jobID = submission.jobID!;
    const notification = await notificationFor(client, jobID);

    expect(notification).to.deep.equal({ status: "completed", jobID });
    const order = client.history
      .filter((message) => JSON.stringify(message).includes(jobID))
      .map((message) => String(message.reply));
    expect(order).to.deep.equal(["jobSubmission", "jobProgress", "jobOutput", "jobNotification"]);
    client.close();
  });

  it("rejects a job and discards its result", async () => {
    const client = await connectAs(server.port, "bob");
    const failed = await submitJob(client, "mark", { mark: "fail-1", fail: true });

    expect(failed.status).to.equal("rejected");
    // storeFailed is a host-only code: the submitter receives internalError, as for a failed journal write.
    expect(failed.error?.code).to.equal("internalError");
    expect(received.has("fail-1"), "the handler ran the job while it was being accepted").to.equal(true);

    // A later job on the same connection completes, so anything of the failed job would be here by now.
    const next = await submitJob(client, "mark", { mark: "ok-2" });
    await notificationFor(client, next.jobID!);
    await sleep(100);
    const events = client.history.filter((message) => !["register", "auth", "jobSubmission"].includes(String(message.reply)));
    expect(events.map((message) => String(message.reply))).to.deep.equal(["jobProgress", "jobOutput", "jobNotification"]);
    expect(JSON.stringify(events)).to.not.include("fail-1");
    client.close();
  });

  it("keeps serving after a failed acceptance", async () => {
    const client = await connectAs(server.port, "carol");
    const submissions = await Promise.all(["ok-3", "ok-4", "ok-5"].map((mark) => submitJob(client, "mark", { mark })));
    const notifications = await Promise.all(submissions.map((submission) => notificationFor(client, submission.jobID!)));

    expect(notifications.map((notification) => notification.status)).to.deep.equal(["completed", "completed", "completed"]);
    expect(server.bester.scheduler.stats().find((entry) => entry.type === "mark")).to.include({ queued: 0, running: 0, workers: 2 });
    client.close();
  });
});
