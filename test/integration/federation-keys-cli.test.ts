import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { loadOrCreateServerKey } from "../../plugins/federation/keys.js";
import { runCli } from "../cli-runner.js";

describe("bester keys", function () {
  this.timeout(30_000);

  let folder: string;
  let config: string;
  const keyFile = () => path.join(folder, "keys", "server.key");

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-keys-"));
    config = path.join(folder, "bester.config.json");
    await writeFile(config, JSON.stringify({ server: { name: "127.0.0.1:2299" }, store: "memory", federation: { keyFile: "./keys/server.key" } }));
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("creates the key and prints it last", async () => {
    const result = await runCli(["keys", "--config", config]);

    const lastLine = result.stdout.trimEnd().split("\n").pop();
    const key = await loadOrCreateServerKey(keyFile());
    expect(result.code).to.equal(0);
    expect(lastLine).to.match(/^ed25519:[A-Za-z0-9+/]{43}=$/);
    expect(lastLine).to.equal(key.publicKeyText);
    expect((await stat(keyFile())).mode & 0o777).to.equal(0o600);
  });

  it("prints the same key again without leaking it", async () => {
    const before = await readFile(keyFile(), "utf8");

    const result = await runCli(["keys", "--config", config]);

    const key = await loadOrCreateServerKey(keyFile());
    expect(result.code).to.equal(0);
    expect(result.stdout.trimEnd().split("\n").pop()).to.equal(key.publicKeyText);
    expect(await readFile(keyFile(), "utf8")).to.equal(before);
    expect(result.stdout + result.stderr).to.not.include("PRIVATE KEY");
    // The key lies outside the working folder, so its path is absolute rather than ../../tmp/...
    expect(result.stderr).to.include(`read ${keyFile()}\n`);
  });
});
