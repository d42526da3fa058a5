// Finds and loads bester.config.* with cosmiconfig. TypeScript configs load through tsx's
// tsImport, because cosmiconfig's own TypeScript loader transpiles only the config file itself
// and so breaks a config that imports a local plugin file.

import path from "node:path";
import { pathToFileURL } from "node:url";
import { cosmiconfig, type Loader } from "cosmiconfig";
import { BesterError } from "../errors.js";
import { resolveConfig } from "./schema.js";
import type { BesterConfig, ResolvedConfig } from "./types.js";

const MODULE_NAME = "bester";

const SEARCH_PLACES = [
  "bester.config.ts",
  "bester.config.mts",
  "bester.config.mjs",
  "bester.config.js",
  "bester.config.cjs",
  "bester.config.json",
  ".besterrc.json",
];

/** Loads a TypeScript config and unwraps the default export. */
const loadTypeScript: Loader = async (filepath) => {
  // A dynamic import picks tsx's ESM build even where this file was compiled to CommonJS (mocha on
  // Node 20.19+ requires .ts specs); tsImport from tsx's CommonJS build fails to resolve its own files there.
  const { tsImport } = await import("tsx/esm/api");
  const loaded = await tsImport(pathToFileURL(filepath).href, import.meta.url);
  return unwrapDefault(loaded);
};

/**
 * Unwraps `default` exports. In a project without `"type": "module"`, tsx returns a config file's
 * default export as `{ default: { default: config } }`.
 */
function unwrapDefault(loaded: unknown): unknown {
  let value = loaded;
  for (let depth = 0; depth < 2; depth += 1) {
    if (value && typeof value === "object" && "default" in value && Object.keys(value).length <= 2) {
      value = (value as { default: unknown }).default;
    }
  }
  return value;
}

function createExplorer() {
  return cosmiconfig(MODULE_NAME, {
    searchPlaces: SEARCH_PLACES,
    searchStrategy: "project",
    loaders: {
      ".ts": loadTypeScript,
      ".mts": loadTypeScript,
    },
  });
}

export interface LoadConfigOptions {
  /** A config file to load instead of searching. */
  file?: string;
  /** Folder to search from; default the current folder. */
  cwd?: string;
  /** Replaces the address of the first client listener, keeping its other settings such as `tls`. */
  listen?: { host?: string; port: number };
}

/** Loads, validates and resolves the config; throws a BesterError naming the file and key on mistakes. */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const explorer = createExplorer();
  const cwd = options.cwd ?? process.cwd();

  let result;
  try {
    result = options.file ? await explorer.load(path.resolve(cwd, options.file)) : await explorer.search(cwd);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const where = options.file ?? `a bester.config.* file found from ${cwd}`;
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new BesterError("configNotFound", `Config file ${where} was not found. Check the path given to --config.`, { cause: error });
    }
    throw new BesterError("invalidConfig", `Loading ${where} failed: ${reason}${adviceFor(reason)}`, { cause: error });
  }

  if (!result || result.isEmpty) {
    throw new BesterError("configNotFound", `No config file was found in ${cwd} or the folders above it (searched for ${SEARCH_PLACES.join(", ")}). Create one (see README.md) or pass --config FILE.`);
  }
  const config = options.listen ? withListenAddress(result.config as BesterConfig, options.listen) : result.config;
  return resolveConfig(config, path.dirname(result.filepath), result.filepath);
}

/**
 * Node resolves a config's imports from the config file's folder, so a config kept outside the
 * project finds no "bester-ng" package unless one is installed there.
 */
function adviceFor(reason: string): string {
  if (!/Cannot find (module|package) ['"]bester-ng['"]/.test(reason)) {
    return "";
  }
  return ` A config file outside the Bester NG project cannot import "bester-ng" unless the package is installed in or above its folder. Export the plain object instead (defineConfig only adds type checking), or run npm install with the path of the Bester NG project in the config's folder.`;
}

/** Returns the config with the first client listener moved to `address`; a config with no listener gets one. */
function withListenAddress(config: BesterConfig, address: { host?: string; port: number }): BesterConfig {
  if (config === null || typeof config !== "object") {
    // resolveConfig reports the invalid config itself.
    return config;
  }
  const listeners = Array.isArray(config.listen) ? config.listen : [config.listen ?? {}];
  const [first, ...rest] = listeners;
  const moved = { ...first, ...(address.host === undefined ? {} : { host: address.host }), port: address.port };
  return { ...config, listen: [moved, ...rest] };
}
