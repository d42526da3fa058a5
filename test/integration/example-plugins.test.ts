import { expect } from "chai";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { pino } from "pino";
import { WebSocket } from "ws";
import type { Bester } from "../../core/bester.js";
import { createBester } from "../../core/config/builtins.js";
import { loadConfig } from "../../core/config/loader.js";
import { BesterClient } from "../../plugins/transport-tcp/client.js";
import { FIXTURE_HANDLERS, freePort, REPO_ROOT, waitUntil } from "../helper.js";

const importOf = (file: string) => JSON.stringify(pathToFileURL(path.join(REPO_ROOT, file)).href);

/** Writes a bester.config.ts that imports both example plugins, as a user's project would. */
async function writeUserConfig(folder: string): Promise<string> {
  const file = path.join(folder, "bester.config.ts");
  // freePort() picks from BESTER_TEST_PORTS when it is set, as startServer() does.
  const [tcpPort, wsPort] = [await freePort(), await freePort()];
  const handler = (name: string) => ({ command: [process.execPath, "--import", "tsx", path.join(FIXTURE_HANDLERS, `${name}.ts`)], cwd: REPO_ROOT });
  await writeFile(
    file,
    `import { defineConfig } from ${importOf("index.ts")};
import { fileSink } from ${importOf("examples/plugins/file-sink.ts")};
import { websocketTransport } from ${importOf("examples/plugins/websocket-transport.ts")};

export default defineConfig({
  listen: { host: "127.0.0.1", port: ${tcpPort} },
  store: "memory",
  registration: true,
  limits: { authTimeoutMs: 1000 },
  log: { level: "silent" },
  handlers: ${JSON.stringify({ echo: handler("echo"), toFile: handler("to-file") })},
  plugins: [
    websocketTransport({ host: "127.0.0.1", port: ${wsPort}, path: "/bester" }),
    fileSink({ folder: "./sink" }),
  ],
});
`,
  );
  return file;
}

