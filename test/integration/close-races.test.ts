import { expect } from "chai";
import { rm } from "node:fs/promises";
import path from "node:path";
import type { BesterPlugin } from "../../core/plugin.js";
import { fixtureHandler, login, loginAndLeave, makeTempDir, RawClient, sendOutput, slowSessionStart, startServer, waitUntil, type TestServer } from "../helper.js";

// Races between a connection's close and the messages meant for it. Each test widens its window
// with a plugin that keeps logins open, a long output coalescing time, or a client that keeps its
// side open after the server ended the connection.

function isOutputWith(value: string) {
  return (message: Record<string, unknown>) => message.reply === "jobOutput" && (message.job as { payload: { data: unknown } }).payload.data === value;
}

/**
 * Returns where `value` reached `user`: on `live`, which stays logged in, or else at the next
 * login once `live` closed too. Returns "lost" when neither received it.
 */
async function whereArrived(server: TestServer, live: RawClient, user: string, value: string): Promise<string> {
  const onLive = await live.next(isOutputWith(value), 2000).then(() => true, () => false);
  if (onLive) {
    return "live connection";
  }
  live.close();
  await waitUntil(() => !server.bester.sessions.isOnline(user), `${user} is offline`);
  return (await arrivesAtNextLogin(server, user, value, 2000)) ? "next login" : "lost";
}

/** Logs `user` in on a new connection and returns whether an output with `value` arrives within `timeoutMs`. */
async function arrivesAtNextLogin(server: TestServer, user: string, value: string, timeoutMs: number): Promise<boolean> {
  const next = await RawClient.connect(server.port);
  await login(next, user, "secret", false);
  const arrived = await next.next(isOutputWith(value), timeoutMs).then(() => true, () => false);
  next.close();
  return arrived;
}

/** A 4-byte frame header that announces more than maxFrameBytes, so the server replies frameTooLarge and closes. */
const OVERSIZED_HEADER = Buffer.from([0xf0, 0xff, 0xff, 0xff]);

describe("close while another connection of the user is live", () => {
  let server: TestServer;
  let alice: RawClient;

  before(async () => {
    server = await startServer({ registration: true, handlers: { echo: fixtureHandler("echo") }, plugins: [slowSessionStart(1500)] });
    alice = await RawClient.connect(server.port);
    await login(alice, "alice");
  });

  after(async () => {
    alice.close();
    await server.stop();
  });

  it("keeps a live output held during login", async () => {
    await loginAndLeave(server, "bob");
    const first = await RawClient.connect(server.port);
    await login(first, "bob", "secret", false);

    // The first login still waits in onSessionStart, so this output waits in its session.
    await sendOutput(alice, "bob", "held");
    const second = await RawClient.connect(server.port);
    await login(second, "bob", "secret", false);
    first.close();
    await waitUntil(() => server.bester.sessions.connectionsOf("bob").length === 1, "bob has one connection left");

    const arrived = await whereArrived(server, second, "bob", "held");

    expect(first.history.some(isOutputWith("held"))).to.equal(false);
    expect(arrived).to.not.equal("lost");
  });
});

describe("close with stored messages unsent while another connection is live", () => {
  let server: TestServer;
  let alice: RawClient;

  before(async () => {
    // Output written within 1 s of an earlier write waits in the process for the rest of that second.
    server = await startServer({ registration: true, limits: { outputCoalesceMs: 1000 }, handlers: { echo: fixtureHandler("echo") }, plugins: [slowSessionStart(300)] });
    alice = await RawClient.connect(server.port);
    await login(alice, "alice");
  });

  after(async () => {
    alice.close();
    await server.stop();
  });

  it("keeps stored messages written to the closing connection", async () => {
    await loginAndLeave(server, "carol");
    await sendOutput(alice, "carol", "stored");

    const first = await RawClient.connect(server.port);
    await login(first, "carol", "secret", false);
    const second = await RawClient.connect(server.port);
    await login(second, "carol", "secret", false);
    // The first login sends the stored message 300 ms after its auth reply, so it waits about 700 ms unsent.
    await waitUntil(() => server.logs.some((entry) => entry.msg === "delivered stored offline messages" && entry.user === "carol"), "carol's stored messages were sent");
    first.close();
    await waitUntil(() => server.bester.sessions.connectionsOf("carol").length === 1, "carol has one connection left");

    const arrived = await whereArrived(server, second, "carol", "stored");

    expect(first.history.some(isOutputWith("stored"))).to.equal(false);
    expect(arrived).to.not.equal("lost");
  });
});

