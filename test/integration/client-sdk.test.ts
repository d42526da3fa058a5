import { expect } from "chai";
import type { BesterPlugin } from "../../core/plugin.js";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import * as entry from "../../index.js";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { createStoreProvider } from "../../plugins/store/index.js";
import { BesterClient, BesterClientError, type JobOutputEvent } from "../../plugins/transport-tcp/client.js";
import { fixtureHandler, freePort, startServer, waitUntil, type TestServer } from "../helper.js";

const handlers = { echo: fixtureHandler("echo"), progress: fixtureHandler("progress"), slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "500" } }) };

async function loggedIn(port: number, user: string): Promise<BesterClient> {
  const client = await BesterClient.connect({ port });
  await client.register(user, "pw").catch((error: unknown) => {
    if (!(error instanceof BesterClientError && error.code === "userExists")) {
      throw error;
    }
  });
  await client.auth(user, "pw");
  return client;
}

describe("client SDK BesterClient", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, handlers });
  });

  after(async () => {
    await server.stop();
  });

  it("is exported from the package entry", () => {
    expect(entry.BesterClient).to.equal(BesterClient);
    expect(entry.BesterClientError).to.equal(BesterClientError);
    expect(entry.serveHandler).to.be.a("function");
    expect(entry.deliverTo("bob")).to.deep.equal({ type: "userDelivery", users: ["bob"] });
  });

  it("run returns long strings unchanged", async () => {
    const client = await loggedIn(server.port, "alice");
    const ascii = "base64+/=".repeat(120_000);
    const unicode = `${"ü".repeat(70_000)}"\\\n`;

    const asciiResult = await client.run("echo", ascii);
    const unicodeResult = await client.run("echo", unicode);

    expect(asciiResult.outputs[0]?.payload.data).to.equal(ascii);
    expect(unicodeResult.outputs[0]?.payload.data).to.equal(unicode);
    await client.close();
  });

  it("run resolves with outputs and notification", async () => {
    const client = await loggedIn(server.port, "alice");

    const result = await client.run("echo", { hello: "world" });

    expect(result.jobID).to.be.a("string");
    expect(result.outputs).to.deep.equal([{ jobID: `${result.jobID}:alice@${server.bester.serverName}`, payload: { type: "echo", data: { hello: "world" } } }]);
    expect(result.notification).to.deep.equal({ status: "completed", jobID: result.jobID });
    for (const event of ["output", "notification", "progress", "close"] as const) {
      expect(client.listenerCount(event), `${event} listeners left after run()`).to.equal(0);
    }
    await client.close();
  });

  it("run rejects when the client closes first", async () => {
    const client = await loggedIn(server.port, "alice");

    const running = client.run("progress", { steps: 1 }).catch((caught: unknown) => caught);
    await client.close();
    const error = await running;

    expect(error).to.be.instanceOf(BesterClientError);
    expect((error as BesterClientError).code).to.equal("connectionClosed");
    expect((error as BesterClientError).message).to.match(/^The client was closed before job /);
  });

  it("run names the job when the server closes first", async () => {
    const client = await loggedIn(server.port, "alice");

    const running = client.run("slow", "x").catch((caught: unknown) => caught);
    await waitUntil(() => server.bester.scheduler.stats().some((entry) => entry.type === "slow" && entry.running > 0), "the slow job runs");
    // The server ends the connection while the accepted job still runs.
    for (const connection of server.bester.sessions.connectionsOf("alice")) {
      connection.close();
    }
    const error = (await running) as BesterClientError;

    expect(error.code).to.equal("connectionClosed");
    expect(error.message).to.match(/^The connection to the server closed\. Job \S+ was accepted before that/);
    expect(error.message).to.contain("next login");
  });

  it("run reports acceptance before progress", async () => {
    const client = await loggedIn(server.port, "alice");
    const events: string[] = [];

    const result = await client.run("progress", { steps: 1 }, { onAccepted: (jobID) => events.push(`accepted ${jobID}`), onProgress: () => events.push("progress") });

    expect(events).to.deep.equal([`accepted ${result.jobID}`, "progress"]);
    await client.close();
  });

  it("run reports progress through onProgress", async () => {
    const client = await loggedIn(server.port, "alice");
    const reports: unknown[] = [];

    const result = await client.run("progress", { steps: 2 }, { onProgress: (progress) => reports.push(progress) });

    expect(reports).to.deep.equal([
      { step: 1, of: 2 },
      { step: 2, of: 2 },
    ]);
    expect(result.outputs[0]!.payload.data).to.equal("done after 2 steps");
    await client.close();
  });

  it("run resolves a failed job with its error", async () => {
    const client = await loggedIn(server.port, "alice");

    const result = await client.run("echo", { deliverTo: ["no-such-user"], value: 1 });

    expect(result.outputs).to.deep.equal([]);
    expect(result.notification.status).to.equal("failed");
    expect(result.notification.error?.code).to.equal("unknownUser");
    await client.close();
  });

  it("submit rejects with the wire code", async () => {
    const client = await loggedIn(server.port, "alice");

    const error = await client.submit("missing-type", 1).catch((caught: unknown) => caught);

    expect(error).to.be.instanceOf(BesterClientError);
    expect((error as BesterClientError).code).to.equal("noHandler");
    expect((error as BesterClientError).message).to.include('"missing-type"');
    await client.close();
  });

  it("auth rejects wrong passwords with invalidCredentials", async () => {
    const client = await BesterClient.connect({ port: server.port });

    const error = await client.auth("alice", "wrong").catch((caught: unknown) => caught);

    expect((error as BesterClientError).code).to.equal("invalidCredentials");
    await client.close();
  });

  it("connect rejects with connectFailed", async () => {
    const port = await freePort();

    const error = await BesterClient.connect({ port }).catch((caught: unknown) => caught);

    expect(error).to.be.instanceOf(BesterClientError);
    expect((error as BesterClientError).code).to.equal("connectFailed");
    expect((error as BesterClientError).message).to.include(`127.0.0.1:${port}`);
  });

  it("outputs() iterates outputs for the user", async () => {
    const receiver = await loggedIn(server.port, "bob");
    const sender = await loggedIn(server.port, "alice");
    const received: JobOutputEvent[] = [];
    const reading = (async () => {
      for await (const output of receiver.outputs()) {
        received.push(output);
        if (received.length === 3) {
          break;
        }
      }
    })();

    for (const value of ["a", "b", "c"]) {
      await sender.run("echo", { deliverTo: ["bob"], value });
    }
    await reading;

    expect(received.map((output) => output.payload.data)).to.deep.equal(["a", "b", "c"]);
    expect(receiver.listenerCount("output")).to.equal(0);
    await receiver.close();
    await sender.close();
  });

  it("notifications() and progress() iterate job events", async () => {
    const client = await loggedIn(server.port, "alice");
    const notifications = client.notifications();
    const progress = client.progress();

    const jobID = await client.submit("progress", { steps: 1 });
    // Messages of alice's jobs from earlier tests may arrive first, kept while she was offline.
    let firstProgress = await progress.next();
    while (firstProgress.value?.jobID !== jobID && !firstProgress.done) {
      firstProgress = await progress.next();
    }
    let firstNotification = await notifications.next();
    while (firstNotification.value?.jobID !== jobID && !firstNotification.done) {
      firstNotification = await notifications.next();
    }

    expect(firstProgress.value).to.deep.equal({ jobID, progress: { step: 1, of: 1 } });
    expect(firstNotification.value).to.deep.equal({ jobID, status: "completed" });
    await notifications.return!();
    await progress.return!();
    await client.close();
  });

  it("iterators end when the client closes", async () => {
    const client = await loggedIn(server.port, "alice");
    const outputs = client.outputs();
    const pending = outputs.next();

    await client.close();

    expect(await pending).to.deep.equal({ value: undefined, done: true });
    expect(await client.outputs().next()).to.deep.equal({ value: undefined, done: true });
  });

  it("requests after close reject with connectionClosed", async () => {
    const client = await loggedIn(server.port, "alice");
    await client.close();

    const error = await client.submit("echo", 1).catch((caught: unknown) => caught);

    expect((error as BesterClientError).code).to.equal("connectionClosed");
  });
});

