// Shared by the client commands: where the server is and how to log in.

import type { Command } from "commander";
import { BesterClient, BesterClientError, type ClientOptions } from "../../plugins/transport-tcp/client.js";

export interface ConnectOptions {
  server?: string;
  config?: string;
  user: string;
  password?: string;
  register?: boolean;
}

/** Adds the options every client command takes. */
export function addConnectOptions(command: Command): Command {
  return command
    .option("-s, --server <host:port>", "server to connect to (default: the first listener in bester.config.*, else 127.0.0.1:2222)")
    .option("-c, --config <file>", "config file whose listener to use when --server is not given")
    .requiredOption("-u, --user <name>", "username to log in as (required)")
    .option("-p, --password <password>", "password (default: the BESTER_PASSWORD environment variable)")
    .option("--register", "create the account first when the server allows registration; an existing account is fine");
}

/** Finds the server address: --server, then the config's first listener, then 127.0.0.1:2222. */
async function resolveServer(options: ConnectOptions): Promise<{ host: string; port: number }> {
  if (options.server) {
    const colon = options.server.lastIndexOf(":");
    const port = Number(options.server.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new BesterClientError("invalidArgument", `--server "${options.server}" is not host:port. Example: --server 127.0.0.1:2222.`);
    }
    return { host: options.server.slice(0, colon).replace(/^\[|\]$/g, ""), port };
  }
  try {
    // Loaded only here: the config loader takes about 100 ms to load, which --server skips.
    const { loadConfig } = await import("../config/loader.js");
    const config = await loadConfig({ file: options.config });
    const first = config.listen[0]!;
    // A wildcard listener accepts local connections on the matching loopback address.
    const wildcards: Record<string, string> = { "0.0.0.0": "127.0.0.1", "::": "::1" };
    return { host: wildcards[first.host] ?? first.host, port: first.port };
  } catch (error) {
    if (options.config) {
      throw error;
    }
    return { host: "127.0.0.1", port: 2222 };
  }
}

/** Returns --password or BESTER_PASSWORD, and throws `invalidArgument` when neither is set. */
export function passwordOf(options: ConnectOptions): string {
  const password = options.password ?? process.env.BESTER_PASSWORD;
  if (!password) {
    throw new BesterClientError("invalidArgument", "No password given. Pass --password or set BESTER_PASSWORD.");
  }
  return password;
}

/**
 * Connects, registers when asked, and logs in. `beforeLogin` runs before auth is sent, so event
 * listeners it adds see stored offline messages, which can arrive in the same read as the auth reply.
 */
export async function connectAndLogin(
  options: ConnectOptions,
  clientOptions: Pick<ClientOptions, "reconnect" | "connectTimeoutMs" | "requestTimeoutMs"> = {},
  beforeLogin: (client: BesterClient) => void = () => {},
): Promise<{ client: BesterClient; address: string }> {
  const password = passwordOf(options);

  const { host, port } = await resolveServer(options);
  const client = await BesterClient.connect({ host, port, ...clientOptions });
  beforeLogin(client);

  // With registration off the account may still exist, so auth decides. A failed auth then reports
  // registrationDisabled, which explains more than invalidCredentials.
  let registrationError: BesterClientError | undefined;
  let accountExisted = false;
  if (options.register) {
    try {
      await client.register(options.user, password);
    } catch (error) {
      const code = error instanceof BesterClientError ? error.code : undefined;
      if (code === "registrationDisabled") {
        registrationError = error as BesterClientError;
      } else if (code === "userExists") {
        accountExisted = true;
      } else {
        await client.close();
        throw error;
      }
    }
  }
  try {
    const address = await client.auth(options.user, password);
    return { client, address };
  } catch (error) {
    await client.close();
    const loginRejected = error instanceof BesterClientError && error.code === "invalidCredentials";
    if (registrationError && loginRejected) {
      throw registrationError;
    }
    if (loginRejected && !options.register) {
      // The server does not say which part was wrong, and a first-time user may lack an account.
      throw new BesterClientError("invalidCredentials", `${(error as Error).message} If "${options.user}" has no account yet, add --register (when the server allows registration) or ask the operator for one.`, { cause: error });
    }
    if (loginRejected && accountExisted) {
      // Registration replied userExists, so --register created nothing and the password is what failed.
      throw new BesterClientError("invalidCredentials", `${(error as Error).message} The account "${options.user}" already exists, so --register created nothing: check the password, or pick another user name for a new account.`, { cause: error });
    }
    throw error;
  }
}
