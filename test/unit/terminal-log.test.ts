import { expect } from "chai";
import { PassThrough } from "node:stream";
import { pino } from "pino";
import { terminalLogStream } from "../../core/cli/terminal-log.js";

describe("terminal log lines (unit)", () => {
  it("writes one readable line per entry", async () => {
    const output = new PassThrough();
    let text = "";
    output.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    const log = pino({ base: undefined }, terminalLogStream(output, false));

    log.child({ plugin: "handler-bridge" }).warn({ type: "sleep", code: "ENOENT" }, "handler process failed to start; retrying");
    log.error({ err: new Error("disk full") }, "journal commit failed");
    await new Promise((resolve) => setImmediate(resolve));
    const lines = text.trimEnd().split("\n");

    expect(lines[0]).to.match(/^\[\d\d:\d\d:\d\d\] WARN: handler-bridge: handler process failed to start; retrying \{"type":"sleep","code":"ENOENT"\}$/);
    expect(text).to.include("ERROR: journal commit failed");
    expect(text).to.include('"message": "disk full"');
    expect(text).to.not.include("at ");
  });
});
