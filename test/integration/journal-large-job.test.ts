import { expect } from "chai";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { SqliteJournalBackend } from "../../plugins/journal/sqlite-backend.js";
import { fixtureHandler, login, makeTempDir, RawClient, startServer } from "../helper.js";

describe("journal records of large jobs", () => {
  let folder: string;

  beforeEach(async () => {
    folder = await makeTempDir("bester-journal-large-");
  });

  afterEach(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("store the original payload text", async () => {
    const store = path.join(folder, "store.sqlite");
    const release = path.join(folder, "release");
    const server = await startServer({ store: `sqlite://${store}`, registration: true, handlers: { gate: fixtureHandler("gate") } });
    const client = await RawClient.connect(server.port);
    await login(client, "alice");

    // The gate handler holds the job until the release file exists, so the job stays journaled.
    const data = { holdUntil: release, text: "ASCII ".repeat(4000), unicode: 'Grüße 🚀 "quoted" \\ '.repeat(500), list: [1, 2.5, null, true] };
    const layout = JSON.stringify(data, null, 1);
    const body = Buffer.from(`{"request":"newJob","job":{"payload":{"type":"gate","data":  ${layout}  }}}`, "utf8");
    const header = Buffer.alloc(4);
    header.writeUInt32LE(body.length, 0);
    client.writeRaw(Buffer.concat([header, body]));
    const submission = await client.nextReply("jobSubmission");
    const jobID = (submission.submission as { jobID: string }).jobID;

    const journal = new SqliteJournalBackend(store);
    await journal.open();
    const entries = await journal.scan("");
    await journal.close();
    await writeFile(release, "");
    await client.next((message) => message.reply === "jobNotification");
    client.close();
    await server.stop();

    const record = entries.find((entry) => entry.value.includes(jobID));
    expect(record, "journal entry of the job").to.not.equal(undefined);
    const job = JSON.parse(record!.value) as { id: string; type: string; data: unknown; user: string };
    expect(job.id).to.equal(jobID);
    expect(job.type).to.equal("gate");
    expect(job.user).to.equal("alice");
    expect(job.data).to.deep.equal(data);
    // The client's own layout of the payload, kept byte for byte, shows it was copied, not serialised again.
    expect(record!.value).to.include(layout);
  });
});
