// Creating the folders a server writes to, with errors that name the config key behind them.

import { mkdirSync } from "node:fs";
import { BesterError } from "./errors.js";

/**
 * Creates `folder` and its parents, or throws storeFailed naming `setting`, the config key that
 * chose it. A file where a folder should be fails with EEXIST or ENOTDIR, which alone is unclear.
 */
export function createFolder(folder: string, setting: string): void {
  try {
    mkdirSync(folder, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const cause = code === "EEXIST" || code === "ENOTDIR" ? "a file, not a folder, is in the way" : (error as Error).message;
    throw new BesterError("storeFailed", `Creating the folder ${folder} failed: ${cause}. Check ${setting} in the config.`, { cause: error });
  }
}
