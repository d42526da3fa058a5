import { expect } from "chai";
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { startDaemon, stopDaemon, writeDaemonConfig, type DaemonProcess } from "../daemon-process.js";
import { isProcessRunning } from "../../core/process-state.js";
import { fixtureHandler, makeTempDir, REPO_ROOT, waitUntil } from "../helper.js";


describe("handler process lifetime", function () {
  this.timeout(30_000);
  let folder: string | undefined;
  let daemon: DaemonProcess | undefined;
  let handlerPid: number | undefined;

  afterEach(async () => {
    if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
      await stopDaemon(daemon, "SIGKILL");
    }
    if (handlerPid !== undefined && isProcessRunning(handlerPid)) {
      process.kill(handlerPid, "SIGKILL");
    }
    if (folder) {
      await rm(folder, { recursive: true, force: true });
    }
    daemon = undefined;
    handlerPid = undefined;
    folder = undefined;
  });

  const killedDaemonCases = [
    { name: "a serveHandler handler", handler: fixtureHandler("echo") },
    { name: "the Python example handler", handler: { command: ["python3", path.join(REPO_ROOT, "examples", "handlers", "sha256.py")], cwd: REPO_ROOT } },
  ];
  for (const { name, handler } of killedDaemonCases) {
    it(`exits once its daemon is killed: ${name}`, async () => {
      const written = await writeDaemonConfig({ handlers: { echo: handler } });
      folder = written.folder;
      daemon = await startDaemon(written.file);
      const started = daemon.logs.find((entry) => entry.msg === "handler process started" && entry.type === "echo");
      handlerPid = started?.pid as number;
      expect(isProcessRunning(handlerPid)).to.equal(true);

      daemon.child.kill("SIGKILL");
      await daemon.exited;
      const exited = await waitUntil(() => !isProcessRunning(handlerPid!), "the handler exited").then(() => true, () => false);

      expect(exited).to.equal(true);
    });
  }

  it("keeps running when started by hand", async () => {
    folder = await makeTempDir("bester-handler-lifetime-");
    const socket = path.join(folder, "echo.sock");
    // A shell starts the handler in the background and exits a second later, as a terminal session that ends would.
    const script = `"${process.execPath}" --import tsx test/fixtures/handlers/echo.ts >/dev/null 2>&1 & echo $!; sleep 1`;
    const shell = spawn("sh", ["-c", script], { cwd: REPO_ROOT, env: { ...process.env, BESTER_SOCKET: socket, BESTER_DAEMON_PID: "" } });
    let output = "";
    shell.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    await new Promise((resolve) => shell.once("exit", resolve));
    handlerPid = Number(output.trim());

    // The daemon's handlers check every second, so three seconds would show an exit.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const serving = await new Promise<boolean>((resolve) => {
      const client = net.createConnection(socket, () => {
        client.destroy();
        resolve(true);
      });
      client.once("error", () => resolve(false));
    });

    expect(isProcessRunning(handlerPid)).to.equal(true);
    expect(serving).to.equal(true);
  });
});
