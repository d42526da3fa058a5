// Turns a resolved config into the built-in plugins, then applies the user's plugins. A user
// plugin with a built-in's name replaces that built-in; `omitBuiltins` leaves one out.

import { Bester, type BesterOptions } from "../bester.js";
import { BesterError } from "../errors.js";
import type { BesterPlugin } from "../plugin.js";
import type { ResolvedConfig } from "./types.js";
import { accountsPlugin } from "../../plugins/accounts/index.js";
import { adminStatus } from "../../plugins/admin-status/index.js";
import { handlerDirector } from "../../plugins/directors/handler.js";
import { handoffDirector } from "../../plugins/directors/handoff.js";
import { userDeliveryDirector } from "../../plugins/directors/user-delivery.js";
import { federationPlugin } from "../../plugins/federation/index.js";
import { journalPlugin } from "../../plugins/journal/index.js";
import { offlinePlugin } from "../../plugins/offline/index.js";
import { handlerBridge } from "../../plugins/handler-bridge/index.js";
import { storePlugin } from "../../plugins/store/index.js";
import { dataDirLock } from "../../plugins/data-dir-lock/index.js";
import { transportTcp } from "../../plugins/transport-tcp/index.js";

/** Lists the built-in plugins a config implies, in the order they are applied. */
export function builtinPlugins(config: ResolvedConfig): BesterPlugin[] {
  const nameFromListener = config.serverName.endsWith(":0");
  const plugins: BesterPlugin[] = [
    dataDirLock(),
    storePlugin({ url: config.store }),
    journalPlugin(config.journal),
    offlinePlugin(config.offline),
    accountsPlugin({
      registration: config.registration,
      loginLimits: {
        maxFailuresPerUser: config.limits.login.maxFailuresPerUser,
        maxFailuresPerHost: config.limits.login.maxFailuresPerAddress,
        windowMs: config.limits.login.windowMs,
      },
    }),
    handlerBridge({ handlers: config.handlers, maxFrameBytes: config.maxFrameBytes, drainTimeoutMs: config.shutdown.drainTimeoutMs }),
    userDeliveryDirector(),
    handlerDirector(),
    handoffDirector(),
    adminStatus(),
  ];
  if (config.federation) {
    plugins.push(federationPlugin({ ...config.federation, maxFrameBytes: config.maxFrameBytes }));
  }
  plugins.push(
    transportTcp({
      listen: config.listen,
      maxFrameBytes: config.maxFrameBytes,
      nameFromListener,
      maxConnections: config.limits.maxConnections,
      maxBufferedBytes: config.limits.maxBufferedBytes,
      outputCoalesceMs: config.limits.outputCoalesceMs,
    }),
  );
  return plugins;
}

/** Creates a server from a resolved config with its built-in and user plugins applied. */
export async function createBester(config: ResolvedConfig, options: BesterOptions = {}): Promise<Bester> {
  const bester = new Bester(config, options);
  const builtins = builtinPlugins(config);
  const builtinNames = new Set(builtins.map((plugin) => plugin.name));

  for (const name of config.omitBuiltins) {
    if (!builtinNames.has(name)) {
      throw new BesterError("invalidConfig", `omitBuiltins names "${name}", which is not a built-in plugin. Built-ins: ${[...builtinNames].join(", ")}.`);
    }
  }

  const replaced = new Set(config.plugins.map((plugin) => plugin.name));
  for (const plugin of builtins) {
    if (replaced.has(plugin.name)) {
      // Logged because a misspelt name adds a plugin beside the built-in instead, without an error.
      bester.log.info({ plugin: plugin.name }, "a configured plugin replaces the built-in plugin of the same name");
      continue;
    }
    if (config.omitBuiltins.includes(plugin.name)) {
      continue;
    }
    await bester.use(plugin);
  }
  for (const plugin of config.plugins) {
    await bester.use(plugin);
  }
  return bester;
}