describe("client SDK run() before acceptance", () => {
  it("says the job may not have been accepted when the server closes first", async function () {
    this.timeout(20_000);
    // Holds each submission in onJobSubmit past the 5 s a session-ending close waits for the
    // replies still due, so the connection closes before the submission's reply.
    const slowSubmit: BesterPlugin = {
      name: "slow-submit",
      apply(bester) {
        bester.hooks.onJobSubmit.tapPromise("slow-submit", (job) => new Promise((resolve) => setTimeout(() => resolve(job), 6000)));
      },
    };
    const server = await startServer({ registration: true, handlers, plugins: [slowSubmit] });
    const client = await loggedIn(server.port, "alice");

    const running = client.run("echo", "x").catch((caught: unknown) => caught);
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const connection of server.bester.sessions.connectionsOf("alice")) {
      connection.close();
    }
    const error = (await running) as BesterClientError;
    await server.stop();

    expect(error.code).to.equal("connectionClosed");
    expect(error.message).to.contain("The job's submission got no reply, so the server may or may not have accepted it.");
    expect(error.message).to.contain("bester listen --all");
  });
});

describe("client SDK repeated notifications", () => {
  // A server that repeats a notification, as a daemon restarted after a crash may do.
  it("drops repeated notifications within its limit", async () => {
    const server = net.createServer((socket) => {
      const notify = (jobID: string) => socket.write(entry.encodeFrame({ reply: "jobNotification", job: { status: "completed", jobID } }));
      for (const jobID of ["j1", "j2", "j1", "j3", "j3", "j1"]) {
        notify(jobID);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;

    const client = await BesterClient.connect({ port, rememberNotifications: 2 });
    const seen: string[] = [];
    client.on("notification", (event) => seen.push(event.jobID));
    await new Promise((resolve) => setTimeout(resolve, 200));
    client.close();
    server.close();

    // Both repeats within the limit were dropped; j1 was forgotten when j3 arrived (limit 2), so its last copy is new.
    expect(seen).to.deep.equal(["j1", "j2", "j3", "j1"]);
  });
});

describe("client SDK reconnect", () => {
  let folder: string;

  beforeEach(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-reconnect-"));
  });

  afterEach(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("reconnects and logs in again after a restart", async () => {
    const store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    const first = await startServer({ registration: true, store, handlers: { echo: fixtureHandler("echo") } });
    const port = first.port;
    const client = await BesterClient.connect({ port, reconnect: { delayMs: 50, maxDelayMs: 200 } });
    await client.register("alice", "pw");
    await client.auth("alice", "pw");
    const disconnected = once(client, "disconnect");
    const reconnected = once(client, "reconnect");

    await first.stop();
    await disconnected;
    const second = await startServer({ registration: true, store, listen: { host: "127.0.0.1", port }, handlers: { echo: fixtureHandler("echo") } });
    try {
      const result = await client.run("echo", "after restart");
      const [{ attempt }] = (await reconnected) as [{ attempt: number }];

      expect(attempt).to.be.at.least(1);
      expect(result.notification.status).to.equal("completed");
      expect(result.outputs[0]!.payload.data).to.equal("after restart");
      expect(second.bester.sessions.isOnline("alice")).to.equal(true);
      await client.close();
    } finally {
      await second.stop();
    }
  });

  it("closes when the stored password stops working", async () => {
    const store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    const first = await startServer({ registration: true, store });
    const port = first.port;
    const client = await BesterClient.connect({ port, reconnect: { delayMs: 50, maxDelayMs: 200 } });
    await client.register("alice", "old-pw");
    await client.auth("alice", "old-pw");
    const serverError = once(client, "serverError");
    const closed = once(client, "close");

    await first.stop();
    const provider = createStoreProvider(store);
    await provider.open?.();
    await new AccountStore(provider.namespace<AccountRecord>(ACCOUNTS_NAMESPACE)).setPassword("alice", "new-pw");
    await provider.close();
    const second = await startServer({ registration: true, store, listen: { host: "127.0.0.1", port } });
    try {
      const [error] = (await serverError) as [{ code: string }];
      const [closeError] = (await closed) as [BesterClientError | undefined];

      expect(error.code).to.equal("invalidCredentials");
      expect(closeError?.code).to.equal("invalidCredentials");
      expect(client.closed).to.equal(true);
      expect(client.closedByCaller).to.equal(false);
    } finally {
      await second.stop();
    }
  });

  it("gives up after its retries and closes", async () => {
    const server = await startServer({ registration: true });
    const client = await BesterClient.connect({ port: server.port, reconnect: { retries: 2, delayMs: 10 } });
    await client.register("alice", "pw");
    await client.auth("alice", "pw");
    const closed = once(client, "close");

    await server.stop();
    await closed;
    const error = await client.submit("echo", 1).catch((caught: unknown) => caught);

    expect(client.closed).to.equal(true);
    expect((error as BesterClientError).code).to.equal("connectionClosed");
  });

  it("without the option closes on connection loss", async () => {
    const server = await startServer({ registration: true });
    const client = await BesterClient.connect({ port: server.port });
    const closed = once(client, "close");

    await server.stop();
    await closed;

    expect(client.closed).to.equal(true);
  });
});
