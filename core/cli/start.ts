// `bester start`: registers the command; the server code loads only when the command runs.

import type { Command } from "commander";
import type { StartOptions } from "./start-server.js";

export function registerStartCommand(program: Command): void {
  program
    .command("start")
    .description("Start a server from bester.config.ts (or the file given with --config).")
    .option("-c, --config <file>", "config file to load instead of searching for bester.config.*")
    .option("-l, --listen <[host:]port>", "listen on this address instead of the config's first listener (keeps its other settings, such as tls)")
    .option("--log <destination>", 'where log lines go: "stdout", "stderr", or a file path (default: stdout, or <dataDir>/bester.log when stdout is a terminal)')
    .action(async (options: StartOptions) => {
      const { start } = await import("./start-server.js");
      await start(options);
    });
}
