// The UNIX-socket handler bridge: for each configured handler type, a pool of persistent
// connections that the scheduler uses as workers, and optionally the handler process itself.

import type { Bester } from "../../core/bester.js";
import type { ResolvedHandlerConfig } from "../../core/config/types.js";
import type { BesterPlugin } from "../../core/plugin.js";
import { HandlerConnection } from "./handler-connection.js";
import { HandlerSupervisor } from "./supervisor.js";

export const PLUGIN_NAME = "handler-bridge";

/** How long every connection of a handler type may be down before the log warns about it. */
const HANDLER_DOWN_WARNING_MS = 1000;
/** Connect failures to a handler process the server started are logged after this long. */
const STARTED_HANDLER_REPORT_AFTER_MS = 10_000;

export interface HandlerBridgeOptions {
  handlers: Record<string, ResolvedHandlerConfig>;
  maxFrameBytes: number;
  /** Milliseconds shutdown waits for in-flight jobs before closing connections; default 10000. */
  drainTimeoutMs?: number;
  /** Milliseconds start-up waits for each handler's first connection before going on; default 10000. */
  connectTimeoutMs?: number;
}

export function handlerBridge(options: HandlerBridgeOptions): BesterPlugin {
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const connections: HandlerConnection[] = [];
      const supervisors: HandlerSupervisor[] = [];

      for (const [type, config] of Object.entries(options.handlers)) {
        bester.scheduler.defineType(type, {
          maxQueued: config.maxQueued,
          retries: config.retries,
          unavailableTimeoutMs: config.unavailableTimeoutMs,
        });
      }

      const firstConnections: Array<Promise<string>> = [];

      bester.hooks.start.tapPromise(PLUGIN_NAME, async () => {
        for (const [type, config] of Object.entries(options.handlers)) {
          let supervisor: HandlerSupervisor | undefined;
          if (config.command) {
            supervisor = new HandlerSupervisor(type, config, log);
            supervisors.push(supervisor);
            await supervisor.start();
          }
          startPool(type, config, supervisor);
        }
        await waitForHandlers(options.connectTimeoutMs ?? 10_000);
      });

      bester.hooks.onStatus.tap(PLUGIN_NAME, (status) => {
        // Only handlers the daemon starts have a process to describe.
        if (supervisors.length > 0) {
          status.sections.handlers = { title: "Handler processes", rows: supervisors.map((supervisor) => supervisor.statusRow()) };
        }
        return status;
      });

      bester.hooks.stop.tapPromise(PLUGIN_NAME, async () => {
        bester.scheduler.pause();
        await waitForIdle(connections, () => bester.scheduler.running + bester.engine.completingJobs, options.drainTimeoutMs ?? 10_000);
        for (const connection of connections) {
          connection.stop();
        }
        await Promise.all(supervisors.map((supervisor) => supervisor.stop()));
      });

      /** Waits for every type's first connection, but only warns on a slow one: its jobs wait. */
      async function waitForHandlers(timeoutMs: number): Promise<void> {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), timeoutMs);
        });
        const result = await Promise.race([Promise.all(firstConnections), timeout]);
        clearTimeout(timer);
        if (result === "timeout") {
          const missing = bester.scheduler.stats().filter((entry) => entry.workers === 0).map((entry) => entry.type);
          const limits = missing.map((type) => `${bester.scheduler.optionsOf(type)?.unavailableTimeoutMs ?? "?"} ms for ${type} (handlers.${type}.unavailableTimeoutMs)`).join(", ");
          // waitedMs, not timeoutMs: the field is how long start-up waited, not the jobs' limit.
          log.warn({ types: missing, waitedMs: timeoutMs }, `some handlers did not connect within ${timeoutMs / 1000} s of start-up; their jobs wait for a connection up to ${limits}`);
        }
      }

      function startPool(type: string, config: ResolvedHandlerConfig, supervisor: HandlerSupervisor | undefined): void {
        let live = 0;
        // A handler that closes after each reply, as the protocol allows, has no connection for a
        // moment after every job, so only a gap longer than HANDLER_DOWN_WARNING_MS is reported.
        let downTimer: NodeJS.Timeout | undefined;
        let reportedDown = false;
        let everConnected = false;
        // A restarted process connects anew, which the log reports, unlike the reconnects of a
        // handler that closes after each reply.
        let restartsAtConnect = 0;
        // The supervisor logs a started handler's exits, so only a long gap is worth a warning.
        const downWarningMs = supervisor ? STARTED_HANDLER_REPORT_AFTER_MS : HANDLER_DOWN_WARNING_MS;
        let connected!: (type: string) => void;
        firstConnections.push(new Promise((resolve) => (connected = resolve)));
        for (let index = 1; index <= config.connections; index += 1) {
          const connection = new HandlerConnection({
            type,
            socket: config.socket,
            index,
            timeoutMs: config.timeoutMs,
            maxFrameBytes: options.maxFrameBytes,
            log,
            onReply: supervisor && (() => supervisor.noteReply()),
            // A process the server starts may take seconds to listen, as tsx does on a busy
            // machine, and the supervisor logs its exits, so only a long wait is reported.
            connectReportAfterMs: supervisor ? STARTED_HANDLER_REPORT_AFTER_MS : undefined,
            addWorker: (worker) => {
              const remove = bester.scheduler.addWorker(type, worker);
              live += 1;
              if (live === 1) {
                clearTimeout(downTimer);
                const restarted = supervisor !== undefined && supervisor.restarts !== restartsAtConnect;
                if (!everConnected || reportedDown || restarted) {
                  log.info({ type, socket: config.socket }, "handler connected");
                }
                restartsAtConnect = supervisor?.restarts ?? 0;
                everConnected = true;
                reportedDown = false;
                connected(type);
              }
              return () => {
                remove();
                live -= 1;
                if (live === 0 && bester.state === "running") {
                  clearTimeout(downTimer);
                  downTimer = setTimeout(() => {
                    if (live === 0 && bester.state === "running") {
                      reportedDown = true;
                      log.warn({ type, socket: config.socket, downForMs: downWarningMs }, "no handler connection is up; jobs wait until one reconnects");
                    }
                  }, downWarningMs);
                  downTimer.unref();
                }
              };
            },
          });
          connections.push(connection);
          connection.connect();
        }
      }
    },
  };
}

/**
 * Resolves once no connection has a job in flight and every replied job has finished its director
 * and notification (`running` counts both), or when the timeout passes.
 */
async function waitForIdle(connections: HandlerConnection[], running: () => number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((connections.some((connection) => connection.busy) || running() > 0) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
