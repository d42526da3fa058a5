// `bester submit`: send one job, wait for its outputs and notification, and print them.

import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { BesterClientError, type JobNotificationEvent, type JobOutputEvent } from "../../plugins/transport-tcp/client.js";
import { addConnectOptions, connectAndLogin, passwordOf, type ConnectOptions } from "./connect.js";
import { createProgress } from "./spinner.js";
import { decodeUtf8Text } from "./utf8-text.js";

interface SubmitOptions extends ConnectOptions {
  type: string;
  data?: string;
  text?: string;
  file?: string;
  json?: boolean;
  priority: number;
  /** Undefined unless --wait or --no-wait was given; waiting is the default. */
  wait?: boolean;
  /** Seconds the whole command may take; undefined waits as long as the job takes. */
  timeout?: number;
}

export function registerSubmitCommand(program: Command): void {
  addConnectOptions(
    program
      .command("submit")
      .description("Submit a job and print its outputs and notification. Data comes from --data, --text, --file or stdin.")
      .requiredOption("-t, --type <type>", "handler type to run, e.g. wordcount (required)")
      .option("-d, --data <json>", "job data as JSON text, e.g. '{\"text\":\"hi\"}'")
      .option("--text <string>", "job data as a plain string")
      .option("-f, --file <path>", "read the job data from a UTF-8 text file, as a string (or as JSON with --json)")
      .option("--json", "parse the --file or stdin contents as JSON instead of sending them as a string")
      .option("--priority <n>", "priority, an integer; higher runs sooner", parseInteger, 0)
      .option("--wait", "wait for the job's outputs and notification (the default)")
      .option("--no-wait", "print the job id once accepted and exit without waiting")
      .option("--timeout <seconds>", "give up after this many seconds, logging in included, with exit code 1 and timedOut; the server still runs an accepted job (default: wait as long as the job takes)", parseSeconds)
      .addHelpText("after", SUBMIT_EXIT_CODES),
  ).action(async (options: SubmitOptions) => {
    process.exitCode = await submit(options);
  });
}

const SUBMIT_EXIT_CODES = `
Exit codes:
  0  the job completed (with --no-wait: the server accepted it)
  1  failure: invalid arguments, connection or login failures, a rejected job, --timeout passed
  2  the job failed; its notification names the error`;

function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new BesterClientError("invalidArgument", `--timeout "${value}" is not a positive number of seconds.`);
  }
  return seconds;
}

function parseInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number)) {
    throw new BesterClientError("invalidArgument", `--priority "${value}" is not an integer.`);
  }
  return number;
}

async function readData(options: SubmitOptions): Promise<unknown> {
  if (options.data !== undefined) {
    try {
      return JSON.parse(options.data);
    } catch {
      throw new BesterClientError("invalidArgument", `--data is not valid JSON: ${options.data}. Use --text for a plain string.`);
    }
  }
  if (options.text !== undefined) {
    return options.text;
  }

  let contents: string;
  if (options.file) {
    let bytes: Buffer;
    try {
      bytes = await readFile(options.file);
    } catch (error) {
      throw new BesterClientError("invalidArgument", `Reading --file ${options.file} failed: ${(error as Error).message}. Check the path.`);
    }
    contents = decodeUtf8Text(bytes, `--file ${options.file}`);
  } else if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) {
      chunks.push(chunk as Buffer);
    }
    // A script run without a data option reads an empty stdin (/dev/null, a closed pipe), so an
    // empty job would look like a success. An empty string can still be sent with --text "".
    if (chunks.every((chunk) => chunk.length === 0)) {
      throw new BesterClientError("invalidArgument", 'No job data: stdin was empty. Pass --data, --text or --file, or pipe the data into stdin; --text "" sends an empty string.');
    }
    contents = decodeUtf8Text(Buffer.concat(chunks), "stdin");
  } else {
    throw new BesterClientError("invalidArgument", "No job data. Pass --data, --text or --file, or pipe the data into stdin.");
  }
  if (!options.json) {
    return contents;
  }
  try {
    return JSON.parse(contents);
  } catch (error) {
    throw new BesterClientError("invalidArgument", `${options.file ?? "stdin"} is not valid JSON (${(error as Error).message}).`);
  }
}

/** An output or notification the connection received, in arrival order. */
type Received = { output?: JobOutputEvent; notification?: JobNotificationEvent };

