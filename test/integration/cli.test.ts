import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "chai";
import { runCli, spawnCli, waitForOutput } from "../cli-runner.js";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { BesterClient } from "../../plugins/transport-tcp/client.js";
import { fixtureHandler, freePort, makeTempDir, REPO_ROOT, startServer, type TestServer } from "../helper.js";

/** Writes an ES module config file that exports `config` as its default. */
async function writeModuleConfig(file: string, config: unknown): Promise<void> {
  await writeFile(file, `export default ${JSON.stringify(config, null, 2)};\n`);
}

describe("bester start and submit as child processes", () => {
  let folder: string;
  let daemon: ChildProcess;
  let server: string;

  before(async () => {
    folder = await makeTempDir("bester-cli-");
    const config = path.join(folder, "bester.config.mjs");
    await writeModuleConfig(config, {
      listen: { host: "127.0.0.1", port: 0 },
      store: "memory",
      registration: true,
      dataDir: path.join(folder, "data"),
      handlers: { echo: fixtureHandler("echo") },
    });

    daemon = spawnCli(["start", "--config", config, "--log", path.join(folder, "bester.log")]);
    const [, address] = await waitForOutput(daemon.stderr!, /listening on (127\.0\.0\.1:\d+)\n/);
    server = address!;
  });

  after(async () => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill("SIGKILL");
    }
    await rm(folder, { recursive: true, force: true });
  });

  it("start prints the listening address", () => {
    expect(server).to.match(/^127\.0\.0\.1:[1-9]\d*$/);
  });

  it("submit --register --file prints the output and a completed notification", async () => {
    const file = path.join(folder, "job.txt");
    await writeFile(file, "text from a file\n");
    const result = await runCli(["submit", "--server", server, "-u", "dana", "-p", "dana-pw", "--register", "-t", "echo", "--file", file]);

    expect(result.code, result.stderr).to.equal(0);
    const [, jobID] = result.stdout.match(/^output ([^:\s]+):dana@127\.0\.0\.1:\d+ \(echo\):$/m) ?? [];
    expect(jobID).to.be.a("string");
    expect(result.stdout).to.include("text from a file\n");
    expect(result.stdout).to.include(JSON.stringify({ reply: "jobNotification", job: { status: "completed", jobID } }));
  });

  it("submit --file drops a leading byte-order mark", async () => {
    const file = path.join(folder, "cities.csv");
    await writeFile(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("city,population\nZürich,421878\n")]));
    const result = await runCli(["submit", "--server", server, "-u", "dana", "-p", "dana-pw", "--register", "-t", "echo", "--file", file]);

    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/ \(echo\):\ncity,population\nZürich,421878\n\n/);
    expect(result.stdout).not.to.include("\ufeff");
  });

  it("submit --json parses stdin after a byte-order mark", async () => {
    const input = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"city":"Zürich"}')]);
    const result = await runCli(["submit", "--server", server, "-u", "dana", "-p", "dana-pw", "--register", "-t", "echo", "--json"], { input });

    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.include('{\n  "city": "Zürich"\n}\n');
  });

  it("submit --register logs in to an account that already exists", async () => {
    const result = await runCli(["submit", "--server", server, "-u", "dana", "-p", "dana-pw", "--register", "-t", "echo", "--text", "again"]);

    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.include("again");
  });

  it("submit --register names an existing account on a wrong password", async () => {
    const result = await runCli(["submit", "--server", server, "-u", "dana", "-p", "wrong", "--register", "-t", "echo", "--text", "again"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include('bester: The username or password is wrong. The account "dana" already exists, so --register created nothing: check the password, or pick another user name for a new account. [invalidCredentials]');
  });

  it("start exits 0 on SIGTERM", async () => {
    daemon.kill("SIGTERM");
    const [code, signal] = await once(daemon, "exit");

    expect(signal).to.equal(null);
    expect(code).to.equal(0);
  });
});