describe("messages after the server ended a connection", () => {
  let server: TestServer;
  let alice: RawClient;

  before(async () => {
    server = await startServer({
      registration: true,
      handlers: { echo: fixtureHandler("echo"), slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "300" } }) },
      plugins: [slowSessionStart(300)],
    });
    alice = await RawClient.connect(server.port);
    await login(alice, "alice");
  });

  after(async () => {
    alice.close();
    await server.stop();
  });

  it("keeps a job's output and notification", async () => {
    await loginAndLeave(server, "dave");
    const first = await RawClient.connect(server.port, "127.0.0.1", { allowHalfOpen: true });
    await login(first, "dave", "secret", false);
    const submission = await first.request({ request: "newJob", job: { payload: { type: "slow", data: "result" } } });
    const jobID = (submission.submission as { jobID: string }).jobID;

    // The job replies 300 ms later, while the server waits for this client to close its side.
    first.writeRaw(OVERSIZED_HEADER);
    const error = await first.nextReply("error");
    // This client keeps its side open, so the server destroys the socket after its 2 s close grace.
    await waitUntil(() => !server.bester.sessions.isOnline("dave"), "dave is offline");
    first.close();

    const second = await RawClient.connect(server.port);
    await login(second, "dave", "secret", false);
    const output = await second.nextReply("jobOutput", 1500).then((message) => message.job, () => "none");
    const notification = await second.nextReply("jobNotification", 1500).then((message) => message.job, () => "none");
    second.close();

    expect((error.error as { code: string }).code).to.equal("frameTooLarge");
    expect(first.history.some((message) => message.reply === "jobNotification")).to.equal(false);
    expect(output).to.deep.equal({ jobID: `${jobID}:dave@${server.bester.serverName}`, payload: { type: "slow", data: "result" } });
    expect(notification).to.deep.equal({ status: "completed", jobID });
  });

  it("keeps stored messages of a login that ends in a framing error", async () => {
    await loginAndLeave(server, "erin");
    await sendOutput(alice, "erin", "stored");

    const first = await RawClient.connect(server.port, "127.0.0.1", { allowHalfOpen: true });
    first.send({ request: "auth", account: { username: "erin", password: "secret" } });
    first.writeRaw(OVERSIZED_HEADER);
    const auth = await first.nextReply("auth");
    const error = await first.nextReply("error");
    await waitUntil(() => !server.bester.sessions.isOnline("erin"), "erin is offline");
    first.close();

    const arrived = await arrivesAtNextLogin(server, "erin", "stored", 1500);

    expect((auth.auth as { status: string }).status).to.equal("ok");
    expect((error.error as { code: string }).code).to.equal("frameTooLarge");
    expect(first.history.some(isOutputWith("stored"))).to.equal(false);
    expect(arrived).to.equal(true);
  });
});

const LATE_LOGIN = "login ended after the auth deadline closed the connection; the connection stays logged out";

describe("a login that ends after the auth deadline", () => {
  let server: TestServer;
  let alice: RawClient;
  /** How long each login waits before the accounts plugin checks the password. */
  let authDelayMs = 0;
  /** Users of the jobs the server accepted, in order. */
  const acceptedFor: string[] = [];
  const slowAuth: BesterPlugin = {
    name: "slow-auth",
    apply(bester) {
      bester.hooks.onAuth.tapPromise({ name: "slow-auth", stage: -10 }, () => new Promise((resolve) => setTimeout(() => resolve(undefined), authDelayMs)));
      bester.hooks.onJobAccepted.tapPromise("slow-auth", async (job) => {
        acceptedFor.push(job.user);
      });
    },
  };

  before(async () => {
    // The deadline leaves room for the other logins' password hashing on a busy machine.
    server = await startServer({ registration: true, limits: { authTimeoutMs: 1000 }, handlers: { echo: fixtureHandler("echo") }, plugins: [slowAuth] });
    alice = await RawClient.connect(server.port);
    await login(alice, "alice");
  });

  afterEach(() => {
    authDelayMs = 0;
  });

  after(async () => {
    alice.close();
    await server.stop();
  });

  it("keeps stored messages", async () => {
    await loginAndLeave(server, "frank");
    await sendOutput(alice, "frank", "stored");

    // The deadline closes the connection at 1000 ms, and the login succeeds at 2000 ms.
    authDelayMs = 2000;
    const first = await RawClient.connect(server.port, "127.0.0.1", { allowHalfOpen: true });
    first.send({ request: "auth", account: { username: "frank", password: "secret" } });
    const error = await first.nextReply("error");
    await waitUntil(() => server.logs.some((entry) => entry.msg === LATE_LOGIN && entry.user === "frank"), "frank's late login ended");
    authDelayMs = 0;
    await waitUntil(() => !server.bester.sessions.isOnline("frank"), "frank is offline");
    first.close();

    const arrived = await arrivesAtNextLogin(server, "frank", "stored", 1500);

    expect((error.error as { code: string }).code).to.equal("notAuthenticated");
    expect(first.history.some(isOutputWith("stored"))).to.equal(false);
    expect(arrived).to.equal(true);
  });

  it("runs no job sent behind it", async () => {
    await loginAndLeave(server, "gina");

    // The deadline closes the connection at 1000 ms, and the password check starts at 2000 ms.
    authDelayMs = 2000;
    const client = await RawClient.connect(server.port, "127.0.0.1", { allowHalfOpen: true });
    client.send({ request: "auth", account: { username: "gina", password: "secret" } });
    client.send({ request: "newJob", job: { payload: { type: "echo", data: "behind a late login" } } });
    const error = await client.nextReply("error");
    const ended = (entry: Record<string, unknown>) => entry.user === "gina" && (entry.msg === LATE_LOGIN || entry.msg === "user authenticated");
    await waitUntil(() => server.logs.filter(ended).length === 2, "gina's late login ended", 5000);
    authDelayMs = 0;
    // Time for the submission behind the login, which needs no store write with the memory store.
    await new Promise((resolve) => setTimeout(resolve, 300));
    client.close();

    expect((error.error as { code: string }).code).to.equal("notAuthenticated");
    expect(acceptedFor, "a job sent on a connection closed as not authenticated was accepted").to.not.include("gina");
    const logins = server.logs.filter((entry) => entry.msg === "user authenticated" && entry.user === "gina");
    expect(logins, "the late login logged the closed connection in").to.have.length(1);
  });

  it("ignores an auth sent after the deadline", async () => {
    await loginAndLeave(server, "hal");

    // The client keeps its side open after the server's close, and the server still reads it
    // until the close grace ends.
    const client = await RawClient.connect(server.port, "127.0.0.1", { allowHalfOpen: true });
    const error = await client.nextReply("error");
    client.send({ request: "auth", account: { username: "hal", password: "secret" } });
    client.send({ request: "newJob", job: { payload: { type: "echo", data: "after the deadline" } } });
    // Time for a password hash and the submission behind it, well within the server's 2 s close grace.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    client.close();

    expect((error.error as { code: string }).code).to.equal("notAuthenticated");
    expect(acceptedFor, "a job sent after the auth deadline was accepted").to.not.include("hal");
    const logins = server.logs.filter((entry) => entry.msg === "user authenticated" && entry.user === "hal");
    expect(logins, "an auth sent after the deadline logged the connection in").to.have.length(1);
  });
});

