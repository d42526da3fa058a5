// The host: applies plugins, runs the lifecycle hooks and owns the job engine, the session registry
// and the store handle. It opens no sockets; transports and handler bridges are plugins.

import type { Logger } from "pino";
import { ClientSession } from "./client-session.js";
import type { ResolvedConfig } from "./config/types.js";
import { BesterError, wrapPluginError } from "./errors.js";
import { createHooks, type BesterHooks } from "./hooks.js";
import { JobEngine } from "./jobs/engine.js";
import { Scheduler } from "./jobs/scheduler.js";
import { createLogger } from "./log.js";
import { assertPlugin, type BesterPlugin } from "./plugin.js";
import { RequestValidators } from "./protocol/schemas.js";
import { MemorySessionRegistry, type Connection, type SessionRegistry } from "./sessions.js";
import { MemoryStoreProvider, type StoreProvider } from "./store.js";

export type LifecycleState = "created" | "starting" | "running" | "stopping" | "stopped";

/** Start-up steps, reported to the CLI spinner in this order. */
export type StartStep = "opening store" | "starting handlers" | "listening";

export interface BesterOptions {
  log?: Logger;
}

export class Bester {
  readonly hooks: BesterHooks = createHooks();
  readonly config: ResolvedConfig;
  readonly log: Logger;
  readonly requests = new RequestValidators();
  readonly scheduler: Scheduler;
  readonly engine: JobEngine;
  readonly sessions: SessionRegistry = new MemorySessionRegistry();
  /** The sessions of this process's connections that have not closed, for the shutdown notice. */
  private readonly openSessions = new Set<ClientSession>();
  store: StoreProvider = new MemoryStoreProvider();
  /** Listening addresses, filled in by transports during start. */
  readonly addresses: string[] = [];
  readonly startedAt = Date.now();
  private plugins = new Map<string, BesterPlugin>();
  private lifecycle: LifecycleState = "created";
  private name: string;

  constructor(config: ResolvedConfig, options: BesterOptions = {}) {
    this.config = config;
    this.name = config.serverName;
    this.log = options.log ?? createLogger({ level: config.logLevel });

    let engine: JobEngine | undefined;
    this.scheduler = new Scheduler(
      (job, worker, breaksAtStart) => engine!.execute(job, worker, breaksAtStart),
      (jobs) => engine!.expire(jobs),
    );
    engine = new JobEngine(this.hooks, this.scheduler, this.sessions, this.log.child({ component: "jobs" }), {
      serverName: config.serverName,
      maxChainLength: config.maxChainLength,
    });
    this.engine = engine;
  }

  /** Public `host:port` of this server, the `<server>` part of every address. */
  get serverName(): string {
    return this.name;
  }

  /**
   * Sets the server name once a transport has bound its real port, when the config gave port 0 and
   * no server.name. Only allowed before the server is running.
   */
  setServerName(name: string): void {
    if (this.lifecycle === "running") {
      throw new BesterError("invalidConfig", "The server name cannot change while the server is running.");
    }
    this.name = name;
    this.engine.setServerName(name);
  }

  get state(): LifecycleState {
    return this.lifecycle;
  }

  /** Applies a plugin. Names must be unique; a missing name or apply function is rejected. */
  async use(plugin: BesterPlugin): Promise<void> {
    assertPlugin(plugin, "The plugin");
    if (this.plugins.has(plugin.name)) {
      throw new BesterError("invalidPlugin", `A plugin named "${plugin.name}" is already applied. Give each plugin a unique name.`);
    }
    this.plugins.set(plugin.name, plugin);
    try {
      await plugin.apply(this);
    } catch (error) {
      // A plain Error from apply() would reach `bester start` as a bare stack trace with no plugin name.
      throw wrapPluginError(error, plugin.name, "apply()");
    }
  }

  pluginNames(): string[] {
    return [...this.plugins.keys()];
  }

  /** Returns a child logger tagged with the plugin's name. */
  logFor(pluginName: string): Logger {
    return this.log.child({ plugin: pluginName });
  }

  /** Creates the request processor for a new connection; transports call this once per connection. */
  openSession(connection: Connection): ClientSession {
    const session = new ClientSession(this, connection);
    this.openSessions.add(session);
    return session;
  }

  /** Called by a session whose connection closed; sessions call it, not plugins. */
  sessionClosed(session: ClientSession): void {
    this.openSessions.delete(session);
  }

  /** Runs the start-up hooks in order and resolves with the listening addresses. */
  async start(onStep: (step: StartStep) => void = () => {}): Promise<string[]> {
    if (this.lifecycle !== "created") {
      throw new BesterError("invalidConfig", `start() called while the server is ${this.lifecycle}.`);
    }
    this.lifecycle = "starting";

    onStep("opening store");
    await this.hooks.initialize.promise();
    onStep("starting handlers");
    await this.hooks.start.promise();
    onStep("listening");
    await this.hooks.listen.promise(this.addresses);

    this.lifecycle = "running";
    await this.hooks.ready.promise(this.addresses);
    this.log.info({ server: this.serverName, addresses: this.addresses, store: this.store.description }, "server ready");
    return this.addresses;
  }

  /**
   * Counts the accepted jobs that did not end: `queued` never reached a handler, and `running` were
   * on a handler or finishing their director when shutdown closed the handler connections. Read
   * after stop(): a durable store keeps these jobs for the next start, the memory store loses them.
   */
  unfinishedJobs(): { queued: number; running: number } {
    const queued = this.scheduler.stats().reduce((sum, entry) => sum + entry.queued, 0);
    return { queued, running: this.engine.interruptedJobs + this.engine.completingJobs };
  }

  /**
   * Stops the server: transports stop accepting, handler bridges let in-flight jobs finish up to
   * their deadline, then the store closes. Safe to call more than once.
   */
  async stop(): Promise<void> {
    if (this.lifecycle === "stopping" || this.lifecycle === "stopped") {
      return;
    }
    // A start-up that failed or was interrupted never served, and its log may be a running server's file.
    const early = this.lifecycle === "starting";
    this.lifecycle = "stopping";
    this.engine.stopAccepting();
    this.log.info({ server: this.serverName }, early ? "stopping before start-up finished" : "server stopping");

    try {
      await this.hooks.stop.promise();
    } finally {
      this.closeClientSessions();
      await this.hooks.close.promise();
      this.lifecycle = "stopped";
      this.log.info({ server: this.serverName, unfinishedJobs: this.unfinishedJobs(), durable: this.store.durable }, early ? "stopped before start-up finished" : "server stopped");
      this.log.flush?.();
    }
  }

  /**
   * Closes each logged-in client's connection with a shuttingDown error, after the replies it still
   * waits for, so a client can tell a planned stop from a crash. Transports close the rest. Only
   * the sessions of this process count: a shared session registry also lists other daemons' clients.
   */
  private closeClientSessions(): void {
    const error = { code: "shuttingDown" as const, message: "The server is stopping and closes this connection. Connect again once it runs." };
    for (const session of this.openSessions) {
      if (session.user !== undefined && !session.isTakenOver) {
        session.closeAfterReplies(error);
      }
    }
  }
}