async function submit(options: SubmitOptions): Promise<number> {
  const data = await readData(options);
  // Right after login the server sends the messages it kept while the user was offline. They belong
  // to earlier jobs and the server does not send them again, so they are printed on stderr. The
  // listeners go on before login, because they may arrive in the same read as the auth reply.
  const received: Received[] = [];
  // A missing password fails before the progress line shows a login.
  passwordOf(options);
  // --no-wait shows no progress, because it returns as soon as the job is accepted.
  const progress = options.wait === false ? undefined : await createProgress();
  progress?.step(`connecting and logging in as ${options.user}`);
  const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout * 1000;
  // --timeout replaces the client's own connect, reply and close limits, so a longer one is not cut
  // short. No single step can need more than the whole command's time.
  const timeoutMs = options.timeout === undefined ? undefined : Math.ceil(options.timeout * 1000);
  const limits = timeoutMs === undefined ? {} : { connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs };
  const login = connectAndLogin(options, limits, (connected) => {
    connected.on("output", (output) => received.push({ output }));
    connected.on("notification", (notification) => received.push({ notification }));
  });
  const { client, address } = await beforeDeadline(login, deadline, () => `Logging in as ${options.user} did not finish within the --timeout of ${options.timeout} s. Check that the server is running and not overloaded.`).catch((error: unknown) => {
    progress?.fail("connecting or logging in failed");
    throw error;
  });

  try {
    if (options.wait === false) {
      const submission = client.submit(options.type, data, { priority: options.priority });
      const jobID = await beforeDeadline(submission, deadline, () => `The job was not accepted within the --timeout of ${options.timeout} s. If the server accepts it later, it runs it, and its output and notification wait for your next login.`);
      process.stdout.write(`${jobID}\n`);
      // A fast job may end before the connection closes, and the server then sends its messages
      // here. close() reads until the server closed its side, so none of them is lost. The server
      // keeps later ones for the next login.
      await client.close();
      printReceived(received, `${received.length} message(s) arrived before the connection closed (the next login may get them again):`);
      return 0;
    }

    progress!.step(`submitting the ${options.type} job as ${address}`);
    const result = await client.run(options.type, data, {
      priority: options.priority,
      onAccepted: (jobID) => progress!.step(`running ${options.type} job ${jobID}`),
      timeoutMs: deadline === undefined ? undefined : Math.max(deadline - Date.now(), 1),
      // Progress belongs to the job, and in a chain it may come from a later step's handler.
      onProgress: (report) => progress!.step(`running ${options.type} job, progress ${JSON.stringify(report)}`),
    }).catch((error: unknown) => {
      // Ends the spinner line before the error line, which explains what happened to the job.
      const accepted = error instanceof BesterClientError && error.jobID !== undefined;
      progress!.fail(accepted ? `waiting for the ${options.type} job failed` : `submitting the ${options.type} job failed`);
      if (error instanceof BesterClientError && error.code === "timedOut" && error.jobID !== undefined) {
        throw new BesterClientError("timedOut", `Job ${error.jobID} did not finish within the --timeout of ${options.timeout} s. The server still runs it; its outputs and notification wait for your next login (\`bester listen --all\` prints them).`, { jobID: error.jobID });
      }
      throw error;
    });

    const { notification } = result;
    if (notification.status === "completed") {
      progress!.succeed(`job ${result.jobID} completed`);
    } else {
      progress!.fail(`job ${result.jobID} failed: ${notification.error?.code}: ${notification.error?.message}`);
    }
    printEarlier(received, result.jobID);
    for (const output of result.outputs) {
      process.stdout.write(formatOutput(output));
    }
    process.stdout.write(`${JSON.stringify({ reply: "jobNotification", job: notification })}\n`);
    return notification.status === "completed" ? 0 : 2;
  } finally {
    await client.close();
  }
}

/** Resolves as `work` does, or rejects with `timedOut` once `deadline` (a Date.now() value) passes first. */
async function beforeDeadline<T>(work: Promise<T>, deadline: number | undefined, message: () => string): Promise<T> {
  if (deadline === undefined) {
    return work;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BesterClientError("timedOut", message())), Math.max(deadline - Date.now(), 0));
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Prints the messages this connection received about jobs other than `jobID` on stderr. */
function printEarlier(received: Received[], jobID: string): void {
  const earlier = received.filter(({ output, notification }) => (output ? !output.jobID.startsWith(`${jobID}:`) : notification!.jobID !== jobID));
  printReceived(earlier, `${earlier.length} message(s) about other jobs arrived (kept while you were offline, or sent to every connection of this user):`);
}

function printReceived(messages: Received[], heading: string): void {
  if (messages.length === 0) {
    return;
  }
  process.stderr.write(`${heading}\n`);
  for (const { output, notification } of messages) {
    process.stderr.write(output ? formatOutput(output) : `${JSON.stringify({ reply: "jobNotification", job: notification })}\n`);
  }
}

function formatOutput(output: JobOutputEvent): string {
  return `output ${output.jobID} (${output.payload.type}):\n${format(output.payload.data)}\n`;
}

function format(data: unknown): string {
  return typeof data === "string" ? data : JSON.stringify(data, null, 2);
}
