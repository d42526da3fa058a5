// Asks the operator on the terminal before a step that cannot be undone.

import readline from "node:readline";

/**
 * Writes `question` to stderr and reads one line from stdin, which must be a terminal. Resolves
 * true only for "y" or "yes" in any case, so an empty line declines.
 */
export function confirm(question: string): Promise<boolean> {
  return new Promise((resolve) => {
    const output = process.stderr;
    const lines = readline.createInterface({ input: process.stdin, output, terminal: true });
    // As in the password prompt: without a listener, readline only pauses on Ctrl-C and the command
    // would end with Node's exit code 13 for an unsettled await.
    lines.on("SIGINT", () => {
      lines.close();
      output.write("\n");
      process.kill(process.pid, "SIGINT");
    });
    let answered = false;
    lines.question(question, (answer) => {
      answered = true;
      lines.close();
      resolve(/^y(es)?$/i.test(answer.trim()));
    });
    // Ctrl-D closes the input without a reply, which declines like an empty line.
    lines.on("close", () => {
      if (!answered) {
        output.write("\n");
        resolve(false);
      }
    });
  });
}
