// The Bester NG daemon under test, as its own process: the built-in plugins, the `upper` bench
// handler spawned by the handler bridge, and one bench-only login shortcut for the idle test.
// Usage: node --import tsx daemon.ts <memory|sqlite> <dataDir>; prints "ready <port>". Needs
// `npm run build` first, which `npm run bench` runs.

import { timingSafeEqual } from "node:crypto";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BesterPlugin } from "../../core/plugin.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");

// The daemon runs from dist/, the build that `npx bester start` runs, so the figures are those of
// the shipped JavaScript and not of tsx's on-the-fly transform. The types still come from the source.
const fromBuild = <Module>(file: string): Promise<Module> => import(pathToFileURL(path.join(root, "dist", file)).href) as Promise<Module>;
const { createBester } = await fromBuild<typeof import("../../core/config/builtins.js")>("core/config/builtins.js");
const { resolveConfig } = await fromBuild<typeof import("../../core/config/schema.js")>("core/config/schema.js");
const { createLogger } = await fromBuild<typeof import("../../core/log.js")>("core/log.js");
const [storeKind = "memory", dataDir] = process.argv.slice(2);
if (!dataDir) {
  throw new Error("Usage: daemon.ts <memory|sqlite> <dataDir>");
}

/** The user that the idle-connection test logs in as, with BENCH_TOKEN as its password. */
export const IDLE_USER = "bench-idle";

/**
 * Logs IDLE_USER in by comparing against a random 32-byte token from the bench runner. Such a
 * token cannot be guessed, so it needs no slow hash; it saves 10 000 scrypt runs (minutes of CPU)
 * in the idle test. Every other login goes through the accounts plugin as usual.
 */
function benchTokenAuth(token: string): BesterPlugin {
  const expected = Buffer.from(token);
  return {
    name: "bench-token-auth",
    apply(bester) {
      bester.hooks.onAuth.tap({ name: "bench-token-auth", stage: -10 }, ({ username, password }) => {
        if (username !== IDLE_USER) {
          return undefined;
        }
        const actual = Buffer.from(password);
        const ok = expected.length >= 32 && actual.length === expected.length && timingSafeEqual(actual, expected);
        return ok ? { ok: true, user: IDLE_USER } : { ok: false, error: { code: "invalidCredentials", message: "The bench token is wrong." } };
      });
    },
  };
}

// With --profile the handler process writes its own CPU profile next to the daemon's.
const handlerProfile = process.env.BENCH_PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
const plugins = process.env.BENCH_TOKEN ? [benchTokenAuth(process.env.BENCH_TOKEN)] : [];
const config = resolveConfig(
  {
    listen: { host: "127.0.0.1", port: 0 },
    store: storeKind === "sqlite" ? `sqlite://${path.join(dataDir, "bester.sqlite")}` : "memory",
    dataDir,
    registration: true,
    handlers: {
      upper: {
        command: [process.execPath, ...handlerProfile, "--import", "tsx", path.join(here, "upper-handler.ts")],
        cwd: root,
        socket: path.join(dataDir, "upper.sock"),
        connections: 4,
      },
    },
    plugins,
  },
  root,
);
const log = createLogger({ level: "info", destination: path.join(dataDir, "bester.log") });
const bester = await createBester(config, { log });
const addresses = await bester.start();

let stopping = false;
process.on("SIGTERM", () => {
  if (stopping) {
    return;
  }
  stopping = true;
  // A clean exit lets --cpu-prof write its profile.
  void bester.stop().finally(() => process.exit(0));
});
process.stdout.write(`ready ${addresses[0]!.split(":").pop()}\n`);
