import { expect } from "chai";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { BesterClient, BesterClientError } from "../../plugins/transport-tcp/client.js";
import { fixtureHandler, RawClient, startServer, type TestServer } from "../helper.js";

const run = promisify(execFile);

describe("client TLS listener", function () {
  this.timeout(30_000);
  let folder: string;
  let server: TestServer;
  let ca: Buffer;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-client-tls-"));
    const key = path.join(folder, "key.pem");
    const cert = path.join(folder, "cert.pem");
    await run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=bester-test", "-addext", "subjectAltName=IP:127.0.0.1"]);
    ca = await readFile(cert);
    server = await startServer({
      registration: true,
      listen: { host: "127.0.0.1", port: 0, tls: { key, cert } },
      handlers: { echo: fixtureHandler("echo") },
    });
  });

  after(async () => {
    await server.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it("runs a job over TLS with BesterClient", async () => {
    const client = await BesterClient.connect({ host: "127.0.0.1", port: server.port, tls: { ca } });
    await client.register("tina", "tls-secret");
    const address = await client.auth("tina", "tls-secret");

    const result = await client.run("echo", { over: "tls" });

    expect(address).to.equal(`tina@${server.bester.serverName}`);
    expect(result.notification.status).to.equal("completed");
    expect(result.outputs.map((output) => output.payload.data)).to.deep.equal([{ over: "tls" }]);
    await client.close();
  });

  it("rejects a client that does not trust the certificate", async () => {
    const error = await BesterClient.connect({ host: "127.0.0.1", port: server.port, tls: {} }).catch((caught: unknown) => caught);

    expect(error).to.be.instanceOf(BesterClientError);
    expect((error as BesterClientError).code).to.equal("connectFailed");
    expect((error as BesterClientError).message).to.include("SELF_SIGNED_CERT");
  });

  it("serves no plaintext client on the TLS port", async () => {
    const client = await RawClient.connect(server.port);
    client.send({ request: "auth", account: { username: "tina", password: "tls-secret" } });

    await client.waitClosed();
    expect(client.history.filter((message) => message.reply === "auth")).to.deep.equal([]);
  });
});
