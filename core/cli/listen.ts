// `bester listen`: log in and print every job output sent to the user, and the notification of each
// failed job the user submitted, as they arrive, until Ctrl-C.

import type { Command } from "commander";
import { setTimeout as sleep } from "node:timers/promises";
import { isServerDown, isStoreOutageReply, RECONNECT_DEFAULTS, reconnectDelayMs } from "../../plugins/transport-tcp/client-backoff.js";
import { endsSession, type BesterClient, type JobNotificationEvent, type JobOutputEvent, type JobProgressEvent } from "../../plugins/transport-tcp/client.js";
import { addConnectOptions, connectAndLogin, passwordOf, type ConnectOptions } from "./connect.js";
import { createProgress, type Progress } from "./spinner.js";

interface ListenOptions extends ConnectOptions {
  json?: boolean;
  all?: boolean;
  reconnect: boolean;
}

export function registerListenCommand(program: Command): void {
  addConnectOptions(
    program
      .command("listen")
      .description("Log in and print job outputs sent to the user, and the user's failed jobs, as they arrive. Ctrl-C stops it and exits with status 0.")
      .option("--json", "print each message as one line of JSON, exactly as the server sent it")
      .option("--all", "also print the notifications of completed jobs and the progress reports of the user's own jobs (failed jobs are always printed)")
      .option("--no-reconnect", "exit with status 1 when the server is down at the start or the connection is lost, instead of waiting and reconnecting"),
  ).action(async (options: ListenOptions) => {
    process.exitCode = await listen(options);
  });
}

async function listen(options: ListenOptions): Promise<number> {
  // A missing password fails here, before the progress line shows "connecting".
  passwordOf(options);
  const progress = await createProgress();
  progress.step(`connecting and logging in as ${options.user}`);
  const print = (reply: string, job: JobOutputEvent | JobNotificationEvent | JobProgressEvent) => {
    process.stdout.write(options.json ? `${JSON.stringify({ reply, job })}\n` : formatHuman(reply, job));
  };
  const attach = (client: BesterClient) => {
    client.on("output", (output) => print("jobOutput", output));
    client.on("notification", (notification) => {
      // A failed job usually sends no output, so its notification is the only sign of it.
      if (options.all || notification.status === "failed") {
        print("jobNotification", notification);
      }
    });
    if (options.all) {
      client.on("progress", (report) => print("jobProgress", report));
    }
  };

  // Ctrl-C while waiting for the server ends the command as cleanly as Ctrl-C while listening.
  const interrupt = new AbortController();
  let client: BesterClient | undefined;
  const stop = () => {
    interrupt.abort();
    void client?.close();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  const connected = await connectWhenUp(options, progress, attach, interrupt.signal).catch((error: unknown) => {
    progress.fail("connecting or logging in failed");
    throw error;
  });
  if (!connected) {
    progress.fail("stopped waiting for the server");
    return 0;
  }
  client = connected.client;
  progress.succeed(`listening as ${connected.address}; press Ctrl-C to stop`);

  client.on("disconnect", (error) => process.stderr.write(`connection lost (${error.message}); reconnecting until the server is back (Ctrl-C stops)\n`));
  client.on("reconnect", ({ attempt }) => process.stderr.write(`reconnected after ${attempt} attempt${attempt === 1 ? "" : "s"}\n`));
  client.on("serverError", (error) => {
    // An error that ends the session closes the client too, and is printed once below as the reason.
    if (!endsSession(error)) {
      process.stderr.write(`server error: ${error.message} [${error.code}]\n`);
    }
  });

  const closed = new Promise<Error | undefined>((resolve) => client!.once("close", (lost?: Error) => resolve(lost)));
  if (interrupt.signal.aborted) {
    // Ctrl-C arrived during the login.
    await client.close();
  }
  const lost = await closed;
  if (interrupt.signal.aborted) {
    return 0;
  }
  const code = (lost as { code?: string } | undefined)?.code ?? "connectionClosed";
  process.stderr.write(`bester: ${lost?.message ?? "The connection to the server closed."} [${code}]\n`);
  return 1;
}

/**
 * Connects and logs in, and with reconnecting on waits for a server that is not running yet, or
 * whose store is unreachable for the moment, so a listener may start before its server or during
 * a store outage. Resolves undefined when `signal` aborts the wait.
 */
async function connectWhenUp(
  options: ListenOptions,
  progress: Progress,
  attach: (client: BesterClient) => void,
  signal: AbortSignal,
): Promise<{ client: BesterClient; address: string } | undefined> {
  let lastMessage = "";
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await connectAndLogin(options, { reconnect: options.reconnect }, attach);
    } catch (error) {
      const storeOutage = isStoreOutageReply(error);
      if (!options.reconnect || !(isServerDown(error) || storeOutage)) {
        throw error;
      }
      if (signal.aborted) {
        return undefined;
      }

      // The message prints again only when the reason changes, not on every attempt.
      // The server's storeUnavailable message requests a retry, which listen makes by itself.
      const reason = storeOutage ? "The server's store is unreachable at the moment." : (error as Error).message;
      const waitingFor = storeOutage ? "the server's store" : "the server";
      const message = `${reason} Waiting for ${waitingFor} (Ctrl-C stops)`;
      if (message !== lastMessage) {
        progress.step(message);
        lastMessage = message;
      }

      try {
        await sleep(reconnectDelayMs(attempt, RECONNECT_DEFAULTS), undefined, { signal });
      } catch {
        return undefined;
      }
    }
  }
}

/** Formats one message as a readable block: a header line with the time, then the data. */
function formatHuman(reply: string, job: JobOutputEvent | JobNotificationEvent | JobProgressEvent): string {
  const time = new Date().toISOString().slice(11, 19);
  if (reply === "jobOutput") {
    const output = job as JobOutputEvent;
    return `[${time}] output of ${output.jobID} (${output.payload.type}):\n${formatData(output.payload.data)}\n`;
  }
  if (reply === "jobProgress") {
    const report = job as JobProgressEvent;
    return `[${time}] progress of ${report.jobID}: ${JSON.stringify(report.progress)}\n`;
  }
  const notification = job as JobNotificationEvent;
  const reason = notification.error ? `: ${notification.error.message} [${notification.error.code}]` : "";
  return `[${time}] job ${notification.jobID} ${notification.status}${reason}\n`;
}

function formatData(data: unknown): string {
  return typeof data === "string" ? data : JSON.stringify(data, null, 2);
}
