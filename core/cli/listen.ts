// `bester listen`: log in and print every job output sent to the user, and the notification of each
// failed job the user submitted, as they arrive, until Ctrl-C.

import type { Command } from "commander";
import type { BesterClient, JobNotificationEvent, JobOutputEvent, JobProgressEvent } from "../../plugins/transport-tcp/client.js";
import { addConnectOptions, connectAndLogin, type ConnectOptions } from "./connect.js";
import { createProgress } from "./spinner.js";

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
      .option("--no-reconnect", "exit with status 1 when the connection is lost instead of reconnecting"),
  ).action(async (options: ListenOptions) => {
    process.exitCode = await listen(options);
  });
}

async function listen(options: ListenOptions): Promise<number> {
  const progress = await createProgress();
  progress.step("connecting");
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
  const { client, address } = await connectAndLogin(options, { reconnect: options.reconnect ? { maxDelayMs: 5000 } : false }, attach).catch((error: unknown) => {
    progress.fail("connecting failed");
    throw error;
  });
  progress.succeed(`listening as ${address}; press Ctrl-C to stop`);

  client.on("disconnect", (error) => process.stderr.write(`connection lost (${error.message}); reconnecting\n`));
  client.on("reconnect", ({ attempt }) => process.stderr.write(`reconnected after ${attempt} attempt${attempt === 1 ? "" : "s"}\n`));
  client.on("serverError", (error) => process.stderr.write(`server error: ${error.message} [${error.code}]\n`));

  let interrupted = false;
  const stop = () => {
    interrupted = true;
    void client.close();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  await new Promise<void>((resolve) => client.once("close", () => resolve()));
  if (interrupted) {
    return 0;
  }
  process.stderr.write("bester: the connection to the server closed and was not regained [connectionClosed]\n");
  return 1;
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