describe("submitter leaves while its next connection is live", () => {
  let server: TestServer;
  let folder: string;
  /** Called after each job's notification was sent, when its onJobDone taps run. */
  let jobDone: () => void = () => undefined;
  /** Delays each handler output by 100 ms, so it is sent after the submission reply's write, and signals each job's end. */
  const jobTiming: BesterPlugin = {
    name: "job-timing",
    apply(bester) {
      bester.hooks.onHandlerOutput.tapPromise("job-timing", (output) => new Promise((resolve) => setTimeout(() => resolve(output), 100)));
      bester.hooks.onJobDone.tap("job-timing", () => jobDone());
    },
  };

  before(async () => {
    folder = await makeTempDir("bester-close-races-");
    server = await startServer({
      registration: true,
      store: `sqlite://${path.join(folder, "bester.sqlite")}`,
      limits: { outputCoalesceMs: 1000 },
      handlers: { echo: fixtureHandler("echo") },
      plugins: [jobTiming],
    });
  });

  after(async () => {
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  /**
   * Has gina submit on a first connection a job for herself and alice, logs gina in on a second
   * connection while her output and notification wait unsent on the first, and ends the first
   * with `leave`. Returns both connections.
   */
  async function submitAndReconnect(leave: (first: RawClient) => void, alice: RawClient): Promise<{ second: RawClient; first: RawClient }> {
    const first = await RawClient.connect(server.port);
    await login(first, "gina", "secret", false);
    // Quiet for over 1 s, so the submission reply leaves at once and starts the coalescing second.
    await new Promise((resolve) => setTimeout(resolve, 1100));

    const done = new Promise<void>((resolve) => {
      jobDone = resolve;
    });
    await first.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: ["gina", "alice"], value: "once" } } } });
    await alice.next(isOutputWith("once"));
    // Gina's output and notification now wait unsent on the first connection.
    await done;
    const second = await RawClient.connect(server.port);
    await login(second, "gina", "secret", false);
    leave(first);
    await waitUntil(() => server.bester.sessions.connectionsOf("gina").length === 1, "gina has one connection left");
    return { second, first };
  }

  it("keeps the notification when the client closes", async () => {
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");
    await loginAndLeave(server, "gina");

    const { first, second } = await submitAndReconnect((client) => client.close(), alice);
    const notification = await second.nextReply("jobNotification", 2500).then(() => "received", () => "none");
    second.close();
    alice.close();

    const reruns = server.logs.filter((entry) => entry.msg === "submitter reconnected before the notification was sent; running the job again");
    expect(first.history.some((message) => message.reply === "jobNotification")).to.equal(false);
    expect(reruns).to.deep.equal([]);
    expect(notification).to.equal("received");
  });

  it("runs the job once when the client resets", async () => {
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice", "secret", false);

    const { second } = await submitAndReconnect((client) => client.socket.resetAndDestroy(), alice);
    const notification = await second.nextReply("jobNotification", 2500).then(() => "received", () => "none");
    // A second run of the job would reach alice within this time.
    await new Promise((resolve) => setTimeout(resolve, 500));
    second.close();
    alice.close();

    const reruns = server.logs.filter((entry) => entry.msg === "submitter reconnected before the notification was sent; running the job again");
    expect(notification).to.equal("received");
    expect(alice.history.filter(isOutputWith("once")).length).to.equal(1);
    expect(reruns).to.deep.equal([]);
  });
});