/** A WebSocket client that sends JSON text messages and awaits replies. */
class WsClient {
  private messages: Array<Record<string, unknown>> = [];
  private waiting: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on("message", (data: Buffer) => {
      this.messages.push(JSON.parse(data.toString("utf8")) as Record<string, unknown>);
      this.waiting.splice(0).forEach((wake) => wake());
    });
  }

  static async connect(url: string): Promise<WsClient> {
    const socket = new WebSocket(url);
    await once(socket, "open");
    return new WsClient(socket);
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  async next(reply?: string): Promise<Record<string, unknown>> {
    for (;;) {
      const index = this.messages.findIndex((message) => reply === undefined || message.reply === reply);
      if (index !== -1) {
        return this.messages.splice(index, 1)[0]!;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  async request(message: unknown): Promise<Record<string, unknown>> {
    this.send(message);
    return this.next();
  }
}

describe("example plugins loaded from a config file", () => {
  let folder: string;
  let bester: Bester;
  let tcpPort: number;
  let wsUrl: string;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-example-plugins-"));
    const config = await loadConfig({ file: await writeUserConfig(folder) });
    bester = await createBester(config, { log: pino({ level: "silent" }) });
    const addresses = await bester.start();
    tcpPort = Number(addresses.find((address) => !address.startsWith("ws:"))!.split(":").pop());
    wsUrl = addresses.find((address) => address.startsWith("ws://"))!;
  });

  after(async () => {
    await bester.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it("applies both plugins from the config", () => {
    expect(bester.pluginNames()).to.include.members(["example-transport-websocket", "example-file-sink"]);
    expect(wsUrl).to.match(/^ws:\/\/127\.0\.0\.1:\d+\/bester$/);
  });

  describe("websocket transport", () => {
    it("runs a job over WebSocket messages", async () => {
      const client = await WsClient.connect(wsUrl);

      const registered = await client.request({ request: "register", account: { username: "wsuser", password: "pw" } });
      const auth = await client.request({ request: "auth", account: { username: "wsuser", password: "pw" } });
      const submission = await client.request({ request: "newJob", job: { payload: { type: "echo", data: [1, 2] } }, tag: "t1" });
      const jobID = (submission.submission as { jobID: string }).jobID;
      const output = await client.next("jobOutput");
      const notification = await client.next("jobNotification");

      expect(registered).to.deep.equal({ reply: "register", register: { status: "ok" } });
      expect(auth).to.deep.equal({ reply: "auth", auth: { status: "ok", address: `wsuser@${bester.serverName}` } });
      expect(submission).to.deep.equal({ reply: "jobSubmission", submission: { status: "accepted", jobID }, tag: "t1" });
      expect(output.job).to.deep.equal({ jobID: `${jobID}:wsuser@${bester.serverName}`, payload: { type: "echo", data: [1, 2] } });
      expect(notification.job).to.deep.equal({ status: "completed", jobID });
      client.socket.close();
    });

    it("answers invalid JSON and keeps the connection", async () => {
      const client = await WsClient.connect(wsUrl);

      client.socket.send("{not json");
      const invalidJson = await client.next();
      const invalidRequest = await client.request({ request: "auth", account: { username: "x" } });
      const unauthenticated = await client.request({ request: "newJob", job: { payload: { type: "echo", data: 1 } } });

      expect((invalidJson.error as { code: string }).code).to.equal("invalidJson");
      expect((invalidRequest.error as { code: string; message: string }).code).to.equal("invalidRequest");
      expect((invalidRequest.error as { message: string }).message).to.include("/account/password is required");
      expect((unauthenticated.error as { code: string }).code).to.equal("notAuthenticated");
      expect(client.socket.readyState).to.equal(WebSocket.OPEN);
      client.socket.close();
    });

    it("omits length-prefix advice for broken JSON", async () => {
      const client = await WsClient.connect(wsUrl);

      client.socket.send('{"request":"auth","account":{"username":"jürgen"');
      const reply = await client.next();

      expect((reply.error as { code: string }).code).to.equal("invalidJson");
      expect((reply.error as { message: string }).message).not.to.include("length prefix");
      expect(client.socket.readyState).to.equal(WebSocket.OPEN);
      client.socket.close();
    });

    it("delivers outputs between TCP and WebSocket users", async () => {
      const browser = await WsClient.connect(wsUrl);
      await browser.request({ request: "register", account: { username: "browser", password: "pw" } });
      await browser.request({ request: "auth", account: { username: "browser", password: "pw" } });
      const tcp = await BesterClient.connect({ port: tcpPort });
      await tcp.register("tcpuser", "pw");
      await tcp.auth("tcpuser", "pw");

      const result = await tcp.run("echo", { deliverTo: ["browser"], value: "from tcp" });
      const output = await browser.next("jobOutput");

      expect(result.notification.status).to.equal("completed");
      expect(output.job).to.deep.equal({ jobID: `${result.jobID}:tcpuser@${bester.serverName}`, payload: { type: "echo", data: "from tcp" } });
      browser.socket.close();
      await tcp.close();
    });

    it("closes a connection that does not authenticate", async () => {
      const client = await WsClient.connect(wsUrl);

      const [code] = (await once(client.socket, "close")) as [number];
      const error = await client.next("error");

      expect(code).to.equal(1000);
      expect((error.error as { code: string }).code).to.equal("notAuthenticated");
    });
  });

  describe("websocket unsent messages", () => {
    it("keeps buffered outputs for the next login", async () => {
      const reader = await WsClient.connect(wsUrl);
      await reader.request({ request: "register", account: { username: "slowreader", password: "pw" } });
      await reader.request({ request: "auth", account: { username: "slowreader", password: "pw" } });
      const sender = await BesterClient.connect({ port: tcpPort });
      await sender.register("bulksender", "pw");
      await sender.auth("bulksender", "pw");

      // The reader stops reading, so the loopback buffers fill and the rest waits inside ws.
      (reader.socket as unknown as { _socket: { pause(): void } })._socket.pause();
      const value = "x".repeat(1024 * 1024);
      const jobs = await Promise.all(Array.from({ length: 8 }, () => sender.run("echo", { deliverTo: ["slowreader"], value })));
      // A reset, as from a crashed browser tab: whatever ws still held never reached the reader.
      reader.socket.terminate();
      await waitUntil(() => !bester.sessions.isOnline("slowreader"), "slowreader is offline");

      const later = await BesterClient.connect({ port: tcpPort });
      const received: string[] = [];
      later.on("output", (output) => received.push(output.jobID));
      await later.auth("slowreader", "pw");
      await waitUntil(() => received.length > 0, "stored outputs arrived");
      // Stored messages go out in portions, so give the rest time to arrive as well.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await later.close();
      await sender.close();

      const sentIDs = jobs.map((job) => `${job.jobID}:bulksender@${bester.serverName}`);
      expect(received.length).to.be.greaterThan(0);
      expect(new Set(received).size).to.equal(received.length);
      expect(sentIDs).to.include.members(received);
    });
  });

  describe("fileSink director", () => {
    let client: BesterClient;

    before(async () => {
      client = await BesterClient.connect({ port: tcpPort });
      await client.register("sinkuser", "pw");
      await client.auth("sinkuser", "pw");
    });

    after(async () => {
      await client.close();
    });

    it("appends outputs as JSON lines", async () => {
      const first = await client.run("toFile", { path: "results/out.jsonl", value: { n: 1 } });
      const second = await client.run("toFile", { path: "results/out.jsonl", value: "two" });

      const lines = (await readFile(path.join(folder, "sink", "results", "out.jsonl"), "utf8")).trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);

      expect(first.notification.status).to.equal("completed");
      expect(second.notification.status).to.equal("completed");
      expect(lines).to.have.length(2);
      expect(lines[0]).to.deep.include({ jobID: `${first.jobID}:sinkuser@${bester.serverName}`, type: "toFile", data: { n: 1 } });
      expect(lines[1]).to.deep.include({ jobID: `${second.jobID}:sinkuser@${bester.serverName}`, type: "toFile", data: "two" });
      expect(Date.parse(lines[0]!.writtenAt as string)).to.be.a("number").and.not.NaN;
    });

    it("keeps lines whole under concurrent jobs", async () => {
      const values = Array.from({ length: 20 }, (_, index) => ({ index, text: "x".repeat(1000) }));

      await Promise.all(values.map((value) => client.run("toFile", { path: "concurrent.jsonl", value })));
      const lines = (await readFile(path.join(folder, "sink", "concurrent.jsonl"), "utf8")).trimEnd().split("\n");

      expect(lines).to.have.length(20);
      expect(lines.map((line) => (JSON.parse(line) as { data: { index: number } }).data.index).sort((a, b) => a - b)).to.deep.equal(values.map((value) => value.index));
    });

    const rejected: Array<[string, unknown, string]> = [
      ["parent folder", "../escape.jsonl", "outside the sink folder"],
      ["absolute path", "/tmp/escape.jsonl", "outside the sink folder"],
      ["the folder itself", ".", "outside the sink folder"],
      ["missing path", undefined, 'needs "path"'],
      ["non-string path", 42, 'needs "path"'],
    ];
    for (const [name, requested, message] of rejected) {
      it(`rejects ${name}`, async () => {
        const result = await client.run("toFile", { path: requested, value: 1 });

        expect(result.notification.status).to.equal("failed");
        expect(result.notification.error?.code).to.equal("directorFailed");
        expect(result.notification.error?.message).to.include(message);
      });
    }

    it("rejects a symbolic link out of the folder", async () => {
      const outside = path.join(folder, "outside");
      await mkdir(outside, { recursive: true });
      await symlink(outside, path.join(folder, "sink", "link"));

      const throughFolder = await client.run("toFile", { path: "link/escape.jsonl", value: 1 });
      await symlink(path.join(outside, "target.jsonl"), path.join(folder, "sink", "file-link.jsonl"));
      const throughFile = await client.run("toFile", { path: "file-link.jsonl", value: 1 });

      expect(throughFolder.notification.error?.code).to.equal("directorFailed");
      expect(throughFolder.notification.error?.message).to.include("symbolic link");
      expect(throughFile.notification.error?.code).to.equal("directorFailed");
      expect(throughFile.notification.error?.message).to.include("symbolic link");
      const escaped = await readFile(path.join(outside, "target.jsonl"), "utf8").catch(() => "missing");
      expect(escaped).to.equal("missing");
    });
  });
});

describe("example websocket transport at stop", () => {
  it("sends shuttingDown before the close", async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), "bester-example-stop-"));
    const bester = await createBester(await loadConfig({ file: await writeUserConfig(folder) }), { log: pino({ level: "silent" }) });
    try {
      const addresses = await bester.start();
      const client = await WsClient.connect(addresses.find((address) => address.startsWith("ws://"))!);
      await client.request({ request: "register", account: { username: "wsstop", password: "pw" } });
      await client.request({ request: "auth", account: { username: "wsstop", password: "pw" } });
      const closed = once(client.socket, "close");

      await bester.stop();
      await closed;
      const notice = await client.next("error");

      expect(notice).to.have.nested.property("error.code", "shuttingDown");
    } finally {
      await bester.stop();
      await rm(folder, { recursive: true, force: true });
    }
  });
});
