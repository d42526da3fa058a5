import { expect } from "chai";
import { startServer, type TestServer } from "../helper.js";

describe("handler supervisor", () => {
  let server: TestServer | undefined;

  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it("retries a command that cannot start", async () => {
    server = await startServer({
      handlers: { missing: { command: ["/nonexistent/handler-binary"], unavailableTimeoutMs: 60_000 } },
    });

    // Start-up waits for the handler, then goes on; by then several start attempts were made.
    const deadline = Date.now() + 5000;
    let attempts = 0;
    while (Date.now() < deadline && attempts < 2) {
      attempts = server.logs.filter((line) => line.msg === "handler process failed to start; retrying").length;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    expect(attempts).to.be.at.least(2);
    const last = server.logs.filter((line) => line.msg === "handler process failed to start; retrying").at(-1)!;
    expect(last.type).to.equal("missing");
    expect(last.crashes).to.be.a("number").and.at.least(2);
  });

  it("names a missing working folder", async () => {
    server = await startServer({
      handlers: { nowhere: { command: ["/bin/sleep", "30"], cwd: "/nonexistent/handler-folder", unavailableTimeoutMs: 60_000 } },
    });

    const failure = server.logs.find((line) => String(line.msg).startsWith("handler process could not start"))!;

    expect(failure.msg).to.equal("handler process could not start: working folder /nonexistent/handler-folder not found. Check handlers.nowhere.command and handlers.nowhere.cwd");
  });

  it("names a missing program without a stack", async () => {
    server = await startServer({
      handlers: { missing: { command: ["/nonexistent/handler-binary", "--flag"], unavailableTimeoutMs: 60_000 } },
    });

    const failures = server.logs.filter((line) => String(line.msg).startsWith("handler process could not start"));
    const retries = server.logs.filter((line) => line.msg === "handler process failed to start; retrying");
    const started = server.logs.filter((line) => line.msg === "handler process started" && line.type === "missing");
    const failure = failures[0]!;

    expect(failure.msg).to.equal('handler process could not start: program "/nonexistent/handler-binary" not found. Check handlers.missing.command and handlers.missing.cwd');
    expect(failure.code).to.equal("ENOENT");
    expect(failure.command).to.deep.equal(["/nonexistent/handler-binary", "--flag"]);
    expect(failure).to.not.have.property("err");
    expect(started).to.deep.equal([]);
    // Start-up waited for the handler, so it failed several times, and each failure after the first is a retry line only.
    expect(retries.length).to.be.at.least(3);
    expect(failures).to.have.length(1);
  });
});
