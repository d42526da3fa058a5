import { once } from "node:events";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { SqliteJournalBackend } from "../../plugins/journal/sqlite-backend.js";
import { expect } from "chai";
import { startDaemon, stopDaemon, writeDaemonConfig, type DaemonProcess } from "../daemon-process.js";
import { fixtureHandler, waitUntil } from "../helper.js";
import { JobTracker } from "../job-tracker.js";
import { BesterClient } from "../../plugins/transport-tcp/client.js";

const CYCLES = 3;

async function journalEntries(file: string, prefix: string): Promise<Array<{ key: string; value: string }>> {
  const backend = new SqliteJournalBackend(file);
  await backend.open();
  const entries = await backend.scan(prefix);
  await backend.close();
  return entries;
}

async function journalKeys(file: string): Promise<string[]> {
  const backend = new SqliteJournalBackend(file);
  await backend.open();
  const keys = await backend.keys("");
  await backend.close();
  return keys;
}
const JOBS_PER_CYCLE = 300;


describe("crash recovery (SIGKILL)", function () {
  this.timeout(90_000);
  let folder: string;
  let daemon: DaemonProcess | undefined;

  afterEach(async () => {
    if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
      await stopDaemon(daemon, "SIGKILL");
    }
    await rm(folder, { recursive: true, force: true });
  });

  it("runs every accepted job after repeated kills", async () => {
    const config = await writeDaemonConfig({
      registration: true,
      handlers: { echo: fixtureHandler("delay-echo", { connections: 4, env: { DELAY_MS: "3" } }) },
    });
    folder = config.folder;
    const tracker = new JobTracker();
    const runs: DaemonProcess[] = [];

    for (let cycle = 0; cycle < CYCLES; cycle += 1) {
      daemon = await startDaemon(config.file);
      runs.push(daemon);
      await tracker.connect(daemon.port);
      await tracker.login("alice", "secret-pass", cycle === 0);
      // Let stored offline messages from the previous run arrive and be removed before the kill:
      // the log line follows the removal's commit. A run that stored none writes no such line.
      const delivered = daemon;
      await tracker.waitFor(() => delivered.logs.some((entry) => entry.msg === "delivered stored offline messages"), 2000, "offline delivery").catch(() => undefined);

      const batch = await tracker.submit("echo", JOBS_PER_CYCLE);
      expect(batch).to.have.length(JOBS_PER_CYCLE);
      // Kill while part of the batch is done and the rest is queued or on a handler.
      await tracker.waitFor(() => tracker.finishedCount(batch) >= 20, 20_000, "the first notifications");
      // A random pause, so the kill does not always land right after the daemon sent notifications.
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 40)));

      const code = await stopDaemon(daemon, "SIGKILL");
      expect(code).to.equal(null);
      // Read what the daemon wrote before it died: the kernel still delivers it, then closes.
      await tracker.waitClosed();
      expect(tracker.finishedCount(batch)).to.be.below(JOBS_PER_CYCLE);
      tracker.close();
    }

    daemon = await startDaemon(config.file);
    runs.push(daemon);
    await tracker.connect(daemon.port);
    await tracker.login("alice", "secret-pass", false);
    await tracker.waitFor(() => tracker.finishedCount() === tracker.accepted.length, 30_000, "every accepted job's notification").catch(async (error: Error) => {
      const missing = tracker.accepted.filter((id) => !tracker.notifications.has(id));
      const detail = missing.slice(0, 5).map((id) => `${id} (outputs: ${tracker.outputs.get(id) ?? 0})`);
      // The daemons' log lines about the missing jobs, to tell a lost job from a lost message.
      const related = runs.flatMap((run) => run.logs).filter((entry) => missing.some((id) => JSON.stringify(entry).includes(id)));
      const markers = await readFile(path.join(folder, "data", "journal-ended.log"), "utf8").catch(() => "");
      const stored = await journalKeys(path.join(folder, "data", "bester.sqlite"));
      const offline = await journalEntries(path.join(folder, "data", "bester.sqlite"), "offline/");
      const where = missing.map((id) => `${id}: marker=${markers.includes(id)} journal=${stored.includes(`job/${id}`)} offline=${offline.filter((entry) => entry.value.includes(id)).length}`);
      const summary = runs.map((run) => run.logs.filter((entry) => /resumed|offline|handler process exited/.test(String(entry.msg))).map((entry) => `${entry.msg} ${entry.resumed ?? entry.messages ?? entry.users ?? ""}`));
      where.push(`offline entries left: ${offline.length}`, `runs: ${JSON.stringify(summary)}`);
      throw new Error(`${error.message}: ${missing.length} jobs missing, e.g. ${detail.join(", ")}; ${where.join("; ")}; log lines: ${JSON.stringify(related)}`);
    });
    // Give a duplicate notification, if one were coming, time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect(tracker.rejected).to.deep.equal([]);
    expect(tracker.accepted).to.have.length(CYCLES * JOBS_PER_CYCLE);
    // NOTE: a kill between the write that carries a notification and the end marker after it sends
    // that notification again after the restart. The window is one flush wide, so only the jobs of
    // the last flush before a kill can repeat. Each job still gets at least one notification.
    const unnotified = tracker.accepted.filter((id) => (tracker.notifications.get(id) ?? []).length === 0);
    expect(unnotified, "jobs without a notification").to.deep.equal([]);
    const duplicated = tracker.accepted.filter((id) => tracker.notifications.get(id)!.length > 1);
    expect(duplicated.length, `jobs notified twice: ${duplicated.join(", ")}`).to.be.at.most(CYCLES * 4);
    const tripled = tracker.accepted.filter((id) => tracker.notifications.get(id)!.length > 2);
    expect(tripled, "jobs notified more than twice").to.deep.equal([]);
    const failed = tracker.accepted.filter((id) => tracker.notifications.get(id)![0]!.status !== "completed").map((id) => tracker.notifications.get(id)![0]);
    expect(failed, "jobs that did not complete").to.deep.equal([]);
    const withoutOutput = tracker.accepted.filter((id) => !tracker.outputs.has(id));
    expect(withoutOutput, "jobs without an output").to.deep.equal([]);

    const resumed = daemon.logs.find((entry) => entry.msg === "resumed jobs left unfinished by the previous run");
    expect(resumed, "log line about resumed jobs").to.not.equal(undefined);
    tracker.close();
    expect(await stopDaemon(daemon, "SIGTERM")).to.equal(0);
  });

  it("SDK client sees one notification per job", async () => {
    const config = await writeDaemonConfig({
      registration: true,
      handlers: { echo: fixtureHandler("delay-echo", { connections: 4, env: { DELAY_MS: "2" } }) },
    });
    folder = config.folder;
    daemon = await startDaemon(config.file);
    const client = await BesterClient.connect({ port: daemon.port, reconnect: { delayMs: 50, maxDelayMs: 200 } });
    await client.register("carol", "secret-pass");
    await client.auth("carol", "secret-pass");
    const notified = new Map<string, number>();
    client.on("notification", (event) => notified.set(event.jobID, (notified.get(event.jobID) ?? 0) + 1));
    const accepted: string[] = [];

    for (let cycle = 0; cycle < CYCLES; cycle += 1) {
      const batch = await Promise.all(Array.from({ length: JOBS_PER_CYCLE }, (_, index) => client.submit("echo", `${cycle}-${index}`)));
      accepted.push(...batch);
      await waitUntil(() => batch.filter((id) => notified.has(id)).length >= 20, "the first notifications arrived", 30_000);
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 40)));

      const reconnected = once(client, "reconnect");
      expect(await stopDaemon(daemon, "SIGKILL")).to.equal(null);
      daemon = await startDaemon(config.file);
      await reconnected;
    }

    await waitUntil(() => accepted.every((id) => notified.has(id)), "every accepted job was notified", 30_000);
    // Give a repeated notification, if one were coming, time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const counts = accepted.map((id) => notified.get(id));
    expect(counts.filter((count) => count !== 1), "jobs without exactly one notification").to.deep.equal([]);
    expect([...notified.keys()].filter((id) => !accepted.includes(id)), "notifications of jobs never accepted").to.deep.equal([]);
    await client.close();
  });

  it("SIGTERM finishes in-flight jobs and keeps queued ones", async () => {
    const config = await writeDaemonConfig({
      registration: true,
      handlers: { echo: fixtureHandler("delay-echo", { connections: 1, env: { DELAY_MS: "40" } }) },
    });
    folder = config.folder;
    const tracker = new JobTracker();

    daemon = await startDaemon(config.file);
    await tracker.connect(daemon.port);
    await tracker.login("bob", "secret-pass", true);
    const batch = await tracker.submit("echo", 60);
    await tracker.waitFor(() => tracker.finishedCount(batch) >= 3, 20_000, "the first notifications");

    expect(await stopDaemon(daemon, "SIGTERM")).to.equal(0);
    await tracker.waitClosed();
    const beforeRestart = tracker.finishedCount(batch);
    expect(beforeRestart).to.be.below(60);
    expect(daemon.logs.some((entry) => entry.msg === "server stopped")).to.equal(true);
    tracker.close();

    daemon = await startDaemon(config.file);
    await tracker.connect(daemon.port);
    await tracker.login("bob", "secret-pass", false);
    await tracker.waitFor(() => tracker.finishedCount(batch) === 60, 20_000, "the queued jobs after the restart");
    await new Promise((resolve) => setTimeout(resolve, 200));

    const counts = batch.map((id) => tracker.notifications.get(id)!.length);
    expect(counts.every((count) => count === 1), "each job has one notification").to.equal(true);
    const resumed = daemon.logs.find((entry) => entry.msg === "resumed jobs left unfinished by the previous run");
    expect(resumed?.resumed).to.equal(60 - beforeRestart);
    tracker.close();
    expect(await stopDaemon(daemon, "SIGTERM")).to.equal(0);
  });
});
