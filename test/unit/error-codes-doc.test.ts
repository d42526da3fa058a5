import { readFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "chai";
import { WIRE_ERROR_CODES } from "../../core/errors.js";
import { REPO_ROOT } from "../helper.js";

/** Codes named in the first column of the "Error codes" table of docs/protocol.md. */
async function documentedCodes(): Promise<string[]> {
  const text = await readFile(path.join(REPO_ROOT, "docs", "protocol.md"), "utf8");
  const section = text.split(/^## Error codes$/m)[1];
  if (section === undefined) {
    throw new Error('docs/protocol.md has no "## Error codes" section');
  }
  const body = section.split(/^## /m)[0]!;
  return [...body.matchAll(/^\|\s*`([A-Za-z]+)`\s*\|/gm)].map((match) => match[1]!);
}

describe("error codes in docs/protocol.md", () => {
  it("documents every wire error code", async () => {
    const documented = new Set(await documentedCodes());

    const missing = Object.keys(WIRE_ERROR_CODES).filter((code) => !documented.has(code));
    expect(missing, "wire codes missing from the Error codes table").to.deep.equal([]);
  });

  it("documents no code the server lacks", async () => {
    const documented = await documentedCodes();

    const unknown = documented.filter((code) => !Object.hasOwn(WIRE_ERROR_CODES, code));
    expect(unknown, "codes in the table that core/errors.ts does not define").to.deep.equal([]);
  });
});
