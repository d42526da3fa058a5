// The accounts plugin: decides logins, handles `register` when registration is on, reports to the
// directors which local users exist and grants the `admin` permission to admin accounts.

import type { Bester } from "../../core/bester.js";
import { isInternalError, isStoreUnavailable, toWireError } from "../../core/errors.js";
import { logRequestFailure } from "../../core/log.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { offlineHooksOf } from "../offline/offline-hooks.js";
import { AccountStore, type AccountRecord, type AccountVersion } from "./account-store.js";
import { LoginLimiter, type LoginLimiterOptions } from "./login-limiter.js";
import { AccountWatch } from "./account-watch.js";

export const PLUGIN_NAME = "accounts";

/** The keyv namespace that contains accounts; the CLI's user commands open the same one. */
export const ACCOUNTS_NAMESPACE = "accounts";

export interface AccountsOptions {
  registration: boolean;
  /** Limits on failed logins before `rateLimited`; the defaults apply when left out. */
  loginLimits?: LoginLimiterOptions;
  /** Milliseconds between checks for users removed, or given a new password, while logged in; default 5000. */
  accountCheckMs?: number;
}

export function accountsPlugin(options: AccountsOptions): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      let accounts: AccountStore | undefined;
      const store = () => (accounts ??= new AccountStore(bester.store.namespace<AccountRecord>(ACCOUNTS_NAMESPACE)));

      const limiter = new LoginLimiter(options.loginLimits);
      // Ids of the connections whose logins this plugin decided, with the version of the account
      // they logged in to. Another onAuth plugin's users have no account here.
      const authenticated = new Map<string, AccountVersion>();
      const watch = new AccountWatch(store, bester.sessions, authenticated, log, options.accountCheckMs);

      bester.hooks.start.tapPromise(PLUGIN_NAME, () => watch.start());
      bester.hooks.close.tap(PLUGIN_NAME, () => watch.stop());

      bester.hooks.onAuth.tapPromise(PLUGIN_NAME, async ({ username, password, connection }) => {
        if (limiter.isLimited(username, connection.remoteAddress) && (await stillLimited(username, password, connection.remoteAddress))) {
          log.warn({ username, remote: connection.remoteAddress }, "login rejected: too many failed logins");
          const seconds = Math.ceil(limiter.windowMs / 1000);
          return { ok: false, error: { code: "rateLimited", message: `Too many failed logins for "${username}" or from this address. Retry in up to ${seconds} s.` } };
        }

        let version: AccountVersion | undefined;
        try {
          version = await store().verifiedAccount(username, password);
        } catch (error) {
          // A wrong password for a kept account during an outage still counts toward the limit.
          if (isStoreUnavailable(error) && store().keepsRecordOf(username)) {
            limiter.recordFailure(username, connection.remoteAddress);
          }
          throw error;
        }
        // The second read closes most of the scrypt hash's window, in which the account could be
        // removed (or removed and added again) and the removal check run before this session exists.
        if (version !== undefined && sameVersion(await store().versionOf(username), version)) {
          limiter.recordSuccess(username);
          // By connection id, because the session registry keeps its own object for the same connection.
          authenticated.set(connection.id, version);
          return { ok: true, user: username };
        }
        limiter.recordFailure(username, connection.remoteAddress);
        return { ok: false, error: { code: "invalidCredentials", message: "The username or password is wrong." } };
      });

      /**
       * Forgets the username's failed logins made before its current password was set, then returns
       * whether the login is still limited. An operator's new password thus lifts a user's
       * rateLimited lock at once. The address's count stays, because it counts guesses from there.
       * While the store is unreachable, the login fails with the store error after a hash, as one
       * to an account without a kept record does, so a rateLimited reply cannot tell them apart.
       */
      async function stillLimited(username: string, password: string, remoteAddress: string): Promise<boolean> {
        let version: AccountVersion | undefined;
        try {
          version = await store().versionOf(username, { useKept: false });
        } catch (error) {
          if (isStoreUnavailable(error)) {
            return store().rejectAfterHash(password, error);
          }
          throw error;
        }
        if (version) {
          limiter.forgetUserFailuresBefore(username, version.passwordSetAt);
        }
        return limiter.isLimited(username, remoteAddress);
      }

      bester.hooks.onUserLookup.tapPromise(PLUGIN_NAME, (user) => store().exists(user));

      // Binds stored offline messages to the account's creation time, as sessions are bound, so a
      // removed account's messages never reach a later account of the same name.
      const offline = offlineHooksOf(bester);
      offline.accountCreatedAt.tapPromise(PLUGIN_NAME, async (user) => (await store().createdAtOf(user)) ?? null);
      offline.connectionAccountCreatedAt.tap(PLUGIN_NAME, (connection) => authenticated.get(connection.id)?.createdAt);

      // Accounts carry one permission, `admin`; other permissions are left to other plugins.
      bester.hooks.onAuthorize.tapPromise(PLUGIN_NAME, async ({ user, permission }) => {
        if (permission !== "admin") {
          return undefined;
        }
        try {
          return await store().isAdmin(user);
        } catch (error) {
          // An operator needs `bester status` most while the store is down, so the admin flag
          // read at login replaces the stored one until the store is back.
          const atLogin = isStoreUnavailable(error) ? adminAtLogin(user) : undefined;
          if (atLogin === undefined) {
            throw error;
          }
          log.info({ user, admin: atLogin }, "store unreachable; using the admin flag read at login");
          return atLogin;
        }
      });

      /**
       * Returns whether every live connection of `user` logged in to an admin account, or undefined
       * when the user has no live connection that this plugin authenticated.
       */
      function adminAtLogin(user: string): boolean | undefined {
        const versions = bester.sessions
          .connectionsOf(user)
          .map((connection) => authenticated.get(connection.id))
          .filter((version) => version !== undefined);
        if (versions.length === 0) {
          return undefined;
        }
        return versions.every((version) => version.admin === true);
      }

      bester.hooks.onClientRequest.for("register").tapPromise(PLUGIN_NAME, async ({ request }) => {
        const { username, password } = request.account as { username: string; password: string };
        if (!options.registration) {
          return failed("registrationDisabled", "This server does not accept registrations. Ask its operator to add your account.");
        }
        try {
          await store().add(username, password);
        } catch (error) {
          // The client gets the protocol's register-shaped failure. For an unexpected error or an
          // unreachable store the details stay in the log.
          if (isInternalError(error)) {
            logRequestFailure(log, error, { user: username }, "registering a user failed");
          }
          const wire = toWireError(error);
          return failed(wire.code, wire.message);
        }
        log.info({ user: username }, "user registered");
        return { reply: "register", register: { status: "ok" } };
      });
    },
  };
}

function sameVersion(current: AccountVersion | undefined, verified: AccountVersion): boolean {
  return current !== undefined && current.createdAt === verified.createdAt && current.passwordSetAt === verified.passwordSetAt;
}

function failed(code: string, message: string): Record<string, unknown> {
  return { reply: "register", register: { status: "failed", error: { code, message } } };
}
