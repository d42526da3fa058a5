// End markers: a small append-only file of job ids whose end was decided, written synchronously
// right before the job's notification goes to a live submitter.
//
// The journal's own removal commits on SQLite's worker thread, and the main thread learns of the
// commit only later. A crash between the two would lose the notification of a job that is already
// removed. A synchronous write() needs no thread hand-off, so the marker reaches the kernel a few
// microseconds before the notification's socket write, and a restart skips marked jobs. The
// marker is not fsynced: it survives a process crash, and after a power loss the job only runs
// again (at-least-once). The ids marked in one flush go out in one write, in a microtask that runs
// before the event loop moves on, to keep the time between the socket write and the marker short.

import { closeSync, ftruncateSync, openSync, readFileSync, writeSync, existsSync, mkdirSync } from "node:fs";
import path from "node:path";

export class EndMarkers {
  private fd: number | undefined;
  /** Markers whose journal removal has not committed yet; the file is emptied when none are left. */
  private outstanding = 0;
  /** Ids marked in this turn and not yet written. */
  private unwritten: string[] = [];

  constructor(readonly file: string) {}

  /** Opens the file and returns the ids marked by the previous run. */
  open(): Set<string> {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const previous = existsSync(this.file) ? readFileSync(this.file, "utf8").split("\n").filter((line) => line.length > 0) : [];
    this.fd = openSync(this.file, "a");
    // Keep the previous run's markers until the caller removed those jobs from the journal.
    this.outstanding = previous.length > 0 ? 1 : 0;
    return new Set(previous);
  }

  /** Records that job `id` ended; the write happens in this turn of the event loop, see the file comment. */
  mark(id: string): void {
    if (this.fd === undefined) {
      return;
    }
    if (this.unwritten.length === 0) {
      queueMicrotask(this.write);
    }
    this.unwritten.push(id);
    this.outstanding += 1;
  }

  private readonly write = (): void => {
    if (this.fd !== undefined && this.unwritten.length > 0) {
      writeSync(this.fd, `${this.unwritten.join("\n")}\n`);
    }
    this.unwritten = [];
  };

  /** Reports that the journal removal behind one marker committed (or the previous run's markers were applied). */
  settled(): void {
    this.outstanding -= 1;
    if (this.outstanding === 0 && this.fd !== undefined) {
      ftruncateSync(this.fd, 0);
    }
  }

  close(): void {
    this.write();
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
