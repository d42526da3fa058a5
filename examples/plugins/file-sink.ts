// fileSink: an example third-party director. A handler that replies with
// {"director": {"type": "fileSink", "path": "results/today.jsonl"}} gets its output appended to that
// file as one JSON line. Paths are relative to a folder set in the config. A path that leads
// outside it, directly or through a symbolic link, fails the job with directorFailed.

import { constants } from "node:fs";
import { mkdir, open, realpath } from "node:fs/promises";
import path from "node:path";
import { BesterError, validatePluginOptions, type Bester, type BesterPlugin } from "../../index.js";

export const PLUGIN_NAME = "example-file-sink";

/** The director type handlers name to use this plugin. */
export const DIRECTOR_TYPE = "fileSink";

/** The director a handler replies with, for `serveHandler<FileSinkDirector>(...)`. */
export interface FileSinkDirector {
  type: typeof DIRECTOR_TYPE;
  /** File to append to, relative to the plugin's `folder` option. */
  path: string;
}

export interface FileSinkOptions {
  /** Folder that every sink file must be inside; a relative folder resolves against the config file's folder. */
  folder: string;
}

/** One line of a sink file. */
export interface FileSinkLine {
  /** `<jobID>:<user>@<server>`, as in jobOutput. */
  jobID: string;
  /** Handler type that produced the output. */
  type: string;
  data: unknown;
  /** ISO 8601 time the line was written. */
  writtenAt: string;
}

const OPTIONS_SCHEMA = {
  type: "object",
  required: ["folder"],
  additionalProperties: false,
  properties: { folder: { type: "string", minLength: 1 } },
};

export function fileSink(options: FileSinkOptions): BesterPlugin {
  // Checked when the config is loaded, so a misspelt option stops start-up with its name.
  validatePluginOptions<FileSinkOptions>(PLUGIN_NAME, OPTIONS_SCHEMA, options);
  return {
    name: PLUGIN_NAME,
    apply(bester: Bester) {
      const log = bester.logFor(PLUGIN_NAME);
      const folder = path.resolve(bester.config.root, options.folder);
      // Appends to one file run one after another, so lines from concurrent jobs never interleave.
      const queues = new Map<string, Promise<void>>();

      bester.hooks.initialize.tapPromise(PLUGIN_NAME, async () => {
        await mkdir(folder, { recursive: true });
        log.info({ folder }, "file sink ready");
      });

      bester.hooks.onDirector.for(DIRECTOR_TYPE).tapPromise(PLUGIN_NAME, async ({ job, output, director }) => {
        const file = await resolveInside(folder, director.path);
        const message = bester.engine.outputMessage(job, output) as { job: { jobID: string } };
        const line: FileSinkLine = { jobID: message.job.jobID, type: job.type, data: output.payload, writtenAt: new Date().toISOString() };

        const previous = queues.get(file) ?? Promise.resolve();
        const append = previous.then(() => appendLine(file, `${JSON.stringify(line)}\n`));
        const settled = append.catch(() => undefined);
        queues.set(file, settled);
        void settled.then(() => {
          if (queues.get(file) === settled) {
            queues.delete(file);
          }
        });

        await append;
        return "done";
      });
    },
  };
}

/** Resolves the director's `path` inside `folder`; throws directorFailed for anything else. */
async function resolveInside(folder: string, requested: unknown): Promise<string> {
  if (typeof requested !== "string" || requested.length === 0 || requested.includes("\0")) {
    throw new BesterError("directorFailed", `The fileSink director needs "path", a non-empty relative file path; got ${JSON.stringify(requested)}.`);
  }
  const file = path.resolve(folder, requested);
  const relative = path.relative(folder, file);
  if (path.isAbsolute(requested) || relative === "" || relative.startsWith("..") || path.isAbsolute(relative)) {
    throw new BesterError("directorFailed", `The fileSink path "${requested}" is outside the sink folder ${folder}. Use a relative path such as "results.jsonl".`);
  }

  // A symbolic link among the parent folders could still lead outside, so compare real paths.
  const parent = path.dirname(file);
  await mkdir(parent, { recursive: true });
  const realFolder = await realpath(folder);
  const realParent = await realpath(parent);
  if (realParent !== realFolder && !realParent.startsWith(`${realFolder}${path.sep}`)) {
    throw new BesterError("directorFailed", `The fileSink path "${requested}" leads outside the sink folder ${folder} through a symbolic link.`);
  }
  return file;
}

/** Appends one line; O_NOFOLLOW makes a symbolic link in place of the file itself fail. */
async function appendLine(file: string, text: string): Promise<void> {
  let handle;
  try {
    handle = await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ELOOP" ? "it is a symbolic link" : code ?? String(error);
    throw new BesterError("directorFailed", `Opening the fileSink file ${file} failed (${reason}).`, { cause: error });
  }
  try {
    await handle.appendFile(text, "utf8");
  } finally {
    await handle.close();
  }
}
