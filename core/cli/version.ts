// The version of Bester NG, for `bester --version` and the server's start-up log line.

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Reads the version from the package's own package.json, the nearest one above this file named
 * bester-ng. The path differs between the source (core/cli) and the build (dist/core/cli).
 */
export function packageVersion(): string {
  let folder = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(folder, "package.json");
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (manifest.name === "bester-ng" && manifest.version) {
        return manifest.version;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder) {
      return "unknown";
    }
    folder = parent;
  }
}
