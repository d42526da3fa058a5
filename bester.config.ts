// The configuration `npx bester start` uses in this repository: one server on 127.0.0.1:2222 with
// the example handlers, started as child processes. See docs/configuration.md for every key.

import { defineConfig } from "bester-ng";

const node = (script: string) => [process.execPath, "--import", "tsx", script];

export default defineConfig({
  listen: { host: "127.0.0.1", port: 2222 },
  store: "sqlite://./data/bester.sqlite",
  registration: true,
  handlers: {
    wordcount: { command: node("examples/handlers/wordcount.ts") },
    upper: { command: node("examples/handlers/upper.ts") },
    // A two-step chain: clean strips Markdown, then directs its output into wordcount.
    clean: { command: node("examples/handlers/clean.ts") },
    sha256: { command: ["python3", "examples/handlers/sha256.py"], connections: 2 },
  },
});
