import { expect } from "chai";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { BesterPlugin } from "../../core/plugin.js";
import { REMOVAL_CHECK_MS } from "../../plugins/accounts/removal-watch.js";
import { runCli } from "../cli-runner.js";
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
    const notices = await Promise.all([eve, eveAgain].map((client) => client.nextReply("error", REMOVAL_CHECK_MS + 5000)));
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
    const notice = await old.nextReply("error", REMOVAL_CHECK_MS + 5000);
    await old.waitClosed();
    const fresh = await RawClient.connect(server.port);
    await login(fresh, "gina", "new-password", false);

    expect(added.code).to.equal(0);
    expect((notice.error as { code: string }).code).to.equal("notAuthenticated");
    expect(fresh.closed).to.equal(false);
    fresh.close();
    await runCli(["user", "remove", "gina", "-c", config]);
  });

  it("lists users without the removal mark", async () => {
    const listed = await runCli(["user", "list", "-c", config]);

    expect(listed.code).to.equal(0);
    expect(listed.stdout).to.equal("frank\n");
  });
});
