// A progress spinner on stderr that degrades to plain lines where a spinner cannot work.

import type { Ora } from "ora";

export interface Progress {
  step(text: string): void;
  succeed(text: string): void;
  fail(text: string): void;
}

/**
 * Uses ora only when stderr is a terminal with a known width: ora 9 loops forever on a terminal
 * that reports 0 columns. Elsewhere (pipes, CI) each step prints as one line. ora is imported only
 * when used, which saves about 50 ms of start-up for a command run in a script.
 */
export async function createProgress(quiet = false): Promise<Progress> {
  const stream = process.stderr;
  if (!quiet && stream.isTTY && (stream.columns ?? 0) > 0) {
    const { default: ora } = await import("ora");
    // ora's default discardStdin puts the terminal in raw mode, where Ctrl-C sends no SIGINT, so
    // a command waiting for a job or a server could not be interrupted.
    const spinner: Ora = ora({ stream, discardStdin: false }).start();
    return {
      step: (text) => {
        spinner.text = text;
      },
      succeed: (text) => spinner.succeed(text),
      fail: (text) => spinner.fail(text),
    };
  }
  return {
    step: (text) => {
      if (!quiet) {
        stream.write(`${text}...\n`);
      }
    },
    succeed: (text) => stream.write(`${text}\n`),
    fail: (text) => stream.write(`${text}\n`),
  };
}
