import { expect } from "chai";
import { once } from "node:events";
import { WebSocket } from "ws";
import { websocketTransport } from "../../examples/plugins/websocket-transport.js";
import { freePort, login, RawClient, startServer, type TestServer } from "../helper.js";

const PASSWORD = "correct-horse-battery";
const WRONG = "wrong-password-zebra";

describe("login rate limit", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: true, limits: { login: { maxFailuresPerUser: 3, maxFailuresPerAddress: 6, windowMs: 60_000 } } });
    const setup = await RawClient.connect(server.port);
    await setup.request({ request: "register", account: { username: "victim", password: PASSWORD } });
    await setup.request({ request: "register", account: { username: "other", password: PASSWORD } });
    setup.close();
  });

  after(async () => {
    await server.stop();
  });

  async function attempt(username: string, password: string): Promise<{ status: string; error?: { code: string } }> {
    const client = await RawClient.connect(server.port);
    const reply = await client.request({ request: "auth", account: { username, password } });
    client.close();
    return reply.auth as { status: string; error?: { code: string } };
  }

  it("rejects a username after repeated failures", async () => {
    const codes: string[] = [];
    for (let index = 0; index < 5; index += 1) {
      codes.push((await attempt("victim", WRONG)).error!.code);
    }
    const correct = await attempt("victim", PASSWORD);

    expect(codes).to.deep.equal(["invalidCredentials", "invalidCredentials", "invalidCredentials", "rateLimited", "rateLimited"]);
    expect(correct.status).to.equal("failed");
    expect(correct.error!.code).to.equal("rateLimited");
  });

  it("limits the address across usernames", async () => {
    // The previous test left 3 failures from 127.0.0.1; 3 more reach the address limit of 6.
    const codes: string[] = [];
    for (const name of ["nobody1", "nobody2", "nobody3", "nobody4"]) {
      codes.push((await attempt(name, WRONG)).error!.code);
    }
    expect(codes).to.deep.equal(["invalidCredentials", "invalidCredentials", "invalidCredentials", "rateLimited"]);
    expect((await attempt("other", PASSWORD)).error!.code).to.equal("rateLimited");
  });

  it("never writes a password to the log", async () => {
    const client = await RawClient.connect(server.port);
    const failure = await login(client, "other", PASSWORD, false).then(() => undefined, (error: Error) => error);
    expect(failure?.message).to.include("rateLimited");
    client.close();

    const text = JSON.stringify(server.logs);
    expect(server.logs.some((entry) => entry.msg === "login rejected: too many failed logins")).to.equal(true);
    expect(text).to.not.include(PASSWORD);
    expect(text).to.not.include(WRONG);
  });
});

// A TCP listener on "::" reports an IPv4 client as ::ffff:127.0.0.1, while the WebSocket listener
// on 127.0.0.1 reports the same client as 127.0.0.1; both must count as one address.
const LISTENERS = [
  { title: "on 127.0.0.1", host: "127.0.0.1", remote: /^127\.0\.0\.1:/ },
  { title: "on a dual-stack listener", host: "::", remote: /^::ffff:127\.0\.0\.1:/ },
];

for (const listener of LISTENERS) {
  describe(`login rate limit across transports, TCP ${listener.title}`, () => {
    let server: TestServer;
    let wsUrl: string;

    before(async () => {
      server = await startServer({
        registration: true,
        listen: { host: listener.host, port: await freePort() },
        limits: { login: { maxFailuresPerUser: 100, maxFailuresPerAddress: 2, windowMs: 60_000 } },
        plugins: [websocketTransport({ host: "127.0.0.1", port: await freePort(), path: "/bester" })],
      });
      wsUrl = server.bester.addresses.find((address) => address.startsWith("ws://"))!;
    });

    after(async () => {
      await server.stop();
    });

    it("counts TCP failures for WebSocket logins", async () => {
      for (const name of ["nobody1", "nobody2"]) {
        const client = await RawClient.connect(server.port, "127.0.0.1");
        await client.request({ request: "auth", account: { username: name, password: WRONG } });
        client.close();
      }

      const socket = new WebSocket(wsUrl);
      await once(socket, "open");
      socket.send(JSON.stringify({ request: "auth", account: { username: "nobody3", password: WRONG } }));
      const [data] = (await once(socket, "message")) as [Buffer];
      socket.close();
      const reply = JSON.parse(data.toString("utf8")) as { auth: { status: string; error: { code: string } } };
      const tcpRemote = server.logs.find((entry) => entry.msg === "login failed" && entry.username === "nobody1")?.remote;

      expect(tcpRemote, "the address the TCP listener reported").to.match(listener.remote);
      expect(reply.auth.status).to.equal("failed");
      expect(reply.auth.error.code).to.equal("rateLimited");
    });
  });
}
