// `bester user add|admin|remove|passwd|list`: manage accounts in the configured store directly, so
// they work whether or not the server runs (SQLite allows several processes).

import type { Command } from "commander";
import { BesterError } from "../errors.js";
import type { AccountStore, AccountRecord } from "../../plugins/accounts/account-store.js";
import { readPassword } from "./password-prompt.js";

interface StoreOptions {
  config?: string;
}

export function registerUserCommands(program: Command): void {
  const user = program.command("user").description("Manage user accounts in the configured store.");

  user
    .command("add <name>")
    .description("Add a user. The password is read from a hidden prompt, or from the first line of stdin.")
    .option("-c, --config <file>", "config file whose store to use")
    .option("--admin", "allow the user to read the server status")
    .action(async (name: string, options: StoreOptions & { admin?: boolean }) => {
      const password = await readPassword(`Password for ${name}: `);
      await withAccounts(options, (accounts) => accounts.add(name, password, { admin: options.admin }));
      process.stderr.write(`user ${name} added\n`);
    });

  user
    .command("passwd <name>")
    .description("Change a user's password, read like for add.")
    .option("-c, --config <file>", "config file whose store to use")
    .action(async (name: string, options: StoreOptions) => {
      const password = await readPassword(`New password for ${name}: `);
      await withAccounts(options, (accounts) => accounts.setPassword(name, password));
      process.stderr.write(`password of ${name} changed\n`);
    });

  user
    .command("admin <name>")
    .description("Allow an existing user to read the server status, or take that right away with --revoke.")
    .option("-c, --config <file>", "config file whose store to use")
    .option("--revoke", "remove admin rights instead of granting them")
    .action(async (name: string, options: StoreOptions & { revoke?: boolean }) => {
      await withAccounts(options, (accounts) => accounts.setAdmin(name, !options.revoke));
      process.stderr.write(options.revoke ? `user ${name} is no longer an admin\n` : `user ${name} is now an admin\n`);
    });

  user
    .command("remove <name>")
    .description("Remove a user.")
    .option("-c, --config <file>", "config file whose store to use")
    .action(async (name: string, options: StoreOptions) => {
      const removed = await withAccounts(options, (accounts) => accounts.remove(name));
      if (!removed) {
        throw new BesterError("unknownUser", `User "${name}" does not exist.`);
      }
      process.stderr.write(`user ${name} removed\n`);
    });

  user
    .command("list")
    .description("List users, one per line.")
    .option("-c, --config <file>", "config file whose store to use")
    .action(async (options: StoreOptions) => {
      const names = await withAccounts(options, (accounts) => accounts.list());
      process.stdout.write(names.map((name) => `${name}\n`).join(""));
    });
}

async function withAccounts<T>(options: StoreOptions, action: (accounts: AccountStore) => Promise<T>): Promise<T> {
  // Loaded here, not at the top: the config loader and the store drivers take about 200 ms to
  // load, which every other command would pay.
  const { loadConfig } = await import("../config/loader.js");
  const config = await loadConfig({ file: options.config });
  const [{ AccountStore }, { ACCOUNTS_NAMESPACE }, { createStoreProvider, openStore }] = await Promise.all([
    import("../../plugins/accounts/account-store.js"),
    import("../../plugins/accounts/index.js"),
    import("../../plugins/store/index.js"),
  ]);
  const provider = createStoreProvider(config.store);
  await openStore(provider);
  try {
    return await action(new AccountStore(provider.namespace<AccountRecord>(ACCOUNTS_NAMESPACE)));
  } finally {
    await provider.close();
  }
}
