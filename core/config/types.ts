// The configuration contract. Outside tools write these keys, so names and meanings are stable.

import type { LevelWithSilent } from "pino";
import type { BesterPlugin } from "../plugin.js";

export interface ListenConfig {
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** TCP port; default 2222. 0 picks a free port. */
  port?: number;
}

/** A client listener; with `tls` it accepts only TLS connections. */
export interface ClientListenConfig extends ListenConfig {
  /** PEM files of the server's private key and certificate, relative to the config file. */
  tls?: { key: string; cert: string };
}

/** A client listener after defaults were applied and TLS paths resolved. */
export interface ResolvedListenConfig {
  host: string;
  port: number;
  tls?: { key: string; cert: string };
}

export interface HandlerConfig {
  /** UNIX socket the handler listens on. Required unless `command` is set, in which case it defaults to `<dataDir>/sockets/<type>.sock`. */
  socket?: string;
  /** Persistent connections the daemon opens, one job in flight on each; default 4. */
  connections?: number;
  /** Command that starts the handler; the daemon restarts it when it exits. A string runs through the shell. */
  command?: string | string[];
  /** Working folder for `command`; default the config file's folder. */
  cwd?: string;
  /** Extra environment variables for `command`. */
  env?: Record<string, string>;
  /** Extra attempts on another connection when a connection breaks mid-job; default 2. */
  retries?: number;
  /** Milliseconds a job may run on the handler before failing with handlerTimeout; default 60000, 0 turns it off. */
  timeoutMs?: number;
  /**
   * Number of jobs of this type waiting for a free handler connection at which new submissions get
   * queueFull; default 10000. Running jobs do not count.
   */
  maxQueued?: number;
  /** Milliseconds queued jobs wait while no handler connection is up; default 30000. */
  unavailableTimeoutMs?: number;
}

export interface BesterConfig {
  server?: {
    /** Public `host:port` of this server, the `<server>` part of every address; default from the first listener. */
    name?: string;
  };
  /** One listener or several. */
  listen?: ClientListenConfig | ClientListenConfig[];
  /** `sqlite://PATH` (default `sqlite://./data/bester.sqlite`), `memory`, or `redis://host:port`. */
  store?: string;
  /** Whether clients may create accounts with `register`; default false. */
  registration?: boolean;
  /** Largest frame accepted, in bytes; default 16 MiB. */
  maxFrameBytes?: number;
  /** Handlers one job may pass through; default 32. */
  maxChainLength?: number;
  /** Folder for the store, sockets and keys; default `./data` next to the config file. */
  dataDir?: string;
  handlers?: Record<string, HandlerConfig>;
  /** Third-party plugin instances, applied after the built-ins. A plugin with a built-in's name replaces it. */
  plugins?: BesterPlugin[];
  /** Names of built-in plugins to leave out, e.g. `["transport-tcp"]`. */
  omitBuiltins?: string[];
  log?: {
    level?: LevelWithSilent;
  };
  /** Peer servers and this server's key; read by the federation plugin. */
  federation?: FederationConfig;
  /** Connection and login limits; see docs/reliability.md. */
  limits?: LimitsConfig;
  offline?: {
    /** Stored messages per offline user; beyond it the oldest is dropped with a warning. Default 1000. */
    maxMessages?: number;
  };
  /** Group commit of the job journal (durable stores only). */
  journal?: {
    /** Maximum time, in milliseconds, that a batch's first write waits for others to share its transaction; default 5. */
    commitDelayMs?: number;
    /** Milliseconds without a new write after which a batch commits before commitDelayMs is up; default 1. */
    commitIdleMs?: number;
    /** Writes after which a transaction commits at once; default 512. */
    maxBatch?: number;
  };
  shutdown?: {
    /** Milliseconds SIGTERM waits for in-flight handler calls before leaving them for the next start; default 10000. */
    drainTimeoutMs?: number;
  };
}

