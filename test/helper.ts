// Shared test helpers: start a real daemon on a free loopback port with real handler processes,
// and talk to it with a frame-level client. Every server a test starts listens on 127.0.0.1 only.

import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Writable } from "node:stream";
import { pino } from "pino";
import type { Bester } from "../core/bester.js";
import type { BesterPlugin } from "../core/plugin.js";
import { createBester } from "../core/config/builtins.js";
import { resolveConfig } from "../core/config/schema.js";
import type { BesterConfig, HandlerConfig } from "../core/config/types.js";
import { encodeFrame, FrameDecoder } from "../core/protocol/frame-codec.js";
import { serveHandler, type HandlerFunction } from "../plugins/handler-bridge/serve-handler.js";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const FIXTURE_HANDLERS = path.join(REPO_ROOT, "test", "fixtures", "handlers");

/** A handler config that spawns a TypeScript file through tsx. */
export function tsHandler(file: string, extra: HandlerConfig = {}): HandlerConfig {
  return { command: [process.execPath, "--import", "tsx", path.resolve(REPO_ROOT, file)], cwd: REPO_ROOT, ...extra };
}

/** A handler config that spawns one of the fixture handlers in test/fixtures/handlers. */
export function fixtureHandler(name: string, extra: HandlerConfig = {}): HandlerConfig {
  return tsHandler(path.join("test", "fixtures", "handlers", `${name}.ts`), extra);
}

