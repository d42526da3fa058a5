import { expect } from "chai";
import { groupAlive } from "../../plugins/handler-bridge/process-group.js";
import { acceptedJob, connectAs, notificationFor, outputFor, REPO_ROOT, startServer, waitUntil, type TestServer } from "../helper.js";
import { runningProcesses } from "../processes.js";

describe("handler supervisor", () => {
  let server: TestServer | undefined;

  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it("retries a command that cannot start", async () => {
    server = await startServer({
      handlers: { missing: { command: ["/nonexistent/handler-binary"], unavailableTimeoutMs: 60_000 } },
    });

    // Start-up waits for the handler, then goes on; by then several start attempts were made.
    const deadline = Date.now() + 5000;
    let attempts = 0;
    while (Date.now() < deadline && attempts < 2) {
      attempts = server.logs.filter((line) => line.msg === "handler process failed to start; retrying").length;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    expect(attempts).to.be.at.least(2);
    const last = server.logs.filter((line) => line.msg === "handler process failed to start; retrying").at(-1)!;
    expect(last.type).to.equal("missing");
    expect(last.crashes).to.be.a("number").and.at.least(2);
  });

  it("names a handler socket that does not exist", async () => {
    server = await startServer({
      handlers: { external: { socket: "/tmp/bester-no-such-handler.sock", connections: 3, unavailableTimeoutMs: 60_000 } },
    });

    const reportsOf = (logs: Array<Record<string, unknown>>) => logs.filter((line) => String(line.msg).startsWith('cannot connect to handler "external"'));
    // Reported after 2 s of failed connects; then three more connect attempts pass unreported.
    await waitUntil(() => reportsOf(server!.logs).length > 0, "the connect failure was reported", 8000);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const reports = reportsOf(server.logs);

    expect(reports).to.have.length(1);
    expect(reports[0]!.msg).to.equal('cannot connect to handler "external": the socket file does not exist; retrying until it is up. Check that the handler runs and listens on handlers.external.socket');
    expect(reports[0]!.socket).to.equal("/tmp/bester-no-such-handler.sock");
    expect(reports[0]!.level).to.equal(40);
    const startup = server.logs.find((line) => String(line.msg).startsWith("some handlers did not connect"))!;
    expect(startup.msg).to.match(/^some handlers did not connect within [0-9.]+ s of start-up; their jobs wait for a connection up to 60000 ms for external \(handlers\.external\.unavailableTimeoutMs\)$/);
    expect(startup).to.not.have.property("timeoutMs");
  });

  it("names a missing working folder", async () => {
    server = await startServer({
      handlers: { nowhere: { command: ["/bin/sleep", "30"], cwd: "/nonexistent/handler-folder", unavailableTimeoutMs: 60_000 } },
    });

    const failure = server.logs.find((line) => String(line.msg).startsWith("handler process could not start"))!;

    expect(failure.msg).to.equal("handler process could not start: working folder /nonexistent/handler-folder not found. Check handlers.nowhere.command and handlers.nowhere.cwd");
  });

  it("names a missing program without a stack", async () => {
    server = await startServer({
      handlers: { missing: { command: ["/nonexistent/handler-binary", "--flag"], unavailableTimeoutMs: 60_000 } },
    });

    const failures = server.logs.filter((line) => String(line.msg).startsWith("handler process could not start"));
    const retries = server.logs.filter((line) => line.msg === "handler process failed to start; retrying");
    const started = server.logs.filter((line) => line.msg === "handler process started" && line.type === "missing");
    const failure = failures[0]!;

    expect(failure.msg).to.equal('handler process could not start: program "/nonexistent/handler-binary" not found. Check handlers.missing.command and handlers.missing.cwd');
    expect(failure.code).to.equal("ENOENT");
    expect(failure.command).to.deep.equal(["/nonexistent/handler-binary", "--flag"]);
    expect(failure).to.not.have.property("err");
    expect(started).to.deep.equal([]);
    // Start-up waited for the handler, so it failed several times, and each failure after the first is a retry line only.
    expect(retries.length).to.be.at.least(4);
    expect(failures).to.have.length(1);
    // Only the first three retries (and then every tenth) are warnings.
    expect(retries.slice(0, 3).map((line) => line.level)).to.deep.equal([40, 40, 40]);
    expect(retries[3]!.level).to.equal(20);
  });

  it("runs a string command with shell syntax", async () => {
    server = await startServer({
      registration: true,
      handlers: { echo: { command: `cd test/fixtures/handlers && GREETING=hello "${process.execPath}" --import tsx echo.ts`, cwd: REPO_ROOT } },
    });
    const alice = await connectAs(server.port, "alice");

    const jobId = await acceptedJob(alice, "echo", "through sh");
    const output = await outputFor(alice, jobId);
    const notification = await notificationFor(alice, jobId);
    const leader = server.logs.find((line) => line.msg === "handler process started" && line.type === "echo")!.pid as number;
    const members = runningProcesses()
      .filter((entry) => entry.processGroup === leader)
      .map((entry) => entry.pid);
    alice.close();
    await server.stop();
    server = undefined;

    expect(output.payload.data).to.equal("through sh");
    expect(notification.status).to.equal("completed");
    // The shell stays as the parent of the program it started, so the group has both.
    expect(members).to.include(leader);
    expect(members.length).to.be.at.least(2);
    expect(groupAlive(leader), "a process of the handler's group after stop").to.equal(false);
  });

  it("runs a simple string command as the daemon's child", async () => {
    server = await startServer({ handlers: { watch: { command: "PYTHONUNBUFFERED=1 python3 test/fixtures/handlers/ppid-watch.py", cwd: REPO_ROOT, connections: 1 } } });
    // The handler checks its parent every second, so three checks pass in 3.5 s.
    await new Promise((resolve) => setTimeout(resolve, 3500));

    const exits = server.logs.filter((line) => line.msg === "handler process exited; restarting");
    const stderr = server.logs.filter((line) => line.msg === "handler wrote to stderr").map((line) => line.stderr);
    expect(exits, JSON.stringify(stderr)).to.deep.equal([]);
  });

  it("waits quietly for a slow-starting handler process", async () => {
    server = await startServer({
      registration: true,
      handlers: { echo: { command: `sleep 3 && exec "${process.execPath}" --import tsx test/fixtures/handlers/echo.ts`, cwd: REPO_ROOT } },
    });
    const alice = await connectAs(server.port, "alice");

    const jobId = await acceptedJob(alice, "echo", "late");
    const output = await outputFor(alice, jobId);
    alice.close();

    expect(output.payload.data).to.equal("late");
    expect(server.logs.filter((line) => String(line.msg).startsWith("cannot connect to handler"))).to.deep.equal([]);
  });

  it("quiets the stderr of repeated crashes", async () => {
    server = await startServer({
      handlers: { noisy: { command: `for i in $(seq 1 25); do echo "trace line $i" >&2; done; exit 3`, unavailableTimeoutMs: 60_000 } },
    });

    const exits = () => server!.logs.filter((line) => line.msg === "handler process exited; restarting" && line.type === "noisy");
    // Restarts wait 100, 200, 400 and 800 ms, so five processes take about 1.5 s.
    await waitUntil(() => exits().length >= 5, "five handler processes exited", 15_000);
    const pids = server.logs.filter((line) => line.msg === "handler process started" && line.type === "noisy").map((line) => line.pid);
    const stderrOf = (pid: unknown, level: number) => server!.logs.filter((line) => line.msg === "handler wrote to stderr" && line.pid === pid && line.level === level);
    const capNotes = server.logs.filter((line) => String(line.msg).startsWith("handler wrote 20 lines to stderr"));

    for (const pid of pids.slice(0, 3)) {
      expect(stderrOf(pid, 40), "warned lines of an early process").to.have.length(20);
      expect(stderrOf(pid, 20), "debug lines of an early process").to.have.length(5);
    }
    expect(capNotes.slice(0, 3).map((line) => line.pid)).to.deep.equal(pids.slice(0, 3));
    expect(stderrOf(pids[3], 40), "warned lines of the fourth process").to.deep.equal([]);
    expect(stderrOf(pids[3], 20), "debug lines of the fourth process").to.have.length(25);
    expect(exits().map((line) => line.level).slice(0, 5)).to.deep.equal([40, 40, 40, 20, 20]);
  });
});
