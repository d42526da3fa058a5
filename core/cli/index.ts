#!/usr/bin/env node
// The `bester` command line: start a server, submit jobs, listen for outputs, read the status and
// manage users.

import { BesterError } from "../errors.js";
import { createProgram } from "./program.js";

try {
  await createProgram().parseAsync(process.argv);
} catch (error) {
  reportAndExit(error);
}

/** Prints a failure as one plain line with its code and exits with status 1. */
export function reportAndExit(error: unknown): never {
  if (error instanceof BesterError || (error instanceof Error && "code" in error && typeof error.code === "string")) {
    process.stderr.write(`bester: ${error.message} [${(error as { code: string }).code}]\n`);
  } else {
    process.stderr.write(`bester: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  }
  process.exit(1);
}
