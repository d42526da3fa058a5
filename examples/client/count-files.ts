// An example client: counts the words of several files at once with the wordcount handler and
// prints one line per file. It shows BesterClient.run(), concurrent jobs on one connection and
// error handling by wire error code.
//
//   BESTER_PASSWORD=secret node --import tsx examples/client/count-files.ts --server 127.0.0.1:2222 --user alice README.md docs/*.md

import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { BesterClient, BesterClientError } from "../../index.js";

const { values, positionals: files } = parseArgs({
  options: { server: { type: "string", default: "127.0.0.1:2222" }, user: { type: "string" } },
  allowPositionals: true,
});
const password = process.env.BESTER_PASSWORD;
if (!values.user || !password || files.length === 0) {
  process.stderr.write("Usage: BESTER_PASSWORD=... count-files.ts --user NAME [--server host:port] FILE...\n");
  process.exit(1);
}

const separator = values.server.lastIndexOf(":");
const client = await BesterClient.connect({ host: values.server.slice(0, separator), port: Number(values.server.slice(separator + 1)) });
let exitCode = 0;
try {
  await client.auth(values.user, password);

  // One connection carries every job; each run() resolves when its own notification arrives.
  const results = await Promise.all(
    files.map(async (file) => {
      const result = await client.run("wordcount", await readFile(file, "utf8"));
      return { file, result };
    }),
  );

  for (const { file, result } of results) {
    if (result.notification.status === "failed") {
      exitCode = 2;
      process.stdout.write(`${file}: failed: ${result.notification.error?.message}\n`);
      continue;
    }
    const statistics = result.outputs[0]?.payload.data as { words: number; lines: number };
    const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`;
    process.stdout.write(`${file}: ${plural(statistics.words, "word")}, ${plural(statistics.lines, "line")}\n`);
  }
} catch (error) {
  if (error instanceof BesterClientError && error.code === "noHandler") {
    process.stderr.write(`The server has no wordcount handler: ${error.message}\n`);
  } else {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  }
  exitCode = 1;
} finally {
  await client.close();
}
process.exit(exitCode);
