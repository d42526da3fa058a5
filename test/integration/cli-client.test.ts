import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ServerStatus } from "../../core/status.js";
import { AccountStore, type AccountRecord } from "../../plugins/accounts/account-store.js";
import { ACCOUNTS_NAMESPACE } from "../../plugins/accounts/index.js";
import { createStoreProvider } from "../../plugins/store/index.js";
import { BesterClient } from "../../plugins/transport-tcp/client.js";
import { runCli, spawnCli, waitForOutput } from "../cli-runner.js";
import { fixtureHandler } from "../helper.js";

describe("CLI client commands against bester start", () => {
  let folder: string;
  let daemon: ChildProcess;
  let server: string;
  const login = (user: string, password: string) => ["--server", server, "-u", user, "-p", password];

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-cli-client-"));
    const store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    const provider = createStoreProvider(store);
    await provider.open?.();
    const accounts = new AccountStore(provider.namespace<AccountRecord>(ACCOUNTS_NAMESPACE));
    await accounts.add("root", "root-pw", { admin: true });
    await accounts.add("alice", "alice-pw");
    await accounts.add("bob", "bob-pw");
    await accounts.add("carol", "carol-pw");
    await provider.close();

    const config = path.join(folder, "bester.config.json");
    await writeFile(
      config,
      JSON.stringify({
        listen: { host: "127.0.0.1", port: 0 },
        store,
        dataDir: path.join(folder, "data"),
        handlers: { echo: fixtureHandler("echo"), progress: fixtureHandler("progress"), slow: fixtureHandler("delay-echo", { env: { DELAY_MS: "3000" } }) },
      }),
    );
    daemon = spawnCli(["start", "-c", config, "--log", path.join(folder, "bester.log")]);
    const [, address] = await waitForOutput(daemon.stderr!, /listening on (127\.0\.0\.1:\d+)/);
    server = address!;
  });

  after(async () => {
    if (daemon.exitCode === null) {
      daemon.kill("SIGKILL");
    }
    await rm(folder, { recursive: true, force: true });
  });

  it("submit --data prints outputs and notification", async () => {
    const result = await runCli(["submit", ...login("alice", "alice-pw"), "-t", "echo", "--data", '{"a":1}']);

    expect(result.code).to.equal(0);
    const [, jobID] = result.stdout.match(/^output ([^:\s]+):alice@127\.0\.0\.1:\d+ \(echo\):$/m) ?? [];
    expect(jobID).to.be.a("string");
    expect(result.stdout).to.include('{\n  "a": 1\n}');
    expect(result.stdout).to.include(JSON.stringify({ reply: "jobNotification", job: { status: "completed", jobID } }));
    expect(result.stderr).to.include("connecting and logging in as alice...\n");
    expect(result.stderr).to.include(`job ${jobID} completed`);
  });

  it("submit shows the job's progress", async () => {
    const result = await runCli(["submit", ...login("alice", "alice-pw"), "-t", "progress", "--data", '{"steps":2}']);

    expect(result.code).to.equal(0);
    expect(result.stderr).to.include('running progress job, progress {"step":1,"of":2}');
    expect(result.stderr).to.include('running progress job, progress {"step":2,"of":2}');
  });

  it("submit --no-wait prints only the job id", async () => {
    const result = await runCli(["submit", ...login("alice", "alice-pw"), "-t", "echo", "--text", "hi", "--no-wait"]);

    expect(result.code).to.equal(0);
    expect(result.stdout).to.match(/^[^:@\s]+\n$/);
    expect(result.stderr).not.to.include("logging in");
  });

  it("submit --no-wait loses no message of its job", async () => {
    const first = await runCli(["submit", ...login("carol", "carol-pw"), "-t", "echo", "--text", "later", "--no-wait"]);
    const earlierID = first.stdout.trim();
    // The echo handler replies at once; give the job time to end.
    await new Promise((resolve) => setTimeout(resolve, 500));

    const second = await runCli(["submit", ...login("carol", "carol-pw"), "-t", "echo", "--text", "now"]);

    // A job that ends before the first command closes its connection has its messages printed on
    // that command's stderr. The server keeps those it wrote after the command closed its side, and
    // the next command prints them there. A message may show up in both (at least once).
    const both = first.stderr + second.stderr;
    const outputs = both.split(`output ${earlierID}:carol@`).length - 1;
    const notifications = both.split(JSON.stringify({ reply: "jobNotification", job: { status: "completed", jobID: earlierID } })).length - 1;
    expect(second.code).to.equal(0);
    expect(outputs).to.be.within(1, 2);
    expect(notifications).to.be.within(1, 2);
    expect(second.stdout).to.not.include(earlierID);
    expect(second.stdout).to.match(/\(echo\):\nnow\n/);
  });

  it("submit reads JSON from stdin", async () => {
    const result = await runCli(["submit", ...login("alice", "alice-pw"), "-t", "echo", "--json"], { input: '{"from":"stdin"}' });

    expect(result.code).to.equal(0);
    expect(result.stdout).to.include('"from": "stdin"');
  });

  it("submit reads text from --file", async () => {
    const file = path.join(folder, "input.txt");
    await writeFile(file, "file contents");

    const result = await runCli(["submit", ...login("alice", "alice-pw"), "-t", "echo", "--file", file]);

    expect(result.code).to.equal(0);
    expect(result.stdout).to.match(/\(echo\):\nfile contents\n/);
  });

  it("submit exits 2 when the job fails", async () => {
    const result = await runCli(["submit", ...login("alice", "alice-pw"), "-t", "echo", "--data", '{"deliverTo":["ghost"],"value":1}']);

    expect(result.code).to.equal(2);
    expect(result.stdout).to.include('"status":"failed"');
    expect(result.stderr).to.include("unknownUser");
  });

  it("submit exits 1 on a rejected job", async () => {
    const result = await runCli(["submit", ...login("alice", "alice-pw"), "-t", "nope", "--data", "1"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(/^bester: .*"nope".* \[noHandler\]$/m);
    expect(result.stderr).to.include("submitting the nope job failed");
  });

  it("submit --timeout gives up on a slow job", async () => {
    const result = await runCli(["submit", ...login("bob", "bob-pw"), "-t", "slow", "--data", '"late"', "--timeout", "1"]);

    expect(result.code).to.equal(1);
    const line = /^bester: Job (\S+) did not finish within the --timeout of 1 s\..* \[timedOut\]$/m.exec(result.stderr);
    expect(line, result.stderr).to.not.equal(null);
    expect(result.stderr).to.include("waiting for the slow job failed");

    // The server still ran the job and kept its result for bob's next login.
    const later = await runCli(["submit", ...login("bob", "bob-pw"), "-t", "slow", "--data", '"second"']);
    expect(later.code).to.equal(0);
    expect(later.stderr).to.include(`output ${line![1]}:bob@`);
  });

  it("submit exits 1 on a wrong password", async () => {
    const result = await runCli(["submit", ...login("alice", "wrong"), "-t", "echo", "--data", "1"]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include('bester: The username or password is wrong. If "alice" has no account yet, add --register (when the server allows registration) or ask the operator for one. [invalidCredentials]');
  });

  it("listen --json prints outputs and exits 0 on Ctrl-C", async () => {
    const listener = spawnCli(["listen", ...login("bob", "bob-pw"), "--json"]);
    await waitForOutput(listener.stderr!, /listening as bob@/);
    const lines = waitForOutput(listener.stdout!, /^(.+)\n/);
    const sender = await BesterClient.connect({ port: Number(server.split(":")[1]) });
    await sender.auth("alice", "alice-pw");

    const result = await sender.run("echo", { deliverTo: ["bob"], value: { n: 7 } });
    const [, line] = await lines;
    listener.kill("SIGINT");
    const [code] = await once(listener, "exit");

    expect(JSON.parse(line!)).to.deep.equal({
      reply: "jobOutput",
      job: { jobID: `${result.jobID}:alice@${server}`, payload: { type: "echo", data: { n: 7 } } },
    });
    expect(code).to.equal(0);
    await sender.close();
  });

  it("listen prints outputs stored while offline", async () => {
    const sender = await BesterClient.connect({ port: Number(server.split(":")[1]) });
    await sender.auth("alice", "alice-pw");
    const jobIDs: string[] = [];
    for (const n of [1, 2, 3]) {
      jobIDs.push((await sender.run("echo", { deliverTo: ["carol"], value: { n } })).jobID);
    }

    const listener = spawnCli(["listen", ...login("carol", "carol-pw"), "--json"]);
    const [printed] = await waitForOutput(listener.stdout!, /^(.+\n){3}/);
    listener.kill("SIGINT");
    await once(listener, "exit");

    const replies = printed!.trim().split("\n").map((line) => JSON.parse(line) as { job: { jobID: string; payload: { data: unknown } } });
    expect(replies.map((reply) => reply.job.jobID)).to.deep.equal(jobIDs.map((id) => `${id}:alice@${server}`));
    expect(replies.map((reply) => reply.job.payload.data)).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }]);
    await sender.close();
  });

  it("listen --all prints readable progress and notifications", async () => {
    const listener = spawnCli(["listen", ...login("alice", "alice-pw"), "--all"]);
    await waitForOutput(listener.stderr!, /listening as alice@/);
    const printed = waitForOutput(listener.stdout!, /job \S+ completed\n/);
    const submitter = await BesterClient.connect({ port: Number(server.split(":")[1]) });
    await submitter.auth("alice", "alice-pw");

    const result = await submitter.run("progress", { steps: 1 });
    const [text] = await printed;
    listener.kill("SIGINT");
    const [code] = await once(listener, "exit");

    const output = (await printed).input!;
    expect(output).to.match(new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\] progress of ${result.jobID}: \\{"step":1,"of":1\\}$`, "m"));
    expect(output).to.match(new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\] output of ${result.jobID}:alice@\\S+ \\(progress\\):\\ndone after 1 steps$`, "m"));
    expect(text).to.equal(`job ${result.jobID} completed\n`);
    expect(code).to.equal(0);
    await submitter.close();
  });

  it("status prints tables for an admin", async () => {
    const result = await runCli(["status", ...login("root", "root-pw")]);

    expect(result.code).to.equal(0);
    expect(result.stdout).to.match(new RegExp(`^Server ${server.replace(/\./g, "\\.")}, up `));
    expect(result.stdout).to.match(/^Job types\ntype\s+queued\s+running\s+completed\s+failed\s+handler connections$/m);
    expect(result.stdout).to.match(/^echo\s+0\s+0\s+\d+\s+\d+\s+4$/m);
    expect(result.stdout).to.match(/^progress\s+0\s+0\s+\d+\s+0\s+4$/m);
    expect(result.stdout).to.match(/^Connected users\nuser\s+connections\nroot\s+1$/m);
    expect(result.stdout).to.match(/^Handler processes\ntype\s+state\s+pid\s+uptimeSeconds\s+restarts\s+lastExit$/m);
    expect(result.stdout).to.match(/^echo\s+running\s+\d+\s+\d+\s+0\s+-$/m);
  });

  it("status --json prints the report", async () => {
    const result = await runCli(["status", ...login("root", "root-pw"), "--json"]);
    const status = JSON.parse(result.stdout) as ServerStatus;

    expect(result.code).to.equal(0);
    expect(status.serverName).to.equal(server);
    expect(status.jobTypes.map((entry) => entry.type)).to.deep.equal(["echo", "progress", "slow"]);
    expect(status.jobTypes[0]!.completed).to.be.at.least(4);
    expect(Object.keys(status.sections)).to.deep.equal(["handlers"]);
    expect(status.sections.handlers!.rows.map((row) => [row.type, row.state, row.restarts])).to.deep.equal([
      ["echo", "running", 0],
      ["progress", "running", 0],
      ["slow", "running", 0],
    ]);
  });

  it("status exits 1 for a non-admin", async () => {
    const result = await runCli(["status", ...login("alice", "alice-pw")]);

    expect(result.code).to.equal(1);
    expect(result.stderr).to.include("[notPermitted]");
  });

  it("start stops on SIGINT with exit 0", async () => {
    const stopped = waitForOutput(daemon.stderr!, /SIGINT received; stopping\nstopped\n/);
    daemon.kill("SIGINT");
    const [code] = await once(daemon, "exit");

    expect(code).to.equal(0);
    expect((await stopped)[0]).to.equal("SIGINT received; stopping\nstopped\n");
  });
});
