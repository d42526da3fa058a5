import { expect } from "chai";
import { once } from "node:events";
import { rm } from "node:fs/promises";
import path from "node:path";
import type { Bester } from "../../core/bester.js";
import { spawnCli } from "../cli-runner.js";
import { writeDaemonConfig } from "../daemon-process.js";
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

describe("transport-tcp omitted without a replacement", () => {
  it("warns that no client can connect", async () => {
    const { folder, file } = await writeDaemonConfig({ omitBuiltins: ["transport-tcp"] });
    const child = spawnCli(["start", "--config", file, "--log", path.join(folder, "bester.log")]);
    const exited = once(child, "exit");
    let stderr = "";

    try {
      await new Promise<void>((resolve, reject) => {
        child.stderr!.on("data", (chunk: Buffer) => {
          stderr += chunk.toString("utf8");
          if (stderr.includes("Press Ctrl-C to stop.")) {
            resolve();
          }
        });
        child.once("exit", (code) => reject(new Error(`bester start exited with ${code} before it was ready: ${stderr}`)));
      });
    } finally {
      child.kill("SIGTERM");
      await exited;
      await rm(folder, { recursive: true, force: true });
    }

    expect(stderr).to.include("listening on no address");
    expect(stderr).to.include("warning: no plugin opened a listener, so no client can connect.");
  });
});
