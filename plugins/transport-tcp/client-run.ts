// BesterClient.run(): submit one job and collect what the server sends about it until its
// notification. It only uses the client's public events and submit(), so it lives apart from the
// connection handling.

import type { BesterClient } from "./client.js";
import { BesterClientError } from "./client-error.js";
import type { JobNotificationEvent, JobOutputEvent, JobProgressEvent } from "./client-events.js";

export interface RunOptions {
  priority?: number;
  /** Called once with the job's id when the server accepted the job, before any of its events. */
  onAccepted?: (jobID: string) => void;
  /** Called with each progress report the handler sends before its reply. */
  onProgress?: (progress: unknown) => void;
  /**
   * Milliseconds to wait for the job's notification, counted from the call; by default run() waits
   * as long as the job takes. When they pass, run() rejects with `timedOut`. The server still runs
   * the job and sends its outputs and notification to the user's connections, or keeps them for the
   * next login.
   */
  timeoutMs?: number;
}

export interface RunResult {
  jobID: string;
  outputs: JobOutputEvent[];
  notification: JobNotificationEvent;
}

type Early = { kind: "output"; event: JobOutputEvent } | { kind: "notification"; event: JobNotificationEvent } | { kind: "progress"; event: JobProgressEvent };

/** Submits a job on `client` and resolves with its outputs to this user and its notification. */
export async function runJob(client: BesterClient, type: string, data: unknown, options: RunOptions): Promise<RunResult> {
  const outputs: JobOutputEvent[] = [];
  let jobID: string | undefined;
  let resolveDone!: (notification: JobNotificationEvent) => void;
  const done = new Promise<JobNotificationEvent>((resolve) => (resolveDone = resolve));
  // Events that arrive before the submission reply is handled (in the same read, or behind a slower
  // earlier request) wait here until the job id is known.
  const early: Early[] = [];

  const matchProgress = (event: JobProgressEvent) => event.jobID === jobID && options.onProgress?.(event.progress);
  const matchOutput = (event: JobOutputEvent) => event.jobID.startsWith(`${jobID}:`) && outputs.push(event);
  const matchNotification = (event: JobNotificationEvent) => event.jobID === jobID && resolveDone(event);
  const onOutput = (event: JobOutputEvent) => (jobID ? matchOutput(event) : early.push({ kind: "output", event }));
  const onNotification = (event: JobNotificationEvent) => (jobID ? matchNotification(event) : early.push({ kind: "notification", event }));
  const onProgress = (event: JobProgressEvent) => (jobID ? matchProgress(event) : early.push({ kind: "progress", event }));

  // Rejects when the connection closes or the timeout passes, whichever comes first.
  let endedBy: Error | undefined;
  let endRun!: (error: Error) => void;
  const ended = new Promise<never>((_, reject) => {
    endRun = (error) => {
      endedBy ??= error;
      reject(error);
    };
  });
  // Marks the rejection handled for the case where submit() fails first and nothing awaits it.
  ended.catch(() => undefined);
  const onClose = (lost?: Error) => endRun(closedError(jobID, lost));

  let timer: NodeJS.Timeout | undefined;
  if (options.timeoutMs !== undefined) {
    timer = setTimeout(() => endRun(timedOutError(jobID, options.timeoutMs!)), options.timeoutMs);
  }

  client.on("output", onOutput);
  client.on("notification", onNotification);
  client.on("progress", onProgress);
  client.on("close", onClose);
  try {
    const submission = client.submit(type, data, { priority: options.priority });
    // The race below reports the first failure; a later one of the submission needs no handler.
    submission.catch(() => undefined);
    try {
      jobID = await Promise.race([submission, ended]);
    } catch (error) {
      // After a lost connection the client cannot tell whether the server accepted the job, so the
      // error states that and names the next step.
      if (error !== endedBy && error instanceof BesterClientError && error.code === "connectionClosed" && !client.closedByCaller) {
        throw closedError(undefined, error);
      }
      throw error;
    }
    options.onAccepted?.(jobID);
    for (const entry of early) {
      if (entry.kind === "output") {
        matchOutput(entry.event);
      } else if (entry.kind === "progress") {
        matchProgress(entry.event);
      } else {
        matchNotification(entry.event);
      }
    }
    const notification = await Promise.race([done, ended]);
    return { jobID, outputs, notification };
  } finally {
    clearTimeout(timer);
    client.off("output", onOutput);
    client.off("notification", onNotification);
    client.off("progress", onProgress);
    client.off("close", onClose);
  }
}

/** Builds the error for a run() that ended without the job's notification, naming where the job's result goes. */
function closedError(jobID: string | undefined, lost: Error | undefined): BesterClientError {
  if (!lost) {
    return new BesterClientError("connectionClosed", `The client was closed before job ${jobID ?? "(not yet accepted)"} finished.`);
  }
  if (jobID === undefined) {
    return new BesterClientError("connectionClosed", `${lost.message} The job's submission got no reply, so the server may or may not have accepted it. Once the server runs again, check for its messages at your next login (\`bester listen --all\`), or submit the job again.`, { cause: lost });
  }
  return new BesterClientError("connectionClosed", `${lost.message} Job ${jobID} was accepted before that. If the server stopped, start it again: it runs the job after the restart, or again if it was running. Its output and notification then wait for your next login (\`bester listen --all\` prints them). Only a server with a durable store, such as the default sqlite, keeps the job across a restart.`, { cause: lost, jobID });
}

function timedOutError(jobID: string | undefined, timeoutMs: number): BesterClientError {
  if (jobID === undefined) {
    return new BesterClientError("timedOut", `The job was not accepted within ${timeoutMs} ms. If the server accepts it later, it runs it, and its output and notification come to this user.`);
  }
  return new BesterClientError("timedOut", `Job ${jobID} did not finish within ${timeoutMs} ms. The server still runs it; its outputs and notification come to this user's connections, or wait for the next login (\`bester listen --all\` prints them).`, { jobID });
}
