// The `bester` command tree, built apart from index.ts so tests can read every verb's help
// without starting a process.

import { Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { registerKeysCommand } from "./keys.js";
import { registerListenCommand } from "./listen.js";
import { registerStartCommand } from "./start.js";
import { registerStatusCommand } from "./status.js";
import { registerSubmitCommand } from "./submit.js";
import { registerUserCommands } from "./user.js";

export const EXIT_CODES_HELP = `
Exit codes:
  0  success; also "bester listen" and "bester start" stopped with Ctrl-C
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

/**
 * Reads the version from the package's own package.json, the nearest one above this file named
 * bester-ng. The path differs between the source (core/cli) and the build (dist/core/cli).
 */
function packageVersion(): string {
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
