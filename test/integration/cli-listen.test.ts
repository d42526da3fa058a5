import { expect } from "chai";
import { spawn } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { BesterClient } from "../../plugins/transport-tcp/client.js";
import { CLI_ENTRY, runCli, spawnCli, waitForOutput } from "../cli-runner.js";
import { fixtureHandler, freePort, REPO_ROOT, startServer, waitUntil, type TestServer } from "../helper.js";
import { startRedis, type RedisServer } from "../redis-server.js";

describe("CLI listen", () => {
  let folder: string;
  let store: string;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-cli-listen-"));
    store = `sqlite://${path.join(folder, "bester.sqlite")}`;
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  async function sendTo(server: TestServer, user: string, value: unknown): Promise<string> {
    const client = await BesterClient.connect({ port: server.port });
    await client.auth("alice", "alice-pw");
    const result = await client.run("echo", { deliverTo: [user], value });
    await client.close();
    return result.jobID;
  }

  it("reconnects and keeps printing outputs", async () => {
    const first = await startServer({ store, handlers: { echo: fixtureHandler("echo") } });
    const accounts = new AccountStore(first.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
    await accounts.add("alice", "alice-pw");
    await accounts.add("bob", "bob-pw");
    const port = first.port;
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${port}`, "-u", "bob", "-p", "bob-pw", "--json"]);
    let second: TestServer | undefined;

    try {
      await waitForOutput(listener.stderr!, /listening as bob@/);
      const firstLine = waitForOutput(listener.stdout!, /^(.+)\n/);
      const firstJob = await sendTo(first, "bob", "before");
      const [, before] = await firstLine;

      const lost = waitForOutput(listener.stderr!, /connection lost \(The server closed the connection because it is stopping\.\); reconnecting until the server is back \(Ctrl-C stops\)/);
      await first.stop();
      await lost;
      const regained = waitForOutput(listener.stderr!, /reconnected after \d+ attempts?/);
      second = await startServer({ store, listen: { host: "127.0.0.1", port }, handlers: { echo: fixtureHandler("echo") } });
      await regained;
      const secondLine = waitForOutput(listener.stdout!, /^(.+)\n/);
      const secondJob = await sendTo(second, "bob", "after");
      const [, after] = await secondLine;

      listener.kill("SIGINT");
      const [code] = await once(listener, "exit");

      expect((JSON.parse(before!) as { job: { jobID: string; payload: unknown } }).job).to.deep.equal({ jobID: `${firstJob}:alice@127.0.0.1:${port}`, payload: { type: "echo", data: "before" } });
      expect((JSON.parse(after!) as { job: { jobID: string; payload: unknown } }).job).to.deep.equal({ jobID: `${secondJob}:alice@127.0.0.1:${port}`, payload: { type: "echo", data: "after" } });
      expect(code).to.equal(0);
    } finally {
      listener.kill("SIGKILL");
      await second?.stop();
    }
  });

  it("waits for a server started later", async () => {
    const port = await freePort();
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${port}`, "-u", "bob", "-p", "bob-pw", "--register", "--json"]);
    let server: TestServer | undefined;

    try {
      const [, waiting] = await waitForOutput(listener.stderr!, /^(Connecting to .*Waiting for the server.*)$/m);
      const listening = waitForOutput(listener.stderr!, /listening as bob@/);
      server = await startServer({ registration: true, listen: { host: "127.0.0.1", port }, handlers: { echo: fixtureHandler("echo") } });
      await listening;
      const line = waitForOutput(listener.stdout!, /^(.+)\n/);
      const sender = await BesterClient.connect({ port });
      await sender.register("alice", "alice-pw");
      await sender.auth("alice", "alice-pw");
      const { jobID } = await sender.run("echo", { deliverTo: ["bob"], value: "first" });
      await sender.close();
      const [, printed] = await line;

      const exited = once(listener, "exit");
      listener.kill("SIGINT");
      const [code] = await exited;

      expect(waiting).to.contain(`127.0.0.1:${port} failed (ECONNREFUSED)`);
      expect((JSON.parse(printed!) as { job: unknown }).job).to.deep.equal({ jobID: `${jobID}:alice@127.0.0.1:${port}`, payload: { type: "echo", data: "first" } });
      expect(code).to.equal(0);
    } finally {
      listener.kill("SIGKILL");
      await server?.stop();
    }
  });

  it("waits while the server's store is down", async () => {
    const redis = await startRedis();
    let restarted: RedisServer | undefined;
    const server = await startServer({ store: redis.url, registration: true, handlers: { echo: fixtureHandler("echo") } });
    await redis.stop();
    await waitUntil(() => server.logs.some((line) => line.msg === "Redis connection lost; commands fail until it is back"), "the server to notice the outage");
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${server.port}`, "-u", "bob", "-p", "bob-pw", "--register", "--json"]);
    let stderr = "";
    listener.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));

    try {
      await waitForOutput(listener.stderr!, /Waiting for the server's store/);
      // Several login attempts fail during this wait, and each one would print its own line.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const listening = waitForOutput(listener.stderr!, /listening as bob@/);
      restarted = await startRedis({ port: redis.port });
      await listening;
      const line = waitForOutput(listener.stdout!, /^(.+)\n/);
      const sender = await BesterClient.connect({ port: server.port });
      await sender.register("alice", "alice-pw");
      await sender.auth("alice", "alice-pw");
      const { jobID } = await sender.run("echo", { deliverTo: ["bob"], value: "after the outage" });
      await sender.close();
      const [, printed] = await line;

      const exited = once(listener, "exit");
      listener.kill("SIGINT");
      const [code] = await exited;

      const waitingLines = stderr.split("\n").filter((text) => text.includes("Waiting for the server's store"));
      expect(waitingLines).to.deep.equal(["The server's store is unreachable at the moment. Waiting for the server's store (Ctrl-C stops)..."]);
      expect(stderr).not.to.contain("internalError");
      expect((JSON.parse(printed!) as { job: unknown }).job).to.deep.equal({ jobID: `${jobID}:alice@127.0.0.1:${server.port}`, payload: { type: "echo", data: "after the outage" } });
      expect(code).to.equal(0);
    } finally {
      listener.kill("SIGKILL");
      await server.stop();
      await restarted?.stop();
    }
  });

  it("stops waiting on Ctrl-C with 0", async () => {
    const port = await freePort();
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${port}`, "-u", "bob", "-p", "bob-pw"]);

    try {
      await waitForOutput(listener.stderr!, /Waiting for the server/);
      const exited = once(listener, "exit");
      listener.kill("SIGINT");
      const [code] = await exited;

      expect(code).to.equal(0);
    } finally {
      listener.kill("SIGKILL");
    }
  });

  it("waits when the login is reset", async () => {
    // A server that resets every connection, as one that is stopping may.
    const resetting = net.createServer((socket) => socket.resetAndDestroy()).listen(0, "127.0.0.1");
    await once(resetting, "listening");
    const { port } = resetting.address() as net.AddressInfo;
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${port}`, "-u", "bob", "-p", "bob-pw"]);

    try {
      const [waiting] = await waitForOutput(listener.stderr!, /^.*Waiting for the server.*$/m);
      const exited = once(listener, "exit");
      listener.kill("SIGINT");
      const [code] = await exited;

      expect(waiting).to.include("ECONNRESET");
      expect(code).to.equal(0);
    } finally {
      listener.kill("SIGKILL");
      resetting.close();
    }
  });

  it("stops waiting on Ctrl-C in a terminal", async function () {
    this.timeout(40_000);
    const port = await freePort();
    // A real pseudo-terminal with a width, so the CLI shows its spinner, and Ctrl-C typed as a key.
    const script = [
      "import fcntl, os, pty, select, struct, sys, termios, time",
      "pid, fd = pty.fork()",
      "if pid == 0:",
      "    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 200, 0, 0))",
      "    os.execv(sys.argv[1], sys.argv[1:])",
      "def read_for(seconds, until=None):",
      "    text, end = b'', time.time() + seconds",
      "    while time.time() < end and (until is None or until not in text):",
      "        if select.select([fd], [], [], 0.2)[0]:",
      "            try: text += os.read(fd, 4096)",
      "            except OSError: return text, os.waitpid(pid, 0)[1]",
      "        done, status = os.waitpid(pid, os.WNOHANG)",
      "        if done: return text, status",
      "    return text, None",
      "text, status = read_for(20, b'Waiting for the server')",
      "os.write(fd, b'\\x03')",
      "text, status = read_for(10)",
      "if status is None:",
      "    os.kill(pid, 9); print('still running')",
      "else:",
      "    print('exit', os.waitstatus_to_exitcode(status))",
    ].join("\n");
    const child = spawn("python3", ["-c", script, process.execPath, "--import", "tsx", CLI_ENTRY, "listen", "--server", `127.0.0.1:${port}`, "-u", "bob", "-p", "bob-pw"], { cwd: REPO_ROOT });
    let printed = "";
    child.stdout.on("data", (chunk: Buffer) => (printed += chunk.toString("utf8")));
    await once(child, "exit");

    expect(printed.trim()).to.equal("exit 0");
  });

  it("exits 1 with --no-reconnect when down", async () => {
    const port = await freePort();
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${port}`, "-u", "bob", "-p", "bob-pw", "--no-reconnect"]);
    let stderr = "";
    listener.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));

    try {
      const [code] = await once(listener, "exit");

      expect(code).to.equal(1);
      expect(stderr).to.contain("[connectFailed]");
      expect(stderr).not.to.contain("Waiting for the server");
    } finally {
      listener.kill("SIGKILL");
    }
  });

  it("reports a missing password alone", async () => {
    const result = await runCli(["listen", "--server", "127.0.0.1:1", "-u", "bob"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.equal("bester: No password given. Pass --password or set BESTER_PASSWORD. [invalidArgument]\n");
  });

  it("prints failed jobs without --all", async () => {
    const server = await startServer({ handlers: { echo: fixtureHandler("echo"), throws: fixtureHandler("throws") } });
    const accounts = new AccountStore(server.bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
    await accounts.add("bob", "bob-pw");
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${server.port}`, "-u", "bob", "-p", "bob-pw", "--json"]);
    let printed = "";
    listener.stdout!.on("data", (chunk: Buffer) => (printed += chunk.toString("utf8")));

    try {
      await waitForOutput(listener.stderr!, /listening as bob@/);
      const client = await BesterClient.connect({ port: server.port });
      await client.auth("bob", "bob-pw");
      const failedID = await client.submit("throws", { n: 1 });
      const completed = await client.run("echo", "done");
      await client.close();
      // The completed job's notification follows its output at once, so it would be printed by now.
      await waitUntil(() => printed.includes(`${completed.jobID}:bob@`) && printed.includes(failedID), "listen printed both jobs", 20_000);
      await new Promise((resolve) => setTimeout(resolve, 300));

      const messages = printed.trim().split("\n").map((line) => JSON.parse(line) as { reply: string; job: { jobID: string; status?: string; error?: { code: string } } });
      const notifications = messages.filter((message) => message.reply === "jobNotification");
      expect(notifications.map((message) => message.job.jobID)).to.deep.equal([failedID]);
      expect(notifications[0]!.job.status).to.equal("failed");
      expect(notifications[0]!.job.error?.code).to.equal("handlerFailed");
      expect(messages.filter((message) => message.reply === "jobOutput").map((message) => message.job.jobID)).to.deep.equal([`${completed.jobID}:bob@${server.bester.serverName}`]);
    } finally {
      listener.kill("SIGKILL");
      await server.stop();
    }
  });

  it("exits 1 with --no-reconnect when the server stops", async () => {
    const server = await startServer({ store, handlers: {} });
    const listener = spawnCli(["listen", "--server", `127.0.0.1:${server.port}`, "-u", "bob", "-p", "bob-pw", "--no-reconnect"]);

    try {
      await waitForOutput(listener.stderr!, /listening as bob@/);
      const message = waitForOutput(listener.stderr!, /bester: The server closed the connection because it is stopping\. \[connectionClosed\]/);
      // Listen for the exit before it can happen: the process may exit right after its message.
      const exited = once(listener, "exit");
      await server.stop();
      await message;
      const [code] = await exited;

      expect(code).to.equal(1);
    } finally {
      listener.kill("SIGKILL");
    }
  });
});
