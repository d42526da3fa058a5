import { expect } from "chai";
import { BesterClient, type JobOutputEvent } from "../../plugins/transport-tcp/client.js";
import { createHash } from "node:crypto";
import path from "node:path";
import { REPO_ROOT, startServer, tsHandler, type TestServer } from "../helper.js";

// The shipped example handlers, with the payload forms the README shows.
describe("example handlers", () => {
  let server: TestServer;
  let alice: BesterClient;
  let bob: BesterClient;

  before(async () => {
    server = await startServer({
      registration: true,
      handlers: {
        wordcount: tsHandler("examples/handlers/wordcount.ts"),
        clean: tsHandler("examples/handlers/clean.ts"),
        upper: tsHandler("examples/handlers/upper.ts"),
        sha256: { command: ["python3", path.join(REPO_ROOT, "examples", "handlers", "sha256.py")], cwd: REPO_ROOT },
      },
    });
    alice = await BesterClient.connect({ port: server.port });
    await alice.register("alice", "alice-pw");
    await alice.auth("alice", "alice-pw");
    bob = await BesterClient.connect({ port: server.port });
    await bob.register("bob", "bob-pw");
    await bob.auth("bob", "bob-pw");
  });

  after(async () => {
    await alice.close();
    await bob.close();
    await server.stop();
  });

  it("sha256 digests text as UTF-8", async () => {
    const text = "héllo wörld 🚀";

    const result = await alice.run("sha256", text);

    expect(result.notification.status).to.equal("completed");
    expect(result.outputs.map((output) => output.payload.data)).to.deep.equal([{ sha256: createHash("sha256").update(text, "utf8").digest("hex"), bytes: Buffer.byteLength(text) }]);
  });

  it("clean strips Markdown before wordcount", async () => {
    const result = await alice.run("clean", "# Title\n\nSome **bold** words and `code`.");

    expect(result.notification.status).to.equal("completed");
    expect(result.outputs).to.have.length(1);
    expect(result.outputs[0]!.payload.type).to.equal("wordcount");
    expect((result.outputs[0]!.payload.data as { words: number }).words).to.equal(5);
  });

  it("clean passes deliverTo through the chain", async () => {
    const atBob = new Promise<JobOutputEvent>((resolve) => bob.once("output", resolve));

    const result = await alice.run("clean", { text: "hello *there* bob", deliverTo: ["bob"] });
    const output = await atBob;

    expect(result.notification.status).to.equal("completed");
    expect(result.outputs).to.deep.equal([]);
    expect(output.payload.type).to.equal("wordcount");
    expect((output.payload.data as { words: number }).words).to.equal(3);
  });

  it("upper delivers to every user in deliverTo", async () => {
    const atBob = new Promise<JobOutputEvent>((resolve) => bob.once("output", resolve));

    const result = await alice.run("upper", { text: "hi bob", deliverTo: ["alice", "bob"] });

    expect(result.outputs.map((output) => output.payload.data)).to.deep.equal(["HI BOB"]);
    expect((await atBob).payload.data).to.equal("HI BOB");
  });

  it("upper takes one user name as deliverTo", async () => {
    const atBob = new Promise<JobOutputEvent>((resolve) => bob.once("output", resolve));

    const result = await alice.run("upper", { text: "just bob", deliverTo: "bob" });

    expect(result.notification.status).to.equal("completed");
    expect(result.outputs).to.deep.equal([]);
    expect((await atBob).payload.data).to.equal("JUST BOB");
  });

  it("upper fails a deliverTo of another shape", async () => {
    const result = await alice.run("upper", { text: "hi", deliverTo: { user: "bob" } });

    expect(result.notification.status).to.equal("failed");
    expect(result.notification.error?.code).to.equal("handlerFailed");
    expect(result.notification.error?.message).to.include('Expected "deliverTo" to be a user name or a non-empty list of user names');
    expect(result.outputs).to.deep.equal([]);
  });
});
