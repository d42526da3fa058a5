import { expect } from "chai";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createJobId } from "../../core/jobs/job.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { SqliteJournalBackend } from "../../plugins/journal/sqlite-backend.js";
import { offlineHooksOf } from "../../plugins/offline/offline-hooks.js";
import { runCli } from "../cli-runner.js";
import { acceptedJob, fixtureHandler, login, loginAndLeave, RawClient, sendOutput, startServer, waitUntil, type TestServer } from "../helper.js";

/** Logs in "ldap-nora" without an account in the store, as a directory-service plugin would. */
const directoryLogins: BesterPlugin = {
  name: "directory-logins",
  apply(bester) {
    bester.hooks.onAuth.tapPromise({ name: "directory-logins", stage: -10 }, async ({ username }) => (username === "ldap-nora" ? { ok: true, user: username } : undefined));
  },
};

/** Ids of the jobs whose notification was sent or stored, in that order. */
const doneJobs: string[] = [];

const doneRecorder: BesterPlugin = {
  name: "done-recorder",
  apply(bester) {
    bester.hooks.onJobDone.tap("done-recorder", (job) => {
      doneJobs.push(job.id);
    });
  },
};

/**
 * Delays the account read after a message for `user` is stored, so a login can start while the
 * message still carries the account its user's earlier messages were stored with.
 */
