import { expect } from "chai";
import type { Bester } from "../../core/bester.js";
import { acceptedJob, connectAs, fixtureHandler, notificationFor, startServer, type TestServer } from "../helper.js";

/** Replaces the built-in `handler` director with one that records each step and then chains as the built-in does. */
function recordingHandlerDirector(steps: string[]) {
  return {
    name: "director-handler",
    apply(bester: Bester) {
      bester.hooks.onDirector.for("handler").tap("director-handler", ({ job, output, director }) => {
        steps.push(`${job.type}->${String(director.handler)}`);
        bester.engine.continueWith(job, director.handler as string, output.payload);
        return "continued";
      });
    },
  };
}

describe("built-in replacement", () => {
  let server: TestServer;
  const steps: string[] = [];

  before(async () => {
    server = await startServer({
      registration: true,
      plugins: [recordingHandlerDirector(steps)],
      handlers: { echo: fixtureHandler("echo"), scripted: fixtureHandler("scripted") },
    });
  });

  after(async () => {
    await server.stop();
  });

  it("logs the replaced built-in", () => {
    const line = server.logs.find((entry) => entry.msg === "a configured plugin replaces the built-in plugin of the same name");

    expect(line?.plugin).to.equal("director-handler");
  });

  it("runs the replacement director only", async () => {
    const alice = await connectAs(server.port, "alice");

    const jobID = await acceptedJob(alice, "scripted", { reply: { payload: "next", director: { type: "handler", handler: "echo" } } });
    const notification = await notificationFor(alice, jobID);

    expect(notification.status).to.equal("completed");
    expect(steps).to.deep.equal(["scripted->echo"]);
    alice.close();
  });
});
