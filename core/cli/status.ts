// `bester status`: log in as an admin and show the running server's status as tables or JSON.

import type { Command } from "commander";
import type { ServerStatus } from "../status.js";
import { addConnectOptions, connectAndLogin, type ConnectOptions } from "./connect.js";
import { createProgress } from "./spinner.js";
import { formatDuration, formatTable } from "./table.js";

interface StatusOptions extends ConnectOptions {
  json?: boolean;
}

export function registerStatusCommand(program: Command): void {
  addConnectOptions(
    program
      .command("status")
      .description("Show a running server's job queues, handler connections, connected users and plugin sections. Needs an admin account (bester user add NAME --admin, or bester user admin NAME).")
      .option("--json", "print the status report as JSON instead of tables"),
  ).action(async (options: StatusOptions) => {
    const progress = await createProgress(options.json);
    progress.step("reading status");
    const { client } = await connectAndLogin(options);
    try {
      const status = await client.status();
      progress.succeed(`status of ${status.serverName}`);
      process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    } catch (error) {
      progress.fail("reading status failed");
      throw error;
    } finally {
      await client.close();
    }
  });
}

/** Renders the report as a summary followed by one table per section. */
export function formatStatus(status: ServerStatus): string {
  const parts = [
    `Server ${status.serverName}, up ${formatDuration(status.uptimeSeconds)} (since ${status.startedAt})\n` +
      `Finished jobs per second: ${status.jobsPerSecond.lastMinute} over the last minute, ${status.jobsPerSecond.sinceStart} since start\n`,
    "Job types\n" +
      formatTable(
        ["type", "queued", "running", "completed", "failed", "handler connections"],
        status.jobTypes.map((entry) => [entry.type, entry.queued, entry.running, entry.completed, entry.failed, entry.workers]),
      ),
    "Connected users\n" + formatTable(["user", "connections"], status.users.map((entry) => [entry.user, entry.connections])),
  ];

  for (const section of Object.values(status.sections)) {
    const columns = [...new Set(section.rows.flatMap((row) => Object.keys(row)))];
    parts.push(`${section.title}\n` + formatTable(columns, section.rows.map((row) => columns.map((column) => row[column]))));
  }
  return parts.join("\n");
}
