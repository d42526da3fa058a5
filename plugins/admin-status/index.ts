// The admin-status plugin: replies to the `status` client request with a report of the running
// server, for authenticated users that hold the `admin` permission. Other plugins add their own
// sections (federation: peer links and their backlog) by tapping onStatus.

import type { Bester } from "../../core/bester.js";
import type { BesterPlugin } from "../../core/plugin.js";
import type { ServerStatus } from "../../core/status.js";
import { RateMeter } from "./rate-meter.js";

export const PLUGIN_NAME = "admin-status";

/** The permission a user needs for the `status` request. */
export const STATUS_PERMISSION = "admin";

const STATUS_REQUEST_SCHEMA = {
  type: "object",
  required: ["request"],
  additionalProperties: false,
  properties: { request: { const: "status" }, tag: { type: "string", maxLength: 256 } },
};

export function adminStatus(): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const meter = new RateMeter(bester.startedAt);

      bester.requests.define("status", STATUS_REQUEST_SCHEMA);

      bester.hooks.onJobDone.tap(PLUGIN_NAME, () => meter.record());

      bester.hooks.onClientRequest.for("status").tapPromise(PLUGIN_NAME, async ({ user, connection }) => {
        const permitted = bester.hooks.onAuthorize.isUsed()
          ? await bester.hooks.onAuthorize.promise({ user: user!, permission: STATUS_PERMISSION })
          : undefined;
        if (permitted !== true) {
          log.info({ user, connection: connection.id }, "status request rejected: user is not an admin");
          return {
            reply: "error",
            error: { code: "notPermitted", message: `User "${user}" may not read the server status. An operator can grant it with "bester user admin ${user}".` },
          };
        }

        let status = baseStatus(bester, meter);
        if (bester.hooks.onStatus.isUsed()) {
          status = await bester.hooks.onStatus.promise(status);
        }
        return { reply: "status", status };
      });
    },
  };
}

/** Builds the core parts of the report: job types, users, uptime and throughput. */
function baseStatus(bester: Bester, meter: RateMeter): ServerStatus {
  return {
    serverName: bester.serverName,
    startedAt: new Date(bester.startedAt).toISOString(),
    uptimeSeconds: Math.floor((Date.now() - bester.startedAt) / 1000),
    jobsPerSecond: { sinceStart: meter.sinceStart(), lastMinute: meter.lastMinute() },
    jobTypes: bester.scheduler.stats(),
    users: bester.sessions.list().sort((a, b) => a.user.localeCompare(b.user)),
    sections: {},
  };
}
