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
});
