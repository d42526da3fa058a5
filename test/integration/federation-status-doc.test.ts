import { readFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "chai";
import type { ServerStatus } from "../../core/status.js";
import { REPO_ROOT, type TestServer } from "../helper.js";
import { planServers, startPlanned, waitForLinkUp, type Plan, type PlannedServer } from "../federation-helper.js";

/** Reads the peer rows of the status example in docs/protocol.md. */
async function documentedPeerRows(): Promise<Array<Record<string, unknown>>> {
  const doc = await readFile(path.join(REPO_ROOT, "docs", "protocol.md"), "utf8");
  const match = /"sections":\{"peers":\{"title":"Peer links","rows":(\[.*?\])\}/.exec(doc);
  expect(match, "docs/protocol.md has a status example with a peers section").to.not.equal(null);
  return JSON.parse(match![1]!) as Array<Record<string, unknown>>;
}

describe("status peer table in protocol.md", function () {
  this.timeout(30_000);

  let plan: Plan;
  const servers: TestServer[] = [];

  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await plan.cleanup();
  });

  it("matches a linked server's row", async () => {
    plan = await planServers(2);
    const [planA, planB] = plan.servers as [PlannedServer, PlannedServer];
    const a = await startPlanned(planA, [planB]);
    servers.push(a);
    servers.push(await startPlanned(planB, [planA]));
    await waitForLinkUp(a, planB.name);

    const status = await a.bester.hooks.onStatus.promise({ sections: {} } as unknown as ServerStatus);
    const [actual] = status.sections.peers!.rows;
    const [documented] = await documentedPeerRows();

    // The example's peer name is made up, and every other field matches an idle link that is up.
    expect({ ...documented, peer: planB.name }).to.deep.equal(actual);
  });
});
