import { expect } from "chai";
import type { Bester } from "../../core/bester.js";
import type { DirectorContext } from "../../core/hooks.js";
import { acceptedJob, connectAs, fixtureHandler, loginAndLeave, notificationFor, outputFor, RawClient, startServer, type TestServer } from "../helper.js";

/** Creates a third-party director plugin that records each context it receives. */
function recordingDirector(seen: DirectorContext[]) {
  return {
    name: "recording-director",
    apply(bester: Bester) {
      bester.hooks.onDirector.for("archive").tap("recording-director", (context) => {
        seen.push(structuredClone(context));
        return "done";
      });
      // Delivers through the engine to the one user the director names, as a third-party director may.
      bester.hooks.onDirector.for("deliverToOne").tapPromise("recording-director", async ({ job, output, director }) => {
        await bester.engine.deliverToUser(director.user as string, bester.engine.outputMessage(job, output));
        return "done";
      });
      // Hands delivery to the built-in userDelivery director, which checks every name before sending.
      bester.hooks.onDirector.for("team").tapPromise("recording-director", ({ job, output, director }) =>
        bester.hooks.onDirector.for("userDelivery").promise({ job, output, director: { type: "userDelivery", users: director.members as string[] } }),
      );
      // A tap that declines (returns undefined) leaves the director type unhandled.
      bester.hooks.onDirector.for("declined").tap("recording-director", () => undefined);
      // A tap that returns neither outcome, as a plugin that confuses the contract may.
      bester.hooks.onDirector.for("confused").tap("recording-director", () => true as unknown as "done");
    },
  };
}

describe("directors", () => {
  let server: TestServer;
  let alice: RawClient;
  const seen: DirectorContext[] = [];

  before(async () => {
    server = await startServer({
      registration: true,
      plugins: [recordingDirector(seen)],
      handlers: {
        echo: fixtureHandler("echo"),
        scripted: fixtureHandler("scripted"),
      },
    });
    alice = await connectAs(server.port, "alice");
  });

  after(async () => {
    alice.close();
    await server.stop();
  });

  it("userDelivery sends one output per user however often it is named", async () => {
    const bob = await connectAs(server.port, "bob");
    const jobID = await acceptedJob(alice, "echo", { deliverTo: ["bob", "bob", `bob@${server.bester.serverName}`], value: "once" });
    await notificationFor(alice, jobID);
    await outputFor(bob, jobID);

    await bob.next((message) => message.reply === "jobOutput", 300).then(
      () => expect.fail("bob received the output twice"),
      () => undefined,
    );
    bob.close();
  });

  it("userDelivery to an empty list completes with no output", async () => {
    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: 1, director: { type: "userDelivery", users: [] } } });
    const notification = await notificationFor(alice, jobID);

    expect(notification.status).to.equal("completed");
  });

  it("userDelivery to an invalid address fails with unknownUser", async () => {
    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: 1, director: { type: "userDelivery", users: ["not a name"] } } });
    const notification = await notificationFor(alice, jobID);

    expect(notification.error?.code).to.equal("unknownUser");
    expect(notification.error?.message).to.include("not a name");
  });

  it("handler director to a type with no handler fails with noHandler", async () => {
    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: 1, director: { type: "handler", handler: "missing" } } });
    const notification = await notificationFor(alice, jobID);

    expect(notification.error?.code).to.equal("noHandler");
    expect(notification.error?.message).to.include("missing");
  });

  it("handoff to this server runs a new job that notifies nobody", async () => {
    const target = `echo@${server.bester.serverName}`;
    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: "handed off", director: { type: "handoff", handler: target } } });
    const notification = await notificationFor(alice, jobID);
    const output = await alice.nextReply("jobOutput");

    const job = output.job as { jobID: string; payload: { type: string; data: unknown } };
    const [newJobID, address] = [job.jobID.slice(0, job.jobID.indexOf(":")), job.jobID.slice(job.jobID.indexOf(":") + 1)];
    expect(notification.status).to.equal("completed");
    expect(newJobID).to.not.equal(jobID);
    expect(address).to.equal(`alice@${server.bester.serverName}`);
    expect(job.payload).to.deep.equal({ type: "echo", data: "handed off" });
    await notificationFor(alice, newJobID, 300).then(
      () => expect.fail("the handed-off job sent a notification"),
      () => undefined,
    );
  });

  it("plugin director receives the job, output and options", async () => {
    const director = { type: "archive", shelf: "b2" };
    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: { n: 5 }, director } });
    const notification = await notificationFor(alice, jobID);

    expect(notification.status).to.equal("completed");
    const context = seen.find((entry) => entry.job.id === jobID);
    expect(context?.director).to.deep.equal(director);
    expect(context?.output).to.deep.equal({ payload: { n: 5 }, director });
    expect(context?.job.user).to.equal("alice");
    expect(context?.job.type).to.equal("scripted");
  });

  it("engine delivery to an unknown user fails", async () => {
    for (const user of ["nobody", `alice@${server.bester.serverName}`]) {
      const jobID = await acceptedJob(alice, "scripted", { reply: { payload: 1, director: { type: "deliverToOne", user } } });
      const notification = await notificationFor(alice, jobID);

      expect(notification.error?.code, user).to.equal("unknownUser");
      expect(notification.error?.message, user).to.include(`"${user}" is not a user of ${server.bester.serverName}`);
    }
  });

  it("engine delivery keeps output for an offline user", async () => {
    await loginAndLeave(server, "carol");
    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: "for later", director: { type: "deliverToOne", user: "carol" } } });
    const notification = await notificationFor(alice, jobID);
    const carol = await connectAs(server.port, "carol");
    const output = await outputFor(carol, jobID);
    carol.close();

    expect(notification.status).to.equal("completed");
    expect(output.payload).to.deep.equal({ type: "scripted", data: "for later" });
  });

  it("plugin director can delegate to userDelivery", async () => {
    const bob = await connectAs(server.port, "bob");
    const delivered = await acceptedJob(alice, "scripted", { reply: { payload: "team news", director: { type: "team", members: ["alice", "bob"] } } });
    const rejected = await acceptedJob(alice, "scripted", { reply: { payload: "not for bob", director: { type: "team", members: ["bob", "nobody"] } } });

    const completed = await notificationFor(alice, delivered);
    const failed = await notificationFor(alice, rejected);

    expect(completed.status).to.equal("completed");
    expect((await outputFor(bob, delivered)).payload.data).to.equal("team news");
    expect((await outputFor(alice, delivered)).payload.data).to.equal("team news");
    // Every local name is checked before anything is sent, so bob gets nothing of the failed job.
    expect(failed.error?.code).to.equal("unknownUser");
    expect(bob.history.some((message) => JSON.stringify(message).includes(rejected))).to.equal(false);
    bob.close();
  });

  it("plugin director that declines is unknownDirector", async () => {
    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: 1, director: { type: "declined" } } });
    const notification = await notificationFor(alice, jobID);

    expect(notification.error?.code).to.equal("unknownDirector");
    expect(notification.error?.message).to.include('plugin "recording-director"');
  });

  it("plugin director with a wrong outcome fails the job", async () => {
    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: 1, director: { type: "confused" } } });
    const notification = await notificationFor(alice, jobID);

    expect(notification.error?.code).to.equal("directorFailed");
    expect(notification.error?.message).to.include('in plugin "recording-director"');
    const line = server.logs.find((entry) => entry.msg === "carrying out the handler's output failed" && entry.jobId === jobID);
    expect((line?.err as { message: string } | undefined)?.message).to.include('The tap returned true, but a tap of this hook returns "done", "continued" or undefined.');
  });
});
