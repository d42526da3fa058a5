import { expect } from "chai";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { createStoreProvider } from "../../plugins/store/index.js";
import type { Command } from "commander";
import { createProgram } from "../../core/cli/program.js";
import { runCli } from "../cli-runner.js";
import { freePort } from "../helper.js";

describe("CLI help and exit codes", () => {
  it("gives every verb a description and help", () => {
    const verbs: string[] = [];
    const visit = (command: Command, prefix: string) => {
      for (const sub of command.commands) {
        const name = `${prefix}${sub.name()}`;
        verbs.push(name);
        expect(sub.description(), name).to.have.length.greaterThan(10);
        expect(sub.helpInformation(), name).to.match(new RegExp(`^Usage: bester ${name}`));
        expect(sub.helpInformation(), name).to.include("-h, --help");
        visit(sub, `${name} `);
      }
    };

    visit(createProgram(), "");

    expect(verbs).to.include.members(["start", "submit", "listen", "status", "user", "user add", "user passwd", "user remove", "user list", "keys"]);
  });

  it("prints help of a verb from the real binary", async () => {
    const result = await runCli(["user", "add", "--help"]);

    expect(result.code).to.equal(0);
    expect(result.stdout).to.match(/^Usage: bester user add \[options\] <name>/);
  });

  it("documents exit codes in bester --help", async () => {
    const result = await runCli(["--help"]);

    expect(result.code).to.equal(0);
    expect(result.stdout).to.include("Exit codes:");
    expect(result.stdout).to.match(/^\s+2\s+"bester submit" waited for a job that failed$/m);
  });

  it("exits 1 on an unknown command", async () => {
    const result = await runCli(["frobnicate"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("unknown command 'frobnicate'");
  });
});

describe("CLI user commands", () => {
  let folder: string;
  let config: string;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-cli-user-"));
    config = path.join(folder, "bester.config.json");
    await writeFile(config, JSON.stringify({ store: "sqlite://./bester.sqlite", dataDir: "./data" }));
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  /** Opens the config's SQLite store directly to check what the CLI wrote. */
  async function withAccounts<T>(action: (accounts: AccountStore) => Promise<T>): Promise<T> {
    const provider = createStoreProvider(`sqlite://${path.join(folder, "bester.sqlite")}`);
    await provider.open?.();
    try {
      return await action(new AccountStore(provider.namespace<AccountRecord>(ACCOUNTS_NAMESPACE)));
    } finally {
      await provider.close();
    }
  }

  it("adds users with the password from stdin", async () => {
    const alice = await runCli(["user", "add", "alice", "-c", config], { input: "alice-pw\n" });
    const root = await runCli(["user", "add", "root", "--admin", "-c", config], { input: "root-pw\n" });

    expect(alice.code).to.equal(0);
    expect(alice.stderr).to.include(`user alice added in sqlite://${path.join(folder, "bester.sqlite")}`);
    expect(root.code).to.equal(0);
    expect(root.stderr).to.include("admin root added in sqlite://");
    expect(await withAccounts((accounts) => accounts.verify("alice", "alice-pw"))).to.equal(true);
    expect(await withAccounts((accounts) => accounts.isAdmin("alice"))).to.equal(false);
    expect(await withAccounts((accounts) => accounts.isAdmin("root"))).to.equal(true);
  });

  it("lists users one per line", async () => {
    const result = await runCli(["user", "list", "-c", config]);

    expect(result.code).to.equal(0);
    expect(result.stdout).to.equal("alice\nroot\n");
  });

  it("rejects adding an existing user", async () => {
    const result = await runCli(["user", "add", "alice", "-c", config], { input: "other\n" });

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("[userExists]");
  });

  it("rejects an invalid username", async () => {
    const result = await runCli(["user", "add", "bad name", "-c", config], { input: "pw\n" });

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("[invalidUsername]");
  });

  it("rejects an empty password on stdin", async () => {
    const result = await runCli(["user", "add", "carol", "-c", config], { input: "" });

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("The password is empty");
  });

  it("changes a password with passwd", async () => {
    const result = await runCli(["user", "passwd", "alice", "-c", config], { input: "new-pw\n" });

    expect(result.code).to.equal(0);
    expect(await withAccounts((accounts) => accounts.verify("alice", "new-pw"))).to.equal(true);
    expect(await withAccounts((accounts) => accounts.verify("alice", "alice-pw"))).to.equal(false);
  });

  it("passwd of an unknown user exits 1", async () => {
    const result = await runCli(["user", "passwd", "nobody", "-c", config], { input: "pw\n" });

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("[unknownUser]");
  });

  it("grants and revokes admin with user admin", async () => {
    const granted = await runCli(["user", "admin", "alice", "-c", config]);
    const isAdminAfterGrant = await withAccounts((accounts) => accounts.isAdmin("alice"));
    const revoked = await runCli(["user", "admin", "alice", "--revoke", "-c", config]);
    const isAdminAfterRevoke = await withAccounts((accounts) => accounts.isAdmin("alice"));

    expect(granted.code).to.equal(0);
    expect(isAdminAfterGrant).to.equal(true);
    expect(revoked.code).to.equal(0);
    expect(isAdminAfterRevoke).to.equal(false);
    expect(await withAccounts((accounts) => accounts.verify("alice", "new-pw"))).to.equal(true);
  });

  it("user admin of an unknown user exits 1", async () => {
    const result = await runCli(["user", "admin", "nobody", "-c", config]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("[unknownUser]");
  });

  it("removes a user", async () => {
    const removed = await runCli(["user", "remove", "alice", "-c", config]);
    const again = await runCli(["user", "remove", "alice", "-c", config]);
    const list = await runCli(["user", "list", "-c", config]);
    const long = await runCli(["user", "list", "--long", "-c", config]);

    expect(removed.code).to.equal(0);
    expect(removed.stderr).to.include(`user alice removed from sqlite://`);
    expect(removed.stderr).to.include("a running server closes its connections within 5 s");
    expect(long.stdout).to.equal("root\tadmin\n");
    expect(again.code).to.equal(1);
    expect(again.stderr).to.include("[unknownUser]");
    expect(list.stdout).to.equal("root\n");
  });

  it("reports an unreachable store with storeFailed", async () => {
    const config = path.join(folder, "redis-down.config.json");
    await writeFile(config, JSON.stringify({ store: `redis://127.0.0.1:${await freePort()}`, dataDir: path.join(folder, "data-redis-down") }));

    const result = await runCli(["user", "add", "bob", "-c", config], { input: "pw\n" });

    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(/^bester: Opening the store redis:\/\/127\.0\.0\.1:\d+ failed: no connection within 5000 ms .*\[storeFailed\]\n$/);
  });

  it("reports a missing config file", async () => {
    const result = await runCli(["user", "list", "-c", path.join(folder, "missing.json")]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("[configNotFound]");
  });
});
