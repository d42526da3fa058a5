import { expect } from "chai";
import { createBester } from "../../core/config/builtins.js";
import { resolveConfig } from "../../core/config/schema.js";
import type { Bester } from "../../core/bester.js";
import { perInstance } from "../../core/plugin.js";
import { pino } from "pino";

async function bester(): Promise<Bester> {
  const config = resolveConfig({ store: "memory", listen: { host: "127.0.0.1", port: 0 } }, process.cwd());
  return createBester(config, { log: pino({ level: "silent" }) });
}

describe("perInstance", () => {
  it("returns one value per server", async () => {
    let created = 0;
    const lookup = perInstance(() => ({ number: ++created }));
    const [first, second] = [await bester(), await bester()];

    expect(lookup(first)).to.equal(lookup(first));
    expect(lookup(first).number).to.equal(1);
    expect(lookup(second).number).to.equal(2);
    expect(created).to.equal(2);
  });
});
