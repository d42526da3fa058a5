// `bester keys`: prints this server's federation public key, creating the key file on first use,
// so an operator can copy it into each peer's federation.peers list.

import path from "node:path";
import { displayPath } from "./display-path.js";
import type { Command } from "commander";

interface KeysOptions {
  config?: string;
}

export function registerKeysCommand(program: Command): void {
  program
    .command("keys")
    .description("Print this server's federation public key (the last line of stdout), creating the key file if it is missing.")
    .option("-c, --config <file>", "config file to load instead of searching for bester.config.*")
    .action(async (options: KeysOptions) => {
      // Loaded when the command runs, so other commands do not pay for them.
      const [{ loadConfig }, { loadOrCreateServerKey }] = await Promise.all([import("../config/loader.js"), import("../../plugins/federation/keys.js")]);
      const config = await loadConfig({ file: options.config });
      const keyFile = config.federation?.keyFile ?? path.join(config.dataDir, "server.key");
      const key = await loadOrCreateServerKey(keyFile);

      process.stderr.write(`${key.created ? "created" : "read"} ${displayPath(keyFile)}\n`);
      process.stdout.write(`# public key of ${config.serverName}; add it to each peer's federation.peers\n${key.publicKeyText}\n`);
    });
}
