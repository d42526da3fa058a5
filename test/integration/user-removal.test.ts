import { expect } from "chai";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { BesterPlugin } from "../../core/plugin.js";
import { ACCOUNT_CHECK_MS } from "../../plugins/accounts/account-watch.js";
import { BesterClient, type BesterClientError } from "../../plugins/transport-tcp/client.js";
import { runCli, spawnCli, waitForOutput } from "../cli-runner.js";
import { connectAs, login, RawClient, startServer, type TestServer } from "../helper.js";

/** Logs in "ldap-carol" without an account in the store, as a directory-service plugin would. */
const directoryLogins: BesterPlugin = {
  name: "directory-logins",
  apply(bester) {
    bester.hooks.onAuth.tapPromise({ name: "directory-logins", stage: -10 }, async ({ username }) => (username === "ldap-carol" ? { ok: true, user: username } : undefined));
  },
};

// `bester user remove` changes the store from another process; the running server then closes the
// removed user's connections within one removal check.
describe("user removed while logged in", function () {
  this.timeout(30_000);
  let folder: string;
  let config: string;
  let server: TestServer;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-user-removal-"));
    const store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    config = path.join(folder, "bester.config.json");
    await writeFile(config, JSON.stringify({ listen: { host: "127.0.0.1", port: 0 }, store, dataDir: path.join(folder, "cli-data") }));
    server = await startServer({ store, registration: true, plugins: [directoryLogins] });
  });

  after(async () => {
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it("closes the removed user's connections only", async () => {
    const eve = await connectAs(server.port, "eve");
    const eveAgain = await connectAs(server.port, "eve");
    const frank = await connectAs(server.port, "frank");
    const carol = await RawClient.connect(server.port);
    await login(carol, "ldap-carol", "directory-password", false);

    const removed = await runCli(["user", "remove", "eve", "-c", config]);
    const notices = await Promise.all([eve, eveAgain].map((client) => client.nextReply("error", ACCOUNT_CHECK_MS + 5000)));
    await Promise.all([eve.waitClosed(), eveAgain.waitClosed()]);
    // frank's connection still handles requests: a job of a type with no handler is rejected.
    const reply = await frank.request({ request: "newJob", job: { payload: { type: "nothing", data: 1 } } });

    expect(removed.code).to.equal(0);
    for (const notice of notices) {
      expect(notice.error).to.deep.equal({ code: "notAuthenticated", message: 'The account "eve" was removed, so this connection closes.' });
    }
    expect(frank.closed).to.equal(false);
    expect(carol.closed, "a user of another login plugin was disconnected").to.equal(false);
    expect(JSON.stringify(reply)).to.include("noHandler");
    expect(server.bester.sessions.isOnline("eve")).to.equal(false);
    expect(server.bester.sessions.isOnline("frank")).to.equal(true);
    frank.close();
    carol.close();
  });

  it("closes the old connections of a re-created user", async () => {
    const old = await connectAs(server.port, "gina");

    await runCli(["user", "remove", "gina", "-c", config]);
    const added = await runCli(["user", "add", "gina", "-c", config], { input: "new-password\n" });
    const notice = await old.nextReply("error", ACCOUNT_CHECK_MS + 5000);
    await old.waitClosed();
    const fresh = await RawClient.connect(server.port);
    await login(fresh, "gina", "new-password", false);

    expect(added.code).to.equal(0);
    expect((notice.error as { code: string }).code).to.equal("notAuthenticated");
    expect(fresh.closed).to.equal(false);
    fresh.close();
    await runCli(["user", "remove", "gina", "-c", config]);
  });

  it("closes a reconnecting client without retrying", async () => {
    const client = await BesterClient.connect({ port: server.port, reconnect: { delayMs: 50 } });
    await client.register("judy", "judy-pw");
    await client.auth("judy", "judy-pw");
    let disconnected = false;
    client.on("disconnect", () => (disconnected = true));
    const closed = once(client, "close");

    await runCli(["user", "remove", "judy", "-c", config]);
    const [lost] = (await closed) as [BesterClientError | undefined];

    expect(lost?.code).to.equal("notAuthenticated");
    expect(lost?.message).to.equal('The account "judy" was removed, so this connection closes.');
    expect(disconnected, "the client tried to reconnect").to.equal(false);
    expect(client.closed).to.equal(true);
  });

  it("ends bester listen of a removed user", async () => {
    const ivan = await connectAs(server.port, "ivan");
    ivan.close();
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${server.port}`, "-u", "ivan", "-p", "secret"]);
    let stderr = "";
    listener.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));

    try {
      await waitForOutput(listener.stderr!, /listening as ivan@/);
      // Listen for the exit before it can happen: the removal check may close the connection at once.
      const exited = once(listener, "exit");
      await runCli(["user", "remove", "ivan", "-c", config]);
      const [code] = await exited;

      expect(code).to.equal(1);
      expect(stderr).to.include('bester: The account "ivan" was removed, so this connection closes. [notAuthenticated]');
      expect(stderr, "listen reconnected after the removal").not.to.include("reconnecting");
      expect(stderr).not.to.include("invalidCredentials");
      expect(stderr.match(/was removed/g), "the reason printed more than once").to.have.length(1);
    } finally {
      listener.kill("SIGKILL");
    }
  });

  it("lists users without the change mark", async () => {
    await runCli(["user", "add", "lena", "-c", config], { input: "lena-pw\n" });
    await runCli(["user", "remove", "lena", "-c", config]);
    await runCli(["user", "add", "mona", "-c", config], { input: "mona-pw\n" });
    const listed = await runCli(["user", "list", "-c", config]);
    const names = listed.stdout.split("\n").filter((line) => line.length > 0);

    expect(listed.code).to.equal(0);
    expect(names).to.include("mona");
    expect(names).not.to.include("lena");
    expect(names.filter((name) => !/^[A-Za-z0-9._-]+$/.test(name)), "a non-user key was listed").to.deep.equal([]);
  });
});