describe("bester start with server.name set", () => {
  it("prints the name after the listening address", async () => {
    const folder = await makeTempDir("bester-cli-named-");
    const config = path.join(folder, "bester.config.mjs");
    await writeModuleConfig(config, { listen: { host: "127.0.0.1", port: 0 }, server: { name: "jobs.example.net:2222" }, store: "memory", dataDir: path.join(folder, "data") });
    const named = spawnCli(["start", "--config", config, "--log", path.join(folder, "bester.log")]);

    try {
      const [, address, name] = await waitForOutput(named.stderr!, /listening on (127\.0\.0\.1:\d+) as (\S+)/);

      expect(address).to.match(/^127\.0\.0\.1:[1-9]\d*$/);
      expect(name).to.equal("jobs.example.net:2222");
    } finally {
      named.kill("SIGTERM");
      await once(named, "exit");
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe("bester start --listen", () => {
  it("moves the first listener and the server name", async () => {
    const folder = await makeTempDir("bester-cli-listen-option-");
    const config = path.join(folder, "bester.config.mjs");
    const [configPort, port] = [await freePort(), await freePort()];
    await writeModuleConfig(config, { listen: { host: "127.0.0.1", port: configPort }, store: "memory", registration: true, dataDir: path.join(folder, "data") });
    const started = spawnCli(["start", "--config", config, "--listen", String(port), "--log", path.join(folder, "bester.log")]);

    try {
      const [line] = await waitForOutput(started.stderr!, /listening on .*\n/);
      const client = await BesterClient.connect({ port });
      const address = await client.auth("dana", "dana-pw").catch(async () => {
        await client.register("dana", "dana-pw");
        return client.auth("dana", "dana-pw");
      });
      await client.close();

      expect(line).to.equal(`listening on 127.0.0.1:${port}\n`);
      expect(address).to.equal(`dana@127.0.0.1:${port}`);
    } finally {
      started.kill("SIGTERM");
      await once(started, "exit");
      await rm(folder, { recursive: true, force: true });
    }
  });

  for (const value of ["127.0.0.1:http", "127.0.0.1:2223:5", "70000"]) {
    it(`rejects --listen ${value}`, async () => {
      const result = await runCli(["start", "--listen", value]);

      expect(result.code).to.equal(1);
      expect(result.stderr).to.equal(`bester: --listen "${value}" is not a port or host:port. Examples: --listen 2223, --listen 127.0.0.1:2223. [invalidArgument]\n`);
    });
  }

  it("names a taken port and a foreign host", async () => {
    const folder = await makeTempDir("bester-cli-listen-taken-");
    const config = path.join(folder, "bester.config.mjs");
    await writeModuleConfig(config, { store: "memory", dataDir: path.join(folder, "data"), handlers: { echo: fixtureHandler("echo") } });
    const portHolder = net.createServer().listen(0, "127.0.0.1");
    await once(portHolder, "listening");
    const { port } = portHolder.address() as net.AddressInfo;

    try {
      const busy = await runCli(["start", "--config", config, "--log", path.join(folder, "busy.log"), "--listen", `127.0.0.1:${port}`]);
      // 192.0.2.1 is a documentation address (RFC 5737), so no machine here has it.
      const foreign = await runCli(["start", "--config", config, "--log", path.join(folder, "foreign.log"), "--listen", `192.0.2.1:${port}`]);

      expect(busy.code).to.equal(1);
      expect(busy.stderr).to.include(`Listening on 127.0.0.1:${port} failed (EADDRINUSE). Another process uses the port`);
      // The port is checked before the handlers start, so none was started only to be stopped.
      expect(await readFile(path.join(folder, "busy.log"), "utf8")).to.not.include("handler process started");
      expect(foreign.code).to.equal(1);
      expect(foreign.stderr).to.include(`Listening on 192.0.2.1:${port} failed (EADDRNOTAVAIL). The host is not an address of this machine`);
    } finally {
      portHolder.close();
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe("bester start with a config mistake", () => {
  let folder: string;

  before(async () => {
    folder = await makeTempDir("bester-cli-bad-");
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("exits 1 naming handlers.x.connections", async () => {
    const config = path.join(folder, "bester.config.mjs");
    await writeModuleConfig(config, { listen: { port: 0 }, store: "memory", handlers: { x: { socket: path.join(folder, "x.sock"), connections: 0 } } });
    const result = await runCli(["start", "--config", config]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("handlers.x.connections");
    expect(result.stderr).to.include("[invalidConfig]");
  });

  it("exits 1 naming an unknown key in a JSON config", async () => {
    const config = path.join(folder, "bester.config.json");
    await writeFile(config, JSON.stringify({ listen: { port: 0 }, store: "memory", handlerz: {} }));
    const result = await runCli(["start", "--config", config]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include('"handlerz"');
  });

  it("names a plugin whose apply throws", async () => {
    const config = path.join(folder, "throwing-plugin.config.mjs");
    const plugin = `{ name: "boom", apply() { throw new Error("boom in apply"); } }`;
    await writeFile(config, `export default { listen: { port: 0 }, store: "memory", dataDir: ${JSON.stringify(path.join(folder, "data"))}, plugins: [${plugin}] };\n`);
    const result = await runCli(["start", "--config", config]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("applying plugins failed\n");
    expect(result.stderr).to.include('bester: Plugin "boom" failed in apply(): boom in apply [pluginFailed]\n');
    expect(result.stderr).not.to.include("    at ");
  });

  it("exits 1 when the config file is missing", async () => {
    const result = await runCli(["start", "--config", path.join(folder, "nope.mjs")]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("nope.mjs");
    expect(result.stderr).to.include("[configNotFound]");
  });
});

describe("bester submit --register with registration off", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ registration: false, handlers: { echo: fixtureHandler("echo") } });
    const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
    await accounts.add("erin", "erin-pw");
  });

  after(async () => {
    await server.stop();
  });

  it("logs in to an existing account", async () => {
    const result = await runCli(["submit", "--server", `127.0.0.1:${server.port}`, "-u", "erin", "-p", "erin-pw", "--register", "-t", "echo", "--text", "hello"]);

    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.include("hello");
  });

  it("reports registrationDisabled for an unknown account", async () => {
    const result = await runCli(["submit", "--server", `127.0.0.1:${server.port}`, "-u", "frank", "-p", "pw", "--register", "-t", "echo", "--text", "hello"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("[registrationDisabled]");
  });
});

describe("bester usage mistakes", () => {
  it("reports a missing required option in one line with a code", async () => {
    const result = await runCli(["submit", "--type", "echo", "--text", "hi"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.equal("bester: required option '-u, --user <name>' not specified [invalidArgument]\n(add --help for the command's options)\n");
  });

  it("points an unknown command to the command list", async () => {
    const result = await runCli(["bogus"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.equal("bester: unknown command 'bogus' [invalidArgument]\n(run `bester --help` for the list of commands)\n");
  });

  it("lists exit codes in submit help", async () => {
    const result = await runCli(["submit", "--help"]);

    expect(result.code).to.equal(0);
    expect(result.stdout).to.include("--timeout <seconds>");
    expect(result.stdout).to.include("Exit codes:\n  0  the job completed");
    expect(result.stdout).to.include("  2  the job failed");
  });

  it("points a mistake in a nested command to its help", async () => {
    const result = await runCli(["user", "add"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.equal("bester: missing required argument 'name' [invalidArgument]\n(add --help for the command's options)\n");
  });

  it("prints the package version with --version", async () => {
    const manifest = JSON.parse(await readFile(path.join(REPO_ROOT, "package.json"), "utf8")) as { version: string };

    const result = await runCli(["--version"]);

    expect(result.code).to.equal(0);
    expect(result.stdout).to.equal(`${manifest.version}\n`);
  });

  it("rejects non-UTF-8 --file before connecting", async () => {
    const file = path.join(await makeTempDir("bester-cli-latin1-"), "cities.csv");
    // "Zürich" in Latin-1: the ü is the single byte 0xFC, at offset 17 on line 2.
    await writeFile(file, Buffer.from("city,population\nZürich,421878\n", "latin1"));
    const listener = net.createServer((socket) => socket.destroy());
    let connections = 0;
    listener.on("connection", () => (connections += 1));
    listener.listen(0, "127.0.0.1");
    await once(listener, "listening");
    const { port } = listener.address() as net.AddressInfo;

    try {
      const result = await runCli(["submit", "--server", `127.0.0.1:${port}`, "-u", "a", "-p", "b", "-t", "echo", "--file", file]);

      expect(result.code).to.equal(1);
      expect(result.stderr).to.equal(
        `bester: --file ${file} is not valid UTF-8 text: the byte 0xFC at byte offset 17 (line 2) does not start a valid UTF-8 sequence. ` +
          "Convert the text to UTF-8 first, e.g. with `iconv -f LATIN1 -t UTF-8 IN > OUT` for Latin-1 text, " +
          "or send binary data as JSON that encodes it, e.g. a base64 string in --data or in a file read with --json. [invalidArgument]\n",
      );
      expect(connections).to.equal(0);
    } finally {
      listener.close();
    }
  });

  it("rejects an empty stdin", async () => {
    const result = await runCli(["submit", "--server", "127.0.0.1:1", "-u", "a", "-p", "b", "-t", "echo"], { input: "" });

    expect(result.code).to.equal(1);
    expect(result.stderr).to.equal('bester: No job data: stdin was empty. Pass --data, --text or --file, or pipe the data into stdin; --text "" sends an empty string. [invalidArgument]\n');
  });

  it("rejects non-UTF-8 stdin", async () => {
    // The last character, the euro sign E2 82 AC, is cut off after two of its three bytes.
    const input = Buffer.from([0x61, 0x62, 0x63, 0xe2, 0x82]);

    const result = await runCli(["submit", "--server", "127.0.0.1:1", "-u", "a", "-p", "b", "-t", "echo"], { input });

    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(/^bester: stdin is not valid UTF-8 text: the byte 0xE2 at byte offset 3 \(line 1\) does not start a valid UTF-8 sequence\. /);
    expect(result.stderr).to.match(/ \[invalidArgument\]\n$/);
  });

  it("reports an unreadable --file as invalidArgument, naming the path", async () => {
    const missing = path.join(await makeTempDir("bester-cli-file-"), "missing.txt");

    const result = await runCli(["submit", "--server", "127.0.0.1:1", "-u", "a", "-p", "b", "-t", "echo", "--file", missing]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(new RegExp(`^bester: Reading --file ${missing.replaceAll("/", "\\/")} failed: ENOENT.*\\[invalidArgument\\]\\n$`));
  });
});