const slowAccountRead = {
  user: undefined as string | undefined,
  started: undefined as (() => void) | undefined,
  plugin: {
    name: "slow-account-read",
    apply(bester) {
      offlineHooksOf(bester).accountCreatedAt.tapPromise({ name: "slow-account-read", stage: -10 }, async (user) => {
        if (user === slowAccountRead.user) {
          slowAccountRead.started?.();
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
        return undefined;
      });
    },
  } satisfies BesterPlugin,
};

const DELETED_LOG = "deleting stored offline messages that belong to a removed account of the same name, unsent";

/** Returns the payload data of every jobOutput that `client` received so far. */
function outputValues(client: RawClient): unknown[] {
  return client.history.filter((message) => message.reply === "jobOutput").map((message) => (message.job as { payload: { data: unknown } }).payload.data);
}

/**
 * Logs in as `user` with `password`, has `sender` deliver `marker` to it, and returns every output
 * value the login received up to the marker. The stored messages go out before any live one, so
 * once the marker arrives the backlog has been sent.
 */
async function outputsAtLogin(server: TestServer, sender: RawClient, user: string, password: string, marker: string): Promise<unknown[]> {
  const client = await RawClient.connect(server.port);
  await login(client, user, password, false);
  await sendOutput(sender, user, marker);
  await client.next((message) => message.reply === "jobOutput" && (message.job as { payload: { data: unknown } }).payload.data === marker);
  const values = outputValues(client);
  client.close();
  return values;
}

// A removed account's stored offline messages must never reach an account created later under the
// same name, whichever way the account was removed, while every other user keeps theirs.
describe("offline messages of a removed account", function () {
  this.timeout(60_000);
  let folder: string;
  let store: string;
  let config: string;
  let server: TestServer | undefined;

  beforeEach(async () => {
    doneJobs.length = 0;
    slowAccountRead.user = undefined;
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-offline-removal-"));
    store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    config = path.join(folder, "bester.config.json");
    await writeFile(config, JSON.stringify({ listen: { host: "127.0.0.1", port: 0 }, store, dataDir: path.join(folder, "cli-data") }));
  });

  afterEach(async () => {
    await server?.stop();
    server = undefined;
    await rm(folder, { recursive: true, force: true });
  });

  function start(): Promise<TestServer> {
    return startServer({
      store,
      registration: true,
      plugins: [directoryLogins, doneRecorder, slowAccountRead.plugin],
      handlers: { echo: fixtureHandler("echo"), slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "500" } }) },
    });
  }

  it("withholds them after bester user remove", async () => {
    server = await start();
    for (const user of ["bob", "carol", "dave"]) {
      await loginAndLeave(server, user);
    }
    const nora = await RawClient.connect(server.port);
    await login(nora, "ldap-nora", "directory-password", false);
    const noraJob = await acceptedJob(nora, "slow", "for nora");
    nora.close();
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");
    await sendOutput(alice, "bob", "for the removed bob");
    await sendOutput(alice, "carol", "for carol");
    await sendOutput(alice, "dave", "for dave");
    await waitUntil(() => doneJobs.includes(noraJob), "nora's job is done");

    const removed = await runCli(["user", "remove", "bob", "-c", config]);
    const added = await runCli(["user", "add", "bob", "-c", config], { input: "new-secret\n" });
    const passwd = await runCli(["user", "passwd", "dave", "-c", config], { input: "dave-new\n" });
    const bob = await outputsAtLogin(server, alice, "bob", "new-secret", "bob marker");
    const carol = await outputsAtLogin(server, alice, "carol", "secret", "carol marker");
    const dave = await outputsAtLogin(server, alice, "dave", "dave-new", "dave marker");
    const noraAgain = await RawClient.connect(server.port);
    await login(noraAgain, "ldap-nora", "directory-password", false);
    const noraOutput = await noraAgain.nextReply("jobOutput");

    expect(removed.code).to.equal(0);
    expect(added.code).to.equal(0);
    expect(passwd.code).to.equal(0);
    expect(bob, "the re-created bob received the removed bob's message").to.deep.equal(["bob marker"]);
    expect(carol).to.deep.equal(["for carol", "carol marker"]);
    expect(dave, "a password change lost stored messages").to.deep.equal(["for dave", "dave marker"]);
    expect((noraOutput.job as { payload: { data: unknown } }).payload.data, "a user of another login plugin lost stored messages").to.equal("for nora");
    const deleted = server.logs.filter((entry) => entry.msg === DELETED_LOG);
    expect(deleted.map((entry) => [entry.user, entry.messages])).to.deep.equal([["bob", 1]]);
    alice.close();
    noraAgain.close();
  });

  it("delivers what was stored after the re-creation", async () => {
    server = await start();
    await loginAndLeave(server, "kim");
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");
    await sendOutput(alice, "kim", "for the removed kim");
    expect((await runCli(["user", "remove", "kim", "-c", config])).code).to.equal(0);
    expect((await runCli(["user", "add", "kim", "-c", config], { input: "new-secret\n" })).code).to.equal(0);

    // The new message is stored with the removed account's creation time first, and the login
    // starts while the read of the new account is still running.
    slowAccountRead.user = "kim";
    const readStarted = new Promise<void>((resolve) => (slowAccountRead.started = resolve));
    await alice.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: ["kim"], value: "for the new kim" } } } });
    // Without an account read after the store, the notification arrives first and the test goes on.
    const notified = alice.nextReply("jobNotification");
    await Promise.race([readStarted, notified]);
    const kim = await RawClient.connect(server.port);
    await login(kim, "kim", "new-secret", false);
    await notified;
    await sendOutput(alice, "kim", "kim marker");
    await kim.next((message) => message.reply === "jobOutput" && (message.job as { payload: { data: unknown } }).payload.data === "kim marker");

    expect(outputValues(kim), "the new kim's backlog differs from the message stored for it").to.deep.equal(["for the new kim", "kim marker"]);
    const deleted = server.logs.filter((entry) => entry.msg === DELETED_LOG);
    expect(deleted.map((entry) => [entry.user, entry.messages])).to.deep.equal([["kim", 1]]);
    alice.close();
    kim.close();
  });

  it("withholds them after a removal while stopped", async () => {
    server = await start();
    await loginAndLeave(server, "erin");
    await loginAndLeave(server, "frank");
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");
    await sendOutput(alice, "erin", "for the removed erin");
    await sendOutput(alice, "frank", "for frank");
    alice.close();
    await server.stop();
    server = undefined;

    const removed = await runCli(["user", "remove", "erin", "-c", config]);
    const added = await runCli(["user", "add", "erin", "-c", config], { input: "new-secret\n" });
    server = await start();
    const sender = await RawClient.connect(server.port);
    await login(sender, "alice", "secret", false);
    const erin = await outputsAtLogin(server, sender, "erin", "new-secret", "erin marker");
    const frank = await outputsAtLogin(server, sender, "frank", "secret", "frank marker");

    expect(removed.code).to.equal(0);
    expect(added.code).to.equal(0);
    expect(erin, "the re-created erin received the removed erin's message").to.deep.equal(["erin marker"]);
    expect(frank, "a restart lost stored messages").to.deep.equal(["for frank", "frank marker"]);
    sender.close();
  });

  it("withholds a job's messages stored after the removal", async () => {
    server = await start();
    const gus = await RawClient.connect(server.port);
    await login(gus, "gus");
    const gusJob = await acceptedJob(gus, "slow", "for the removed gus");
    gus.close();
    await waitUntil(() => !server!.bester.sessions.isOnline("gus"), "gus is offline");

    // Removed in this process while the job runs, so its output and notification are stored when
    // no account has the name. Registration then creates the new account.
    const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
    const existed = await accounts.remove("gus");
    await waitUntil(() => doneJobs.includes(gusJob), "the removed gus's job is done");
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");
    const again = await RawClient.connect(server.port);
    await login(again, "gus", "new-secret");
    await sendOutput(alice, "gus", "gus marker");
    await again.next((message) => message.reply === "jobOutput");

    expect(existed).to.equal(true);
    expect(outputValues(again), "the re-created gus received the removed gus's output").to.deep.equal(["gus marker"]);
    const notifications = again.history.filter((message) => message.reply === "jobNotification");
    expect(notifications, "the re-created gus received the removed gus's notification").to.deep.equal([]);
    const deleted = server.logs.find((entry) => entry.msg === DELETED_LOG);
    expect(deleted?.user).to.equal("gus");
    expect(deleted?.messages).to.equal(2);
    alice.close();
    again.close();
  });

  it("delivers messages stored before the upgrade", async () => {
    // Values written as the offline plugin wrote them before messages kept their account: the bare
    // message under offline/<user>/<id>. hana's account is older than her message. ivy's message
    // was stored for an account that was then removed and created again.
    expect((await runCli(["user", "add", "hana", "-c", config], { input: "secret\n" })).code).to.equal(0);
    expect((await runCli(["user", "add", "ivy", "-c", config], { input: "secret\n" })).code).to.equal(0);
    const journal = new SqliteJournalBackend(path.join(folder, "bester.sqlite"));
    await journal.open();
    const stored = (value: string) => JSON.stringify({ reply: "jobOutput", job: { jobID: `${createJobId()}:alice@127.0.0.1:1`, payload: { type: "echo", data: value } } });
    await journal.write(
      new Map([
        [`offline/hana/${createJobId()}`, stored("for hana")],
        [`offline/ivy/${createJobId()}`, stored("for the removed ivy")],
      ]),
    );
    await journal.close();
    expect((await runCli(["user", "remove", "ivy", "-c", config])).code).to.equal(0);
    expect((await runCli(["user", "add", "ivy", "-c", config], { input: "new-secret\n" })).code).to.equal(0);

    server = await start();
    const alice = await RawClient.connect(server.port);
    await login(alice, "alice");
    const hana = await outputsAtLogin(server, alice, "hana", "secret", "hana marker");
    const ivy = await outputsAtLogin(server, alice, "ivy", "new-secret", "ivy marker");

    expect(hana, "a message stored before the upgrade was lost").to.deep.equal(["for hana", "hana marker"]);
    expect(ivy, "the re-created ivy received the removed ivy's message").to.deep.equal(["ivy marker"]);
    alice.close();
  });
});