export interface TestServer {
  bester: Bester;
  port: number;
  host: string;
  dataDir: string;
  /** Log lines written so far, parsed from JSON. */
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * Starts a server in this process on 127.0.0.1 with a free port, a temporary data folder and the
 * memory store unless the config says otherwise. Log lines are captured for assertions.
 */
export async function startServer(config: BesterConfig = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "bester-test-"));
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line) {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        }
      }
      done();
    },
  });
  const log = pino({ level: "debug", base: undefined }, sink);

  const resolved = resolveConfig(
    { store: "memory", listen: { host: "127.0.0.1", port: TEST_PORTS ? await freePort() : 0 }, dataDir, ...config },
    REPO_ROOT,
  );
  const bester = await createBester(resolved, { log });
  let addresses: string[];
  try {
    addresses = await bester.start();
  } catch (error) {
    // As bester start does after a failed start: release what the server opened, then report.
    await bester.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const port = Number(addresses[0]!.split(":").pop());

  return {
    bester,
    port,
    host: "127.0.0.1",
    dataDir,
    logs,
    async stop() {
      await bester.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A frame-level client: send any bytes or messages, and await the next message. */
export class RawClient {
  private decoder = new FrameDecoder(64 * 1024 * 1024);
  private messages: Array<Record<string, unknown>> = [];
  private waiters: Array<{ match: (message: Record<string, unknown>) => boolean; resolve: (message: Record<string, unknown>) => void }> = [];
  closed = false;
  /** Every message received, in arrival order, including those already taken by next(). */
  readonly history: Array<Record<string, unknown>> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      for (const decoded of this.decoder.push(chunk)) {
        if (decoded.kind === "frame") {
          this.deliver(decoded.message);
        }
      }
    });
    socket.on("close", () => {
      this.closed = true;
    });
    socket.on("error", () => undefined);
  }

  /**
   * Connects to a server. With `allowHalfOpen`, the client does not end its side when the server
   * ends, as a client that reads until the server closes behaves, so the server's close grace runs.
   */
  static async connect(port: number, host = "127.0.0.1", options: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
    const socket = net.createConnection({ port, host, allowHalfOpen: options.allowHalfOpen ?? false });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new RawClient(socket);
  }

  send(message: unknown): void {
    this.socket.write(encodeFrame(message));
  }

  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolves with the next message that matches, including ones that already arrived. */
  next(match: (message: Record<string, unknown>) => boolean = () => true, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const index = this.messages.findIndex(match);
    if (index !== -1) {
      return Promise.resolve(this.messages.splice(index, 1)[0]!);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (message: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(message);
        },
      };
      // A timed-out waiter is removed, so it cannot swallow a message meant for a later next().
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`No matching message within ${timeoutMs} ms; received so far: ${JSON.stringify(this.messages)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Resolves with the next message whose `reply` is `name`. */
  nextReply(name: string, timeoutMs?: number): Promise<Record<string, unknown>> {
    return this.next((message) => message.reply === name, timeoutMs);
  }

  /** Sends a request and awaits the next reply that is not an async job event. */
  async request(message: unknown): Promise<Record<string, unknown>> {
    this.send(message);
    return this.next((reply) => !["jobOutput", "jobNotification", "jobProgress"].includes(String(reply.reply)));
  }

  /** Waits for the server to close the connection. */
  waitClosed(timeoutMs = 5000): Promise<void> {
    if (this.closed) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("The server did not close the connection")), timeoutMs);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private deliver(message: Record<string, unknown>): void {
    this.history.push(message);
    const index = this.waiters.findIndex((waiter) => waiter.match(message));
    if (index === -1) {
      this.messages.push(message);
      return;
    }
    this.waiters.splice(index, 1)[0]!.resolve(message);
  }
}

/** Registers (when allowed) and logs in; throws unless auth succeeds. */
export async function login(client: RawClient, username: string, password = "secret", register = true): Promise<void> {
  if (register) {
    await client.request({ request: "register", account: { username, password } });
  }
  const reply = await client.request({ request: "auth", account: { username, password } });
  const auth = reply.auth as { status: string } | undefined;
  if (auth?.status !== "ok") {
    throw new Error(`Login as ${username} failed: ${JSON.stringify(reply)}`);
  }
}

/** Sends newJob and returns the submission object (status, jobID or error). */
export async function submitJob(
  client: RawClient,
  type: string,
  data: unknown,
  options: { priority?: number; tag?: string } = {},
): Promise<{ status: string; jobID?: string; error?: { code: string; message: string } }> {
  const job: Record<string, unknown> = { payload: { type, data } };
  if (options.priority !== undefined) {
    job.priority = options.priority;
  }
  const reply = await client.request({ request: "newJob", job, ...(options.tag === undefined ? {} : { tag: options.tag }) });
  if (reply.reply !== "jobSubmission") {
    throw new Error(`Expected a jobSubmission reply, got ${JSON.stringify(reply)}`);
  }
  return reply.submission as { status: string; jobID?: string; error?: { code: string; message: string } };
}

/** Submits a job, expects it accepted and returns its jobID. */
export async function acceptedJob(client: RawClient, type: string, data: unknown, options: { priority?: number } = {}): Promise<string> {
  const submission = await submitJob(client, type, data, options);
  if (submission.status !== "accepted" || !submission.jobID) {
    throw new Error(`Job of type ${type} was not accepted: ${JSON.stringify(submission)}`);
  }
  return submission.jobID;
}

/** Resolves with the `job` object of the notification for `jobID`. */
export async function notificationFor(client: RawClient, jobID: string, timeoutMs?: number): Promise<{ status: string; jobID: string; error?: { code: string; message: string } }> {
  const message = await client.next((reply) => reply.reply === "jobNotification" && (reply.job as { jobID?: string }).jobID === jobID, timeoutMs);
  return message.job as { status: string; jobID: string; error?: { code: string; message: string } };
}

/** Resolves with the `job` object of the next jobOutput whose id starts with `<jobID>:`. */
export async function outputFor(client: RawClient, jobID: string, timeoutMs?: number): Promise<{ jobID: string; payload: { type: string; data: unknown } }> {
  const message = await client.next((reply) => reply.reply === "jobOutput" && String((reply.job as { jobID?: string }).jobID).startsWith(`${jobID}:`), timeoutMs);
  return message.job as { jobID: string; payload: { type: string; data: unknown } };
}

/** Connects and logs in as `username`, registering first. */
export async function connectAs(port: number, username: string): Promise<RawClient> {
  const client = await RawClient.connect(port);
  await login(client, username);
  return client;
}

/** Returns a plugin that delays every login's stored-message delivery by `delayMs`, as a slow store would. */
export function slowSessionStart(delayMs: number): BesterPlugin {
  return {
    name: "slow-session-start",
    apply(bester) {
      bester.hooks.onSessionStart.tapPromise({ name: "slow-session-start", stage: -10 }, () => new Promise((resolve) => setTimeout(resolve, delayMs)));
    },
  };
}

/** Logs `user` in, closes the connection at once and waits until the server has the user offline. */
export async function loginAndLeave(server: TestServer, user: string, register = true): Promise<void> {
  const client = await RawClient.connect(server.port);
  await login(client, user, "secret", register);
  client.close();
  await waitUntil(() => !server.bester.sessions.isOnline(user), `${user} is offline`);
}

/** Has `sender` run an echo job that delivers `value` to `user`, and waits for its notification. */
export async function sendOutput(sender: RawClient, user: string, value: unknown): Promise<void> {
  await sender.request({ request: "newJob", job: { payload: { type: "echo", data: { deliverTo: [user], value } } } });
  await sender.nextReply("jobNotification");
}

/** Polls `condition` every 10 ms until it holds; rejects after `timeoutMs`, naming `what`. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting until ${what}.`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Creates a temporary folder; the caller removes it. */
export function makeTempDir(prefix = "bester-test-"): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

/** A handler served from the test process, which the test can stop and start again. */
export interface InProcessHandler {
  /** Closes the listener and every open connection, as a handler process that exits would. */
  stop(): Promise<void>;
}

/**
 * Serves a handler on `socket` from the test process with serveHandler. Tracking the accepted
 * connections lets stop() cut them, which net.Server.close() alone does not do.
 */
export async function serveInProcess(socket: string, type: string, handle: HandlerFunction): Promise<InProcessHandler> {
  const server = await serveHandler({ type, socket }, handle);
  const open = new Set<net.Socket>();
  server.on("connection", (connection: net.Socket) => {
    open.add(connection);
    connection.once("close", () => open.delete(connection));
  });
  return {
    async stop() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const connection of open) {
        connection.destroy();
      }
      await closed;
    },
  };
}

