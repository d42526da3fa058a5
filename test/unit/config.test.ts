import path from "node:path";
import { expect } from "chai";
import { resolveConfig } from "../../core/config/schema.js";
import { BesterError } from "../../core/errors.js";

const ROOT = path.resolve("/srv/bester");

/** Returns the BesterError that resolving `config` throws. */
function configError(config: unknown): BesterError {
  try {
    resolveConfig(config, ROOT, "/srv/bester/bester.config.json");
  } catch (error) {
    expect(error).to.be.instanceOf(BesterError);
    return error as BesterError;
  }
  throw new Error(`Config was accepted: ${JSON.stringify(config)}`);
}

describe("config validation", () => {
  it("applies defaults to an empty config", () => {
    const config = resolveConfig({}, ROOT);

    expect(config.serverName).to.equal("127.0.0.1:2222");
    expect(config.listen).to.deep.equal([{ host: "127.0.0.1", port: 2222 }]);
    expect(config.store).to.equal(`sqlite://${path.join(ROOT, "data", "bester.sqlite")}`);
    expect(config.registration).to.equal(false);
    expect(config.maxFrameBytes).to.equal(16 * 1024 * 1024);
    expect(config.maxChainLength).to.equal(32);
    expect(config.dataDir).to.equal(path.join(ROOT, "data"));
    expect(config.handlers).to.deep.equal({});
  });

  it("applies handler defaults and resolves paths against the root", () => {
    const config = resolveConfig({ handlers: { wordcount: { command: "node wc.js" }, upper: { socket: "run/upper.sock", connections: 2 } } }, ROOT);

    expect(config.handlers.wordcount).to.deep.equal({
      socket: path.join(ROOT, "data", "sockets", "wordcount.sock"),
      connections: 4,
      command: "node wc.js",
      cwd: ROOT,
      env: {},
      retries: 2,
      timeoutMs: 60_000,
      maxQueued: 10_000,
      unavailableTimeoutMs: 30_000,
    });
    expect(config.handlers.upper!.socket).to.equal(path.join(ROOT, "run", "upper.sock"));
    expect(config.handlers.upper!.connections).to.equal(2);
  });

  it("takes the server name from server.name over the listener", () => {
    const config = resolveConfig({ server: { name: "bester.example.org:2222" }, listen: { host: "0.0.0.0", port: 4000 } }, ROOT);

    expect(config.serverName).to.equal("bester.example.org:2222");
  });

  it("brackets an IPv6 listener in the server name", () => {
    expect(resolveConfig({ listen: { host: "::1", port: 4000 } }, ROOT).serverName).to.equal("[::1]:4000");
  });

  it("keeps a relative sqlite path next to the config", () => {
    expect(resolveConfig({ store: "sqlite://./state/db.sqlite" }, ROOT).store).to.equal(`sqlite://${path.join(ROOT, "state", "db.sqlite")}`);
  });

  it("rejects handlers.x.connections of 0, naming the key", () => {
    const error = configError({ handlers: { x: { socket: "/tmp/x.sock", connections: 0 } } });

    expect(error.code).to.equal("invalidConfig");
    expect(error.message).to.include("handlers.x.connections");
    expect(error.message).to.include("bester.config.json");
  });

  it("names a plugin factory that was not called", () => {
    function websocketTransport(): void {}
    const error = configError({ plugins: [websocketTransport] });

    expect(error.message).to.include("plugins.0 = the function websocketTransport, not its result (call it: websocketTransport(...))");
  });

  for (const [store, problem] of [
    ["redis://127.0.0.1:notaport", "it is not a valid URL"],
    ["redis://127.0.0.1:6379/abc", 'the path "/abc" is not a database number'],
  ] as const) {
    it(`rejects the Redis URL ${store}`, () => {
      const error = configError({ store });

      expect(error.code).to.equal("invalidConfig");
      expect(error.message).to.include(`store = "${store}" is not a Redis URL of the form redis://HOST:PORT or redis://HOST:PORT/DB: ${problem}`);
    });
  }

  it("accepts a Redis URL with a database number", () => {
    expect(resolveConfig({ store: "redis://127.0.0.1:6379/3" }, ROOT).store).to.equal("redis://127.0.0.1:6379/3");
  });

  it("lists the allowed log levels", () => {
    const error = configError({ log: { level: "warning" } });

    expect(error.message).to.include('log.level = "warning" must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent"');
  });

  for (const [name, config, rule] of [
    ["a store URL typo", { store: "sqlte://x" }, 'store = "sqlte://x" must be "memory", "sqlite://PATH", "redis://HOST:PORT" or "redis://HOST:PORT/DB"'],
    ["a server name without port", { server: { name: "example.org" } }, 'must be "host:port"'],
    ["a handler type with @", { handlers: { "a@b": { socket: "/tmp/a.sock" } } }, 'invalid key "a@b", which must be 1 to 128 characters without "@" or ":"'],
    ["a malformed peer key", { federation: { peers: [{ name: "h:1", publicKey: "x" }] } }, 'must be "ed25519:" followed by 44 base64 characters'],
  ] as const) {
    it(`describes the pattern of ${name} in words`, () => {
      const error = configError(config);

      expect(error.message).to.include(rule);
      expect(error.message).to.not.include("must match pattern");
    });
  }

  it("rejects an unknown top-level key, naming it", () => {
    const error = configError({ listne: { port: 1 } });

    expect(error.code).to.equal("invalidConfig");
    expect(error.message).to.include('"listne"');
  });

  it("rejects an unknown handler key, naming its path", () => {
    const error = configError({ handlers: { wc: { socket: "/tmp/wc.sock", timeout: 5 } } });

    expect(error.message).to.include("handlers.wc.timeout");
  });

  it("rejects a handler with neither socket nor command", () => {
    const error = configError({ handlers: { wc: { connections: 2 } } });

    expect(error.code).to.equal("invalidConfig");
    expect(error.message).to.include("handlers.wc");
  });

  for (const [name, config, key] of [
    ["a port above 65535", { listen: { port: 70000 } }, "listen"],
    ["a negative retries", { handlers: { wc: { socket: "/tmp/a.sock", retries: -1 } } }, "handlers.wc.retries"],
    ["a string timeoutMs", { handlers: { wc: { socket: "/tmp/a.sock", timeoutMs: "5s" } } }, "handlers.wc.timeoutMs"],
    ["an unknown store scheme", { store: "mysql://db" }, "store"],
    ["a tiny maxFrameBytes", { maxFrameBytes: 10 }, "maxFrameBytes"],
    ["a maxChainLength of 0", { maxChainLength: 0 }, "maxChainLength"],
    ["a server name without port", { server: { name: "example.org" } }, "server.name"],
    ["a handler type with ':'", { handlers: { "a:b": { socket: "/tmp/a.sock" } } }, "handlers"],
    ["an unknown log level", { log: { level: "loud" } }, "log.level"],
  ] as const) {
    it(`rejects ${name}, naming ${key}`, () => {
      const error = configError(config);

      expect(error.code).to.equal("invalidConfig");
      expect(error.message).to.include(key);
    });
  }

  it("names the bad entry of a listen array", () => {
    const error = configError({ listen: [{ port: 1 }, { port: "x" }] });

    expect(error.message).to.include("listen.1.port");
    expect(error.message).to.include("integer");
  });

  it("gives the whole allowed range of a number out of bounds", () => {
    const error = configError({ journal: { commitIdleMs: -1 } });

    expect(error.message).to.include("journal.commitIdleMs = -1 must be an integer from 0 to 1000.");
  });

  it("writes NaN and Infinity as the author did, not as JSON's null", () => {
    expect(configError({ journal: { commitDelayMs: Number.NaN } }).message).to.include("journal.commitDelayMs = NaN must be an integer.");
    expect(configError({ journal: { commitDelayMs: Number.POSITIVE_INFINITY } }).message).to.include("journal.commitDelayMs = Infinity must be an integer.");
    expect(configError({ journal: { commitIdleMs: "5" } }).message).to.include('journal.commitIdleMs = "5" must be an integer.');
  });

  it("names the problem of an empty command array", () => {
    const error = configError({ handlers: { wc: { command: [] } } });

    expect(error.message).to.include("handlers.wc.command");
    expect(error.message).to.include("fewer than 1 items");
  });

  it("names a handler type that is not allowed", () => {
    const error = configError({ handlers: { "a:b": { socket: "/tmp/a.sock" } } });

    expect(error.message).to.include('"a:b"');
  });

  it("rejects a default socket path too long for a UNIX socket", () => {
    const dataDir = `/srv/${"d".repeat(100)}`;
    const error = configError({ dataDir, handlers: { wordcount: { command: "node wc.js" } } });

    expect(error.code).to.equal("invalidConfig");
    expect(error.message).to.include("handlers.wordcount.socket");
    expect(error.message).to.include(`${dataDir}/sockets/wordcount.sock`);
  });

  it("rejects a relative socket that resolves too long", () => {
    const root = `/srv/${"r".repeat(95)}`;
    expect(() => resolveConfig({ handlers: { wc: { socket: "run/wc.sock" } } }, root)).to.throw(BesterError, "handlers.wc.socket");
  });

  it("accepts a socket path of 107 bytes", () => {
    const socket = `/${"s".repeat(101)}.sock`;
    expect(Buffer.byteLength(socket)).to.equal(107);

    expect(resolveConfig({ handlers: { wc: { socket } } }, ROOT).handlers.wc!.socket).to.equal(socket);
  });

  it("rejects a plugin without a name as invalidPlugin", () => {
    const error = configError({ plugins: [{ apply() {} }] });

    expect(error.code).to.equal("invalidPlugin");
    expect(error.message).to.include("plugins[0]");
  });

  it("rejects a config that is not an object", () => {
    expect(configError([]).code).to.equal("invalidConfig");
    expect(configError("listen: 2222").code).to.equal("invalidConfig");
  });
});
