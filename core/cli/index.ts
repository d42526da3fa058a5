#!/usr/bin/env node
// The `bester` command line: start a server, submit jobs, manage users.

import { Command } from "commander";
import { BesterError } from "../errors.js";
import { registerStartCommand } from "./start.js";
import { registerSubmitCommand } from "./submit.js";
import { registerUserCommands } from "./user.js";

const program = new Command()
  .name("bester")
  .description("Bester NG: a modular job-routing network. Run `bester <command> --help` for details.")
  .showHelpAfterError();

registerStartCommand(program);
registerSubmitCommand(program);
registerUserCommands(program);

try {
  await program.parseAsync(process.argv);
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