/**
 * The ports that freePort() and startServer() pick from, as `BESTER_TEST_PORTS=FIRST-LAST`, for
 * machines where tests may only use a given range. Unset, the system picks ephemeral ports.
 */
const TEST_PORTS = parsePortRange(process.env.BESTER_TEST_PORTS);
let nextTestPort = TEST_PORTS?.first ?? 0;

function parsePortRange(text: string | undefined): { first: number; last: number } | undefined {
  const match = text ? /^(\d+)-(\d+)$/.exec(text) : null;
  if (!match) {
    return undefined;
  }
  return { first: Number(match[1]), last: Number(match[2]) };
}

/**
 * Returns a port that was free a moment ago, for servers whose name must be known before they
 * start (a peer's config names it). Another process could take it in between, which is unlikely
 * on a test machine's loopback. With BESTER_TEST_PORTS set, ports of that range are handed out in
 * turn, each at most once per pass through the range.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  if (!TEST_PORTS) {
    return listenOnce(0, host);
  }
  const size = TEST_PORTS.last - TEST_PORTS.first + 1;
  for (let tried = 0; tried < size; tried += 1) {
    const port = nextTestPort;
    nextTestPort = port >= TEST_PORTS.last ? TEST_PORTS.first : port + 1;
    try {
      return await listenOnce(port, host);
    } catch {
      // In use: try the next port of the range.
    }
  }
  throw new Error(`No free port in BESTER_TEST_PORTS=${process.env.BESTER_TEST_PORTS}.`);
}

async function listenOnce(port: number, host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const { port: bound } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return bound;
}
