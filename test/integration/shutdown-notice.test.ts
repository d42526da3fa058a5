import { expect } from "chai";
import { once } from "node:events";
import type { BesterPlugin } from "../../core/plugin.js";
import { BesterClient, BesterClientError } from "../../plugins/transport-tcp/client.js";
import { acceptedJob, connectAs, fixtureHandler, RawClient, startServer, waitUntil } from "../helper.js";

const handlers = { slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "3000" } }) };

/** slowPing requests whose handling has started. */
let pingsStarted = 0;

/** Replies to the request `slowPing` after 200 ms, so its reply is still due when a stop begins. */
const slowPing: BesterPlugin = {
  name: "slow-ping",
  apply(bester) {
    bester.requests.define("slowPing", {
      type: "object",
      required: ["request"],
      additionalProperties: false,
      properties: { request: { const: "slowPing" }, tag: { type: "string" } },
    });
    bester.hooks.onClientRequest.for("slowPing").tapPromise("slow-ping", async () => {
      pingsStarted += 1;
      await new Promise((resolve) => setTimeout(resolve, 200));
      return { reply: "slowPing" };
    });
  },
};

describe("shutdown notice to clients", function () {
  this.timeout(20_000);

  it("logged-in client gets shuttingDown, then the close", async () => {
    const server = await startServer({ registration: true });
    const client = await connectAs(server.port, "alice");

    await server.stop();
    const notice = await client.nextReply("error");
    await client.waitClosed();

    expect(notice).to.deep.equal({
      reply: "error",
      error: { code: "shuttingDown", message: "The server is stopping and closes this connection. Connect again once it runs." },
    });
    expect(client.closed).to.equal(true);
  });

  it("notice follows the outputs of a drained job", async () => {
    const server = await startServer({ registration: true, handlers: { slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "300" } }) } });
    const client = await connectAs(server.port, "alice");
    const jobID = await acceptedJob(client, "slow", "last words");
    await waitUntil(() => server.bester.scheduler.stats().some((entry) => entry.type === "slow" && entry.running > 0), "the job runs");

    await server.stop();
    await client.waitClosed();
    const replies = client.history.map((message) => message.reply);

    // The drain lets the running job finish, so its output and notification leave before the notice.
    expect(replies.slice(-3)).to.deep.equal(["jobOutput", "jobNotification", "error"]);
    expect(client.history.find((message) => message.reply === "jobNotification")).to.deep.include({ job: { status: "completed", jobID } });
  });

  it("notice follows a reply still due", async () => {
    const server = await startServer({ registration: true, plugins: [slowPing] });
    const client = await connectAs(server.port, "alice");
    const started = pingsStarted;
    client.send({ request: "slowPing" });
    await waitUntil(() => pingsStarted > started, "the server handles slowPing");

    await server.stop();
    await client.waitClosed();
    const replies = client.history.map((message) => message.reply);

    expect(replies.slice(-2), "the stop cut off a reply the client waited for").to.deep.equal(["slowPing", "error"]);
    expect(client.history.at(-1)).to.have.nested.property("error.code", "shuttingDown");
  });

  it("connection without a login closes without a notice", async () => {
    const server = await startServer({ registration: true });
    const client = await RawClient.connect(server.port);

    await server.stop();
    await client.waitClosed();

    expect(client.history).to.deep.equal([]);
  });

  it("client that keeps its side open does not hold the stop", async () => {
    const server = await startServer({ registration: true });
    const client = await RawClient.connect(server.port, "127.0.0.1", { allowHalfOpen: true });
    await client.request({ request: "register", account: { username: "alice", password: "secret" } });
    await client.request({ request: "auth", account: { username: "alice", password: "secret" } });

    // The server ends its side after the notice and destroys its socket once the grace is over,
    // while this client never ends its own side.
    await server.stop();
    const notice = await client.nextReply("error");
    client.close();

    expect(notice).to.have.nested.property("error.code", "shuttingDown");
    expect(server.bester.state).to.equal("stopped");
  });

  it("SDK run() names the stop as the reason", async () => {
    const server = await startServer({ registration: true, handlers, shutdown: { drainTimeoutMs: 100 } });
    const client = await BesterClient.connect({ port: server.port });
    await client.register("alice", "pw");
    await client.auth("alice", "pw");
    const serverErrors: unknown[] = [];
    client.on("serverError", (error) => serverErrors.push(error));
    const closed = once(client, "close");

    const running = client.run("slow", "x").catch((caught: unknown) => caught);
    await waitUntil(() => server.bester.scheduler.stats().some((entry) => entry.type === "slow" && entry.running > 0), "the slow job runs");
    await server.stop();
    const error = (await running) as BesterClientError;
    const [lost] = (await closed) as [Error];

    expect(error).to.be.instanceOf(BesterClientError);
    expect(error.code).to.equal("connectionClosed");
    expect(error.message).to.match(/^The server closed the connection because it is stopping\. Job \S+ was accepted before that/);
    expect(lost.message).to.equal("The server closed the connection because it is stopping.");
    expect(serverErrors, "the notice is the close's reason, not a server error").to.deep.equal([]);
  });
});
