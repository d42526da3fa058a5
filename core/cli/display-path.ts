// File paths as the CLI prints them: relative inside the working folder, where they are shorter, and
// absolute outside it, where a path such as ../../tmp/server.key is harder to read.

import path from "node:path";

/** Returns `file` relative to the working folder when it lies inside it, else `file` as an absolute path. */
export function displayPath(file: string): string {
  const absolute = path.resolve(file);
  const relative = path.relative(process.cwd(), absolute);
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : absolute;
}