export interface LimitsConfig {
  /** Open client and peer connections per listener; more are closed at once. Default 20000. */
  maxConnections?: number;
  /** Milliseconds a connection may stay unauthenticated before it is closed; default 30000, 0 turns it off. */
  authTimeoutMs?: number;
  /** Unsent output bytes per connection after which a client that does not read is disconnected; default maxFrameBytes + 8 MiB. */
  maxBufferedBytes?: number;
  /**
   * Milliseconds a busy connection's output may wait so that it leaves in one write with the
   * output that follows. Default 1. With 0, output leaves at the end of each event-loop turn.
   */
  outputCoalesceMs?: number;
  login?: {
    /** Failed logins per username within windowMs before the username gets rateLimited; default 10. */
    maxFailuresPerUser?: number;
    /** Failed logins per remote address within windowMs before the address gets rateLimited; default 100. */
    maxFailuresPerAddress?: number;
    /** Length of the failure window in milliseconds; default 60000. */
    windowMs?: number;
  };
}

export interface FederationPeerConfig {
  /** The peer's public `host:port`, its server name. */
  name: string;
  /** The peer's Ed25519 public key as `bester keys` prints it: `ed25519:<base64>`. */
  publicKey: string;
  /** Address to dial instead of `name`, e.g. the peer's `federation.listen` address for TLS links. */
  address?: string;
}

export interface FederationConfig {
  /** This server's Ed25519 private key (PEM), created on first start; default `<dataDir>/server.key`. */
  keyFile?: string;
  /** Servers this server exchanges messages with; links from any other server are rejected. */
  peers?: FederationPeerConfig[];
  /** Encrypts peer links with TLS; file paths of the PEM key, certificate and optional CA bundle. */
  tls?: { key: string; cert: string; ca?: string };
  /** A separate listener for TLS peer links; clients keep using `listen`. */
  listen?: ListenConfig;
  /** Reconnect backoff of outgoing peer links, in milliseconds; default 250 doubling up to 30000. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number };
  /**
   * Milliseconds an outgoing link waits for the peer to acknowledge a sent message before it
   * reconnects and sends again; default 30000, 0 waits without limit.
   */
  ackTimeoutMs?: number;
  /**
   * Milliseconds a message for a peer keeps being retried while the store is unreachable. After
   * that its job fails. Default 60000; 0 fails the job at the first such error.
   */
  outboxRetryMs?: number;
}

/** The federation config after defaults were applied and paths resolved. */
export interface ResolvedFederationConfig {
  keyFile: string;
  peers: FederationPeerConfig[];
  tls?: { key: string; cert: string; ca?: string };
  listen?: Required<ListenConfig>;
  reconnect: { minDelayMs: number; maxDelayMs: number };
  ackTimeoutMs: number;
  outboxRetryMs: number;
}

/** A config after defaults were applied and paths resolved against the config file's folder. */
export interface ResolvedConfig {
  /** Folder of the config file; relative paths resolve against it. */
  root: string;
  /** Path of the config file, or undefined for an in-memory config. */
  file?: string;
  serverName: string;
  listen: ResolvedListenConfig[];
  store: string;
  registration: boolean;
  maxFrameBytes: number;
  maxChainLength: number;
  dataDir: string;
  handlers: Record<string, ResolvedHandlerConfig>;
  plugins: BesterPlugin[];
  omitBuiltins: string[];
  logLevel: LevelWithSilent;
  federation?: ResolvedFederationConfig;
  limits: {
    maxConnections: number;
    authTimeoutMs: number;
    maxBufferedBytes: number;
    outputCoalesceMs: number;
    login: { maxFailuresPerUser: number; maxFailuresPerAddress: number; windowMs: number };
  };
  offline: { maxMessages: number };
  journal: { commitDelayMs: number; commitIdleMs: number; maxBatch: number };
  shutdown: { drainTimeoutMs: number };
}

export interface ResolvedHandlerConfig {
  socket: string;
  connections: number;
  command?: string | string[];
  cwd: string;
  env: Record<string, string>;
  retries: number;
  timeoutMs: number;
  maxQueued: number;
  unavailableTimeoutMs: number;
}

/** Gives a config file type checking and editor completion; returns the config unchanged. */
export function defineConfig(config: BesterConfig): BesterConfig {
  return config;
}
