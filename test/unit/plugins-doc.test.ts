import { expect } from "chai";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { createHooks } from "../../core/hooks.js";
import { REPO_ROOT } from "../helper.js";

describe("plugins.md hook reference", () => {
  it("documents every core hook", async () => {
    const doc = await readFile(path.join(REPO_ROOT, "docs", "plugins.md"), "utf8");
    const reference = doc.slice(doc.indexOf("## Hook reference"), doc.indexOf("## Configuring a plugin"));
    const documented = [...reference.matchAll(/^\| `(\w+)` \|/gm)].map((match) => match[1]);

    for (const name of Object.keys(createHooks())) {
      expect(documented, `hook ${name} has no row in the hook reference of docs/plugins.md`).to.include(name);
    }
  });

  it("lists no hook that does not exist", async () => {
    const doc = await readFile(path.join(REPO_ROOT, "docs", "plugins.md"), "utf8");
    const reference = doc.slice(doc.indexOf("## Hook reference"), doc.indexOf("## Configuring a plugin"));
    const documented = [...reference.matchAll(/^\| `(\w+)` \|/gm)].map((match) => match[1]!);

    expect(Object.keys(createHooks())).to.include.members(documented);
  });
});
