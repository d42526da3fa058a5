import { expect } from "chai";
import { login, RawClient, startServer, type TestServer } from "../helper.js";

const ALICE = { username: "alice", password: "correct horse" };

describe("auth and register", () => {
  describe("with registration on", () => {
    let server: TestServer;
    let client: RawClient;

    before(async () => {
      server = await startServer({ registration: true });
      const setup = await RawClient.connect(server.port);
      await setup.request({ request: "register", account: ALICE });
      setup.close();
    });

    after(async () => {
      await server.stop();
    });

    beforeEach(async () => {
      client = await RawClient.connect(server.port);
    });

    afterEach(() => {
      client.close();
    });

    it("auth with the right password is ok", async () => {
      const reply = await client.request({ request: "auth", account: ALICE });

      expect(reply.reply).to.equal("auth");
      expect(reply.auth).to.deep.equal({ status: "ok", address: `alice@${server.bester.serverName}` });
    });

    it("auth with a wrong password fails", async () => {
      const reply = await client.request({ request: "auth", account: { username: "alice", password: "wrong" } });

      expect(reply.reply).to.equal("auth");
      const auth = reply.auth as { status: string; error: { code: string; message: string } };
      expect(auth.status).to.equal("failed");
      expect(auth.error.code).to.equal("invalidCredentials");
      expect(auth.error.message).to.be.a("string").and.not.empty;
    });

    it("auth as an unknown user fails the same way", async () => {
      const reply = await client.request({ request: "auth", account: { username: "nobody", password: "x" } });

      const auth = reply.auth as { status: string; error: { code: string } };
      expect(auth.status).to.equal("failed");
      expect(auth.error.code).to.equal("invalidCredentials");
    });

    it("failed auth leaves the connection usable", async () => {
      await client.request({ request: "auth", account: { username: "alice", password: "wrong" } });
      const reply = await client.request({ request: "auth", account: ALICE });

      expect((reply.auth as { status: string }).status).to.equal("ok");
    });

    it("newJob before auth is notAuthenticated", async () => {
      const reply = await client.request({ request: "newJob", job: { payload: { type: "echo", data: 1 } } });

      expect(reply.reply).to.equal("error");
      expect((reply.error as { code: string }).code).to.equal("notAuthenticated");
    });

    it("second auth is alreadyAuthenticated", async () => {
      await client.request({ request: "auth", account: ALICE });
      const reply = await client.request({ request: "auth", account: ALICE });

      expect(reply.reply).to.equal("error");
      expect((reply.error as { code: string }).code).to.equal("alreadyAuthenticated");
    });

    it("register creates an account that can log in", async () => {
      const reply = await client.request({ request: "register", account: { username: "bob", password: "pw-bob" } });
      const auth = await client.request({ request: "auth", account: { username: "bob", password: "pw-bob" } });

      expect(reply).to.deep.equal({ reply: "register", register: { status: "ok" } });
      expect((auth.auth as { status: string }).status).to.equal("ok");
    });

    it("register of a taken name is userExists", async () => {
      const reply = await client.request({ request: "register", account: { username: "alice", password: "other" } });

      const register = reply.register as { status: string; error: { code: string } };
      expect(reply.reply).to.equal("register");
      expect(register.status).to.equal("failed");
      expect(register.error.code).to.equal("userExists");
    });

    it("concurrent registers of one name keep one account", async () => {
      const clients = await Promise.all([1, 2, 3, 4].map(() => RawClient.connect(server.port)));

      const replies = await Promise.all(clients.map((each, index) => each.request({ request: "register", account: { username: "dora", password: `pw-${index}` } })));
      const statuses = replies.map((reply) => (reply.register as { status: string; error?: { code: string } }).error?.code ?? "ok");
      const winner = statuses.indexOf("ok");
      const logins = await Promise.all(clients.map((each, index) => each.request({ request: "auth", account: { username: "dora", password: `pw-${index}` } })));
      for (const each of clients) {
        each.close();
      }

      expect(statuses.filter((status) => status === "ok")).to.have.length(1);
      expect(statuses.filter((status) => status === "userExists")).to.have.length(3);
      expect(logins.map((reply) => (reply.auth as { status: string }).status)).to.deep.equal(clients.map((_, index) => (index === winner ? "ok" : "failed")));
    });

    it("register keeps the first password of a taken name", async () => {
      await client.request({ request: "register", account: { username: "alice", password: "hijack" } });
      const reply = await client.request({ request: "auth", account: { username: "alice", password: "hijack" } });

      expect((reply.auth as { status: string }).status).to.equal("failed");
    });

    for (const username of ["has space", "semi;colon", "at@sign", "colon:name", "ünïcode", "", "x".repeat(65)]) {
      it(`register of "${username.length > 20 ? `${username.length} characters` : username}" is invalidUsername`, async () => {
        const reply = await client.request({ request: "register", account: { username, password: "pw" } });

        const register = reply.register as { status: string; error: { code: string; message: string } };
        expect(reply.reply).to.equal("register");
        expect(register.status).to.equal("failed");
        expect(register.error.code).to.equal("invalidUsername");
        expect(register.error.message).to.include(username);
      });
    }

    it("register of a 64-character name is ok", async () => {
      const username = "u".repeat(64);
      const reply = await client.request({ request: "register", account: { username, password: "pw" } });

      expect(reply).to.deep.equal({ reply: "register", register: { status: "ok" } });
    });

    it("auth after too many failures is rateLimited", async () => {
      await client.request({ request: "register", account: { username: "victim", password: "right" } });
      for (let attempt = 0; attempt < 10; attempt += 1) {
        const reply = await client.request({ request: "auth", account: { username: "victim", password: `guess-${attempt}` } });
        expect((reply.auth as { error: { code: string } }).error.code).to.equal("invalidCredentials");
      }
      const limited = await client.request({ request: "auth", account: { username: "victim", password: "right" } });
      const other = await client.request({ request: "auth", account: ALICE });

      const auth = limited.auth as { status: string; error: { code: string; message: string } };
      expect(auth.status).to.equal("failed");
      expect(auth.error.code).to.equal("rateLimited");
      expect(auth.error.message).to.include("victim");
      expect((other.auth as { status: string }).status).to.equal("ok");
    });

    it("two connections log in as one user", async () => {
      const second = await RawClient.connect(server.port);
      await login(client, "alice", ALICE.password, false);
      await login(second, "alice", ALICE.password, false);

      expect(server.bester.sessions.list()).to.deep.include({ user: "alice", connections: 2 });
      second.close();
    });
  });

  describe("with registration off", () => {
    let server: TestServer;

    before(async () => {
      server = await startServer({ registration: false });
    });

    after(async () => {
      await server.stop();
    });

    it("register is registrationDisabled", async () => {
      const client = await RawClient.connect(server.port);
      const reply = await client.request({ request: "register", account: { username: "carol", password: "pw" } });

      const register = reply.register as { status: string; error: { code: string } };
      expect(reply.reply).to.equal("register");
      expect(register.status).to.equal("failed");
      expect(register.error.code).to.equal("registrationDisabled");
      client.close();
    });

    it("no account exists after a rejected register", async () => {
      const client = await RawClient.connect(server.port);
      await client.request({ request: "register", account: { username: "carol", password: "pw" } });
      const reply = await client.request({ request: "auth", account: { username: "carol", password: "pw" } });

      expect((reply.auth as { status: string }).status).to.equal("failed");
      client.close();
    });
  });
});
