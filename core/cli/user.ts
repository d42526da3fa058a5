// `bester user add|admin|remove|passwd|list`: manage accounts in the configured store directly, so
// they work whether or not the server runs (SQLite allows several processes).

import type { Command } from "commander";
import { BesterError } from "../errors.js";
import type { AccountStore, AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNT_CHECK_MS } from "../../plugins/accounts/account-watch.js";
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
      const store = await withAccounts(options, (accounts) => accounts.add(name, password, { admin: options.admin }));
      process.stderr.write(`${options.admin ? "admin" : "user"} ${name} added in ${store.description}\n`);
    });

  user
    .command("passwd <name>")
    .description("Change a user's password, read like for add.")
    .option("-c, --config <file>", "config file whose store to use")
    .action(async (name: string, options: StoreOptions) => {
      const password = await readPassword(`New password for ${name}: `);
      const store = await withAccounts(options, (accounts) => accounts.setPassword(name, password));
      // A running server on this store closes the sessions opened with the old password.
      process.stderr.write(`password of ${name} changed in ${store.description}; a running server closes the connections logged in with the old password within ${ACCOUNT_CHECK_MS / 1000} s\n`);
    });

  user
    .command("admin <name>")
    .description("Allow an existing user to read the server status, or take that right away with --revoke.")
    .option("-c, --config <file>", "config file whose store to use")
    .option("--revoke", "remove admin rights instead of granting them")
    .action(async (name: string, options: StoreOptions & { revoke?: boolean }) => {
      const store = await withAccounts(options, (accounts) => accounts.setAdmin(name, !options.revoke));
      process.stderr.write(`${options.revoke ? `user ${name} is no longer an admin` : `user ${name} is now an admin`} in ${store.description}\n`);
    });

  user
    .command("remove <name>")
    .description("Remove a user.")
    .option("-c, --config <file>", "config file whose store to use")
    .action(async (name: string, options: StoreOptions) => {
      const store = await withAccounts(options, (accounts) => accounts.remove(name));
      if (!store.result) {
        throw new BesterError("unknownUser", `User "${name}" does not exist in ${store.description}.`);
      }
      // A running server on this store notices the removal and closes the user's connections.
      process.stderr.write(`user ${name} removed from ${store.description}; a running server closes its connections within ${ACCOUNT_CHECK_MS / 1000} s\n`);
    });

  user
    .command("list")
    .description("List users, one per line.")
    .option("-c, --config <file>", "config file whose store to use")
    .option("-l, --long", 'add a second column, "admin" or "user"')
    .action(async (options: StoreOptions & { long?: boolean }) => {
      const { result: lines } = await withAccounts(options, async (accounts) => {
        const names = await accounts.list();
        if (!options.long) {
          return names;
        }
        return Promise.all(names.map(async (name) => `${name}\t${(await accounts.isAdmin(name)) ? "admin" : "user"}`));
      });
      process.stdout.write(lines.map((line) => `${line}\n`).join(""));
    });
}

/** Runs `action` on the accounts of the configured store; returns its result and the store's description. */
async function withAccounts<T>(options: StoreOptions, action: (accounts: AccountStore) => Promise<T>): Promise<{ result: T; description: string }> {
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
    const result = await action(new AccountStore(provider.namespace<AccountRecord>(ACCOUNTS_NAMESPACE)));
    return { result, description: provider.description };
  } finally {
    await provider.close();
  }
}
