import { expect } from "chai";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ACCOUNT_CHECK_MS } from "../../plugins/accounts/account-watch.js";
import { BesterClient, type BesterClientError } from "../../plugins/transport-tcp/client.js";
import { runCli } from "../cli-runner.js";
import { connectAs, fixtureHandler, login, RawClient, startServer, waitUntil, type TestServer } from "../helper.js";

// `bester user passwd` changes the store from another process. The running server then closes the
// sessions opened with the old password, and the new password gets past a rateLimited lock.
describe("password changed while logged in", function () {
  this.timeout(30_000);
  let folder: string;
  let config: string;
  let server: TestServer;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-password-change-"));
    const store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    config = path.join(folder, "bester.config.json");
    await writeFile(config, JSON.stringify({ listen: { host: "127.0.0.1", port: 0 }, store, dataDir: path.join(folder, "cli-data") }));
    server = await startServer({ store, registration: true, handlers: { echo: fixtureHandler("echo", { connections: 2 }) }, limits: { login: { maxFailuresPerUser: 3, maxFailuresPerAddress: 1000, windowMs: 60_000 } } });
  });

  after(async () => {
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  async function authCode(username: string, password: string): Promise<string> {
    const client = await RawClient.connect(server.port);
    const reply = await client.request({ request: "auth", account: { username, password } });
    client.close();
    const auth = reply.auth as { status: string; error?: { code: string } };
    return auth.status === "ok" ? "ok" : auth.error!.code;
  }

  it("closes sessions of the old password only", async () => {
    const old = await connectAs(server.port, "nina");
    const other = await connectAs(server.port, "omar");

    const changed = await runCli(["user", "passwd", "nina", "-c", config], { input: "nina-new-pw\n" });
    const notice = await old.nextReply("error", ACCOUNT_CHECK_MS + 5000);
    await old.waitClosed();
    const fresh = await RawClient.connect(server.port);
    await login(fresh, "nina", "nina-new-pw", false);
    // A later check must leave the session of the new password alone.
    await new Promise((resolve) => setTimeout(resolve, ACCOUNT_CHECK_MS + 500));

    expect(changed.code).to.equal(0);
    expect(changed.stderr).to.include("password of nina changed in");
    expect(notice.error).to.deep.equal({ code: "notAuthenticated", message: 'The password of "nina" was changed, so this connection closes. Log in again with the new password.' });
    expect(fresh.closed, "the session of the new password was closed").to.equal(false);
    expect(other.closed, "another user's session was closed").to.equal(false);
    expect(await authCode("nina", "secret")).to.equal("invalidCredentials");
    fresh.close();
    other.close();
  });

  it("ends a reconnecting client with the reason", async () => {
    const client = await BesterClient.connect({ port: server.port, reconnect: { delayMs: 50 } });
    await client.register("pia", "pia-pw");
    await client.auth("pia", "pia-pw");
    const closed = once(client, "close");

    await runCli(["user", "passwd", "pia", "-c", config], { input: "pia-new-pw\n" });
    const [lost] = (await closed) as [BesterClientError | undefined];

    expect(lost?.code).to.equal("notAuthenticated");
    expect(lost?.message).to.include('The password of "pia" was changed');
  });

  it("ends a busy client after its replies", async () => {
    const client = await BesterClient.connect({ port: server.port, reconnect: { delayMs: 50, retries: 5 } });
    await client.register("sam", "sam-pw");
    await client.auth("sam", "sam-pw");
    let reconnected = false;
    client.on("reconnect", () => (reconnected = true));
    const closed = once(client, "close");

    // Eight submits in flight at any time, so the session ends with requests waiting for replies.
    let stop = false;
    let accepted = 0;
    const rejected: string[] = [];
    const submitter = async () => {
      while (!stop && !client.closed) {
        try {
          await client.submit("echo", "x");
          accepted += 1;
        } catch (error) {
          rejected.push((error as BesterClientError).code);
        }
      }
    };
    const submitters = Array.from({ length: 8 }, submitter);
    await waitUntil(() => accepted >= 50, "the client submitted jobs");
    await runCli(["user", "passwd", "sam", "-c", config], { input: "sam-new-pw\n" });
    const [lost] = (await closed) as [BesterClientError | undefined];
    stop = true;
    await Promise.all(submitters);
    const echo = () => server.bester.scheduler.stats().find((entry) => entry.type === "echo")!;
    await waitUntil(() => echo().queued === 0 && echo().running === 0, "the accepted jobs ended");

    expect(lost?.code, lost?.message).to.equal("notAuthenticated");
    expect(reconnected, "the client reconnected with the old password").to.equal(false);
    expect([...new Set(rejected)].filter((code) => code !== "notAuthenticated" && code !== "connectionClosed")).to.deep.equal([]);
    // Every job the server ran was one the client saw accepted: no rejected submit ran.
    expect(echo().completed + echo().failed).to.equal(accepted);
  });

  it("lifts a rateLimited lock at once", async () => {
    await connectAs(server.port, "quinn").then((client) => client.close());
    const codes: string[] = [];
    for (let index = 0; index < 4; index += 1) {
      codes.push(await authCode("quinn", "wrong-guess"));
    }

    const lockedBefore = await authCode("quinn", "secret");
    await runCli(["user", "passwd", "quinn", "-c", config], { input: "quinn-new-pw\n" });
    const afterChange = await authCode("quinn", "quinn-new-pw");

    expect(codes).to.deep.equal(["invalidCredentials", "invalidCredentials", "invalidCredentials", "rateLimited"]);
    expect(lockedBefore).to.equal("rateLimited");
    expect(afterChange).to.equal("ok");
  });

  it("keeps the lock for failures after the change", async () => {
    await connectAs(server.port, "rosa").then((client) => client.close());
    await runCli(["user", "passwd", "rosa", "-c", config], { input: "rosa-new-pw\n" });
    const codes: string[] = [];
    for (let index = 0; index < 4; index += 1) {
      codes.push(await authCode("rosa", "wrong-guess"));
    }

    expect(codes).to.deep.equal(["invalidCredentials", "invalidCredentials", "invalidCredentials", "rateLimited"]);
    expect(await authCode("rosa", "rosa-new-pw")).to.equal("rateLimited");
  });
});
