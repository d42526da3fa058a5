// The `bester` command tree, built apart from index.ts so tests can read every verb's help
// without starting a process.

import { Command } from "commander";
import { registerKeysCommand } from "./keys.js";
import { registerListenCommand } from "./listen.js";
import { registerOutboxCommands } from "./outbox.js";
import { registerStartCommand } from "./start.js";
import { registerStatusCommand } from "./status.js";
import { registerSubmitCommand } from "./submit.js";
import { registerUserCommands } from "./user.js";
import { packageVersion } from "./version.js";

export const EXIT_CODES_HELP = `
Exit codes:
  0  success; also "bester listen" and "bester start" stopped with Ctrl-C
     (run through npx, npm itself then reports 130)
  1  failure: invalid arguments, config errors, connection or login failures, rejected requests
  2  "bester submit" waited for a job that failed

Errors print one line on stderr: "bester: <message> [<code>]", where <code> is the wire error code.`;

export function createProgram(): Command {
  const program = new Command()
    .name("bester")
    .description("Bester NG: a modular job-routing network. Run `bester <command> --help` for details.")
    .version(packageVersion(), "-V, --version", "print the version of Bester NG")
    // Usage mistakes print in the same one-line form as every other failure, with a pointer to
    // the help instead of the whole help text. Subcommands copy these settings when created.
    .configureOutput({ outputError: (text, write) => write(`bester: ${text.replace(/^error: /, "").trimEnd()} [invalidArgument]\n`) })
    .showHelpAfterError("(run `bester --help` for the list of commands)")
    .addHelpText("after", EXIT_CODES_HELP);

  registerStartCommand(program);
  registerSubmitCommand(program);
  registerListenCommand(program);
  registerStatusCommand(program);
  registerUserCommands(program);
  registerKeysCommand(program);
  registerOutboxCommands(program);
  // A mistake inside a command points to that command's help.
  pointToCommandHelp(program.commands);
  return program;
}

function pointToCommandHelp(commands: readonly Command[]): void {
  for (const command of commands) {
    command.showHelpAfterError("(add --help for the command's options)");
    pointToCommandHelp(command.commands);
  }
}
