import { expect } from "chai";
import type { BesterPlugin } from "../../core/plugin.js";
import { fixtureHandler, login, RawClient, startServer, type TestServer } from "../helper.js";

/** Replaces the output of jobs whose data has `replace: true`, to prove changed payloads are not spliced from stale bytes. */
const replaceOutput: BesterPlugin = {
  name: "test-replace-output",
  apply(bester) {
    bester.hooks.onHandlerOutput.tap("test-replace-output", (output) => {
      const payload = output.payload as { replace?: unknown } | undefined;
      return typeof payload === "object" && payload?.replace === true ? { ...output, payload: { replaced: true } } : output;
    });
  },
};

describe("large payloads through the daemon", () => {
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") }, plugins: [replaceOutput] });
    client = await RawClient.connect(server.port);
    await login(client, "alice");
  });

  after(async () => {
    client.close();
    await server.stop();
  });

  async function roundTrip(data: unknown, raw?: string): Promise<unknown> {
    const text = raw ?? JSON.stringify({ request: "newJob", job: { payload: { type: "echo", data } } });
    const body = Buffer.from(text, "utf8");
    const header = Buffer.alloc(4);
    header.writeUInt32LE(body.length, 0);
    client.writeRaw(Buffer.concat([header, body]));
    const submission = await client.nextReply("jobSubmission");
    const jobID = (submission.submission as { jobID: string }).jobID;
    const output = await client.next((message) => message.reply === "jobOutput" && (message.job as { jobID: string }).jobID.startsWith(`${jobID}:`));
    return (output.job as { payload: { data: unknown } }).payload.data;
  }

  it("returns a 1 MiB string unchanged", async () => {
    const data = "a\"\\b✓".repeat(200_000);

    expect(await roundTrip(data)).to.equal(data);
  });

  it("returns a large nested object with unicode and escapes unchanged", async () => {
    const data = { rows: Array.from({ length: 2000 }, (_, index) => ({ index, name: `ü-${index}\n"q"`, ok: index % 2 === 0, none: null })) };

    expect(await roundTrip(data)).to.deep.equal(data);
  });

  it("uses the last of duplicate data keys, as JSON.parse does", async () => {
    const big = "z".repeat(20_000);
    const raw = `{"request":"newJob","job":{"payload":{"type":"echo","data":"first","data":"${big}"}}}`;

    expect(await roundTrip(undefined, raw)).to.equal(big);
  });

  it("sends the payload an onHandlerOutput tap returned, not the handler's bytes", async () => {
    const data = { replace: true, filler: "f".repeat(20_000) };

    expect(await roundTrip(data)).to.deep.equal({ replaced: true });
  });
});
