import { expect } from "chai";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../core/config/loader.js";
import { BesterError } from "../../core/errors.js";

// Config files kept outside the project, as an operator's /etc or /srv folder would hold them.
describe("config file outside the project", () => {
  let folder: string;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-config-file-"));
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("loads a plain object export", async () => {
    const file = path.join(folder, "plain.config.ts");
    await writeFile(file, `export default { listen: { host: "127.0.0.1", port: 23999 }, store: "memory" };\n`);

    const config = await loadConfig({ file });

    expect(config.listen).to.deep.equal([{ host: "127.0.0.1", port: 23999 }]);
    expect(config.store).to.equal("memory");
  });

  it("explains an unresolvable bester-ng import", async () => {
    const file = path.join(folder, "imports.config.ts");
    await writeFile(file, `import { defineConfig } from "bester-ng";\n\nexport default defineConfig({ store: "memory" });\n`);

    const error = await loadConfig({ file }).then(
      () => undefined,
      (caught: unknown) => caught,
    );

    expect(error).to.be.instanceOf(BesterError);
    expect((error as BesterError).code).to.equal("invalidConfig");
    expect((error as BesterError).message).to.include(file);
    expect((error as BesterError).message).to.include('cannot import "bester-ng"');
    expect((error as BesterError).message).to.include("defineConfig only adds type checking");
  });
});
