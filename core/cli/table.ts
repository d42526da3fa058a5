// Plain-text tables for the CLI: columns padded to their widest cell, numbers right-aligned.

export type Cell = string | number | boolean | null | undefined;

/** Formats rows as a table with a header line; an empty row list prints "(none)". */
export function formatTable(columns: string[], rows: Cell[][]): string {
  if (rows.length === 0) {
    return "(none)\n";
  }
  const text = rows.map((row) => row.map((cell) => (cell === null || cell === undefined ? "-" : String(cell))));
  const numeric = columns.map((_, index) => rows.every((row) => typeof row[index] === "number"));
  const widths = columns.map((column, index) => Math.max(column.length, ...text.map((row) => row[index]?.length ?? 0)));

  const line = (cells: string[]) =>
    cells
      .map((cell, index) => (numeric[index] ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!)))
      .join("  ")
      .trimEnd();
  return [line(columns), ...text.map(line)].join("\n") + "\n";
}

/** Formats seconds as e.g. "2d 3h 04m 05s", leaving out leading zero units. */
export function formatDuration(totalSeconds: number): string {
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  const two = (value: number) => String(value).padStart(2, "0");

  if (days > 0) {
    return `${days}d ${hours}h ${two(minutes)}m ${two(seconds)}s`;
  }
  if (hours > 0) {
    return `${hours}h ${two(minutes)}m ${two(seconds)}s`;
  }
  if (minutes > 0) {
    return `${minutes}m ${two(seconds)}s`;
  }
  return `${seconds}s`;
}
