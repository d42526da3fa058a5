// The order of a session's asynchronous messages: job outputs, notifications and progress, and the
// stored messages that plugins send after login. An event about a job waits until that job's
// jobSubmission reply has left, and live events wait behind the stored messages, which are older.

import type { Connection } from "./sessions.js";

/** Asynchronous messages about one job, which must not overtake that job's submission reply. */
const JOB_EVENTS = new Set(["jobOutput", "jobNotification", "jobProgress"]);

export class SessionEvents {
  /**
   * Events for jobs submitted on this connection whose jobSubmission reply has not left yet,
   * because the job's acceptance or an earlier, slower request is still pending.
   */
  private held = new Map<string, object[]>();
  /** Events in `held`. Most entries stay empty, because a job sends nothing before its acceptance. */
  private heldCount = 0;
  /** Live events that wait while the user's stored messages are sent after login; undefined at other times. */
  private backlog: object[] | undefined;
  /** Callers of onFlushed() waiting for every held event to be released. */
  private releaseWaiters: Array<() => void> = [];

  constructor(
    private readonly connection: Connection,
    private readonly isClosed: () => boolean,
  ) {}

  /** Holds the events of job `jobID` until release() or discard(). */
  hold(jobID: string): void {
    this.held.set(jobID, []);
  }

  /** Drops the hold of a job whose acceptance failed. The engine sends nothing for such a job. */
  discard(jobID: string): void {
    this.held.delete(jobID);
  }

  /** Sends the held events of job `jobID`, right after its submission reply. */
  release(jobID: string): void {
    const events = this.held.get(jobID) ?? [];
    this.held.delete(jobID);
    this.heldCount -= events.length;
    for (const event of events) {
      this.deliver(event);
    }
    this.settleReleaseWaiters();
  }

  /** Sends a message from the session registry, holding it while its job's submission reply is not out. */
  send(message: object): void {
    const jobID = jobIdOfEvent(message as Record<string, unknown>);
    const events = jobID === undefined ? undefined : this.held.get(jobID);
    if (events) {
      events.push(message);
      this.heldCount += 1;
      return;
    }
    this.deliver(message);
  }

  /** Makes live events wait until releaseBacklog(), while plugins send the user's stored messages. */
  startBacklog(): void {
    this.backlog = [];
  }

  /** Sends the live events that waited for the stored messages, once those are out. */
  releaseBacklog(): void {
    const waiting = this.backlog ?? [];
    this.backlog = undefined;
    if (this.isClosed()) {
      return;
    }
    for (const message of waiting) {
      this.connection.send(message);
    }
    this.settleReleaseWaiters();
  }

  /** Calls `callback` once every event sent so far, held ones included, left the process; see Connection.onFlushed. */
  onFlushed(callback: (error?: Error) => void): void {
    if (!this.holdsEvents()) {
      this.connection.onFlushed ? this.connection.onFlushed(callback) : callback();
      return;
    }
    this.releaseWaiters.push(() => {
      if (this.isClosed() || this.holdsEvents()) {
        // The connection closed with events still held, so they never left the process.
        callback(new Error(`Connection ${this.connection.id} closed before its held events were sent.`));
        return;
      }
      this.connection.onFlushed ? this.connection.onFlushed(callback) : callback();
    });
  }

  /** Removes and returns the events that never left the process, held and backlogged. */
  takeUnsent(): object[] {
    const unsent = [...this.held.values()].flat().concat(this.backlog ?? []);
    this.held.clear();
    this.heldCount = 0;
    this.backlog = undefined;
    return unsent;
  }

  /** Calls back every onFlushed() caller still waiting. Call it once the connection closed. */
  endWaits(): void {
    for (const resolve of this.releaseWaiters.splice(0)) {
      resolve();
    }
  }

  /** Sends an event, or queues it behind the stored messages still being sent after login. */
  private deliver(message: object): void {
    if (this.backlog) {
      this.backlog.push(message);
      return;
    }
    this.connection.send(message);
  }

  private holdsEvents(): boolean {
    return this.heldCount > 0 || this.backlog !== undefined;
  }

  private settleReleaseWaiters(): void {
    if (!this.holdsEvents()) {
      this.endWaits();
    }
  }
}

/** Returns the local job id a job event is about; a jobOutput id is `<jobID>:<user>@<server>`. */
function jobIdOfEvent(message: Record<string, unknown>): string | undefined {
  if (!JOB_EVENTS.has(String(message.reply))) {
    return undefined;
  }
  const id = (message.job as { jobID?: unknown } | undefined)?.jobID;
  if (typeof id !== "string") {
    return undefined;
  }
  const colon = id.indexOf(":");
  return message.reply === "jobOutput" && colon !== -1 ? id.slice(0, colon) : id;
}
