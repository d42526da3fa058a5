// The accounts plugin: decides logins, handles `register` when registration is on, reports to the
// directors which local users exist and grants the `admin` permission to admin accounts.

import type { Bester } from "../../core/bester.js";
import { BesterError, isWireCode, toWireError } from "../../core/errors.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { AccountStore, type AccountRecord } from "./account-store.js";
import { LoginLimiter, type LoginLimiterOptions } from "./login-limiter.js";
import { RemovalWatch } from "./removal-watch.js";

export const PLUGIN_NAME = "accounts";

/** The keyv namespace that contains accounts; the CLI's user commands open the same one. */
export const ACCOUNTS_NAMESPACE = "accounts";

export interface AccountsOptions {
  registration: boolean;
  /** Limits on failed logins before `rateLimited`; the defaults apply when left out. */
  loginLimits?: LoginLimiterOptions;
  /** Milliseconds between checks for users removed while logged in; default 5000. */
  removalCheckMs?: number;
}

export function accountsPlugin(options: AccountsOptions): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      let accounts: AccountStore | undefined;
      const store = () => (accounts ??= new AccountStore(bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE)));

      const limiter = new LoginLimiter(options.loginLimits);
      // Ids of the connections whose logins this plugin decided, with the creation time of the
      // account they logged in to. Another onAuth plugin's users have no account here.
      const authenticated = new Map<string, number>();
      const removals = new RemovalWatch(store, bester.sessions, authenticated, log, options.removalCheckMs);

      bester.hooks.start.tapPromise(PLUGIN_NAME, () => removals.start());
      bester.hooks.close.tap(PLUGIN_NAME, () => removals.stop());

      bester.hooks.onAuth.tapPromise(PLUGIN_NAME, async ({ username, password, connection }) => {
        if (limiter.isLimited(username, connection.remoteAddress)) {
          log.warn({ username, remote: connection.remoteAddress }, "login rejected: too many failed logins");
          const seconds = Math.ceil(limiter.windowMs / 1000);
          return { ok: false, error: { code: "rateLimited", message: `Too many failed logins for "${username}" or from this address. Retry in up to ${seconds} s.` } };
        }

        // The second read closes most of the scrypt hash's window, in which the account could be
        // removed (or removed and added again) and the removal check run before this session exists.
        const createdAt = await store().verifiedAccount(username, password);
        if (createdAt !== undefined && (await store().createdAtOf(username)) === createdAt) {
          limiter.recordSuccess(username);
          // By connection id, because the session registry keeps its own object for the same connection.
          authenticated.set(connection.id, createdAt);
          return { ok: true, user: username };
        }
        limiter.recordFailure(username, connection.remoteAddress);
        return { ok: false, error: { code: "invalidCredentials", message: "The username or password is wrong." } };
      });

      bester.hooks.onUserLookup.tapPromise(PLUGIN_NAME, (user) => store().exists(user));

      // Accounts carry one permission, `admin`; other permissions are left to other plugins.
      bester.hooks.onAuthorize.tapPromise(PLUGIN_NAME, async ({ user, permission }) => {
        if (permission !== "admin") {
          return undefined;
        }
        return store().isAdmin(user);
      });

      bester.hooks.onClientRequest.for("register").tapPromise(PLUGIN_NAME, async ({ request }) => {
        const { username, password } = request.account as { username: string; password: string };
        if (!options.registration) {
          return failed("registrationDisabled", "This server does not accept registrations. Ask its operator to add your account.");
        }
        try {
          await store().add(username, password);
        } catch (error) {
          if (error instanceof BesterError && isWireCode(error.code)) {
            return failed(error.code, error.message);
          }
          // The client gets the protocol's register-shaped failure; the details stay in the log.
          log.error({ err: error, user: username }, "registering a user failed");
          const wire = toWireError(error);
          return failed(wire.code, wire.message);
        }
        log.info({ user: username }, "user registered");
        return { reply: "register", register: { status: "ok" } };
      });
    },
  };
}

function failed(code: string, message: string): Record<string, unknown> {
  return { reply: "register", register: { status: "failed", error: { code, message } } };
}
