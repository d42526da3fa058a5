import { expect } from "chai";
import { PassThrough } from "node:stream";
import { pino } from "pino";
import { terminalLogStream } from "../../core/cli/terminal-log.js";

describe("terminal log lines (unit)", () => {
  it("writes one readable line per entry", async () => {
    const output = new PassThrough();
    let text = "";
    output.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    // The server's error serializer, which keeps a cause as a field of its own.
    const log = pino({ base: undefined, serializers: { err: pino.stdSerializers.errWithCause } }, terminalLogStream(output, false));

    log.child({ plugin: "handler-bridge" }).warn({ type: "sleep", code: "ENOENT" }, "handler process failed to start; retrying");
    log.error({ err: new Error("disk full", { cause: new Error("ENOSPC from write") }) }, "journal commit failed");
    await new Promise((resolve) => setImmediate(resolve));
    const lines = text.trimEnd().split("\n");

    expect(lines[0]).to.match(/^\[\d\d:\d\d:\d\d\] WARN: handler-bridge: handler process failed to start; retrying \{"type":"sleep","code":"ENOENT"\}$/);
    expect(text).to.include("ERROR: journal commit failed");
    expect(lines[1]).to.match(/^\[\d\d:\d\d:\d\d\] ERROR: journal commit failed $/);
    expect(lines[2]).to.equal("    err: Error: disk full");
    expect(lines).to.have.length(3);
    expect(text, "a stack line").to.not.include("at ");
    expect(text, "the cause").to.not.include("ENOSPC");
  });
});
