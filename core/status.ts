// The admin status report: what `bester status` shows about a running server. The admin-status
// plugin fills in the core parts; other plugins add sections through the onStatus hook.

import type { JobTypeStats } from "./jobs/scheduler.js";

/** A plugin's part of the status report, shown by `bester status` as one table. */
export interface StatusSection {
  /** Table heading, e.g. "Peer links". */
  title: string;
  /** One object per table row; every row should have the same keys, which become the columns. */
  rows: Array<Record<string, string | number | boolean | null>>;
}

export interface ServerStatus {
  serverName: string;
  /** ISO 8601 time the server process created its Bester instance. */
  startedAt: string;
  uptimeSeconds: number;
  /** Finished jobs (completed or failed) per second. */
  jobsPerSecond: {
    sinceStart: number;
    /** Over the last 60 seconds, or over the uptime when it is shorter. */
    lastMinute: number;
  };
  /** Per job type: queued, running, completed and failed counts, and handler connections (`workers`). */
  jobTypes: JobTypeStats[];
  /** Users with at least one live connection. */
  users: Array<{ user: string; connections: number }>;
  /** Sections added by plugins through onStatus, keyed by a name the plugin picks, e.g. `peers`. */
  sections: Record<string, StatusSection>;
}
