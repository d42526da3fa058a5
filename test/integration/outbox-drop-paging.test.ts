// `bester outbox drop` on SQLite next to a running server. @keyv/sqlite pages its iterator with
// LIMIT/OFFSET, so rows of another peer that the server deletes between two pages shift the rest.
// A single pass would then skip as many of the dropped peer's rows.

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import type Keyv from "keyv";
import { Outbox, OUTBOX_NAMESPACE } from "../../plugins/federation/outbox.js";
import { deleteStoredOutbox, listStoredOutboxes } from "../../plugins/federation/stored-outboxes.js";
import { createStoreProvider, openStore } from "../../plugins/store/index.js";

const DROPPED = "127.0.0.1:1002";
const LINKED = "127.0.0.1:1001";

describe("outbox drop next to acknowledgements", () => {
  let folder: string;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-outbox-paging-"));
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("deletes every message of the dropped peer", async () => {
    const store = `sqlite://${path.join(folder, "bester.sqlite")}`;
    // The "server": stores messages for both peers, interleaved as outputs arrive.
    const server = createStoreProvider(store);
    await openStore(server);
    const serverOutboxes = server.namespace(OUTBOX_NAMESPACE);
    const linked = new Outbox(serverOutboxes, LINKED);
    const dropped = new Outbox(serverOutboxes, DROPPED);
    await linked.load();
    await dropped.load();
    const linkedKeys: string[] = [];
    for (let n = 0; n < 300; n += 1) {
      const entry = await linked.append({ request: "jobOutputDelivery", n });
      linkedKeys.push(`${LINKED}#${String(entry.seq).padStart(12, "0")}`);
      await dropped.append({ request: "jobOutputDelivery", n });
    }

    // The "CLI": its own connection to the same file. After the first page the server receives
    // acknowledgements for the linked peer's oldest messages and deletes them, as a running server does.
    const cli = createStoreProvider(store);
    await openStore(cli);
    const cliOutboxes = cli.namespace(OUTBOX_NAMESPACE) as Keyv<unknown>;
    const iterate = cliOutboxes.iterator!.bind(cliOutboxes);
    cliOutboxes.iterator = async function* (...args: Parameters<typeof iterate>) {
      let seen = 0;
      for await (const item of iterate(...args)) {
        yield item;
        seen += 1;
        if (seen === 100) {
          await serverOutboxes.deleteMany(linkedKeys.slice(0, 100));
        }
      }
    } as typeof cliOutboxes.iterator;

    const count = await deleteStoredOutbox(cliOutboxes, DROPPED);
    const left = (await listStoredOutboxes(serverOutboxes)).find((outbox) => outbox.peer === DROPPED)?.messages ?? 0;
    await cli.close();
    await server.close();

    expect(count, "messages the drop reported").to.equal(300);
    expect(left, "messages of the dropped peer still stored").to.equal(0);
  });
});
