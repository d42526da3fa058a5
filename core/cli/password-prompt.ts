// Reads a password without echoing it on a terminal, or as the first line of piped stdin.

import readline from "node:readline";
import { BesterClientError } from "../../plugins/transport-tcp/client-error.js";

export async function readPassword(prompt: string): Promise<string> {
  const password = process.stdin.isTTY ? await promptHidden(prompt) : await readFirstLine();
  if (!password) {
    throw new BesterClientError("invalidArgument", "The password is empty. Type one at the prompt or pipe it into stdin.");
  }
  return password;
}

async function readFirstLine(): Promise<string> {
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  return "";
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve) => {
    const output = process.stderr;
    const lines = readline.createInterface({ input: process.stdin, output, terminal: true });
    // Replace the echo of typed characters with nothing, keeping the prompt itself visible.
    const write = (lines as unknown as { _writeToOutput: (text: string) => void })._writeToOutput;
    (lines as unknown as { _writeToOutput: (text: string) => void })._writeToOutput = (text: string) => {
      if (text.startsWith(prompt)) {
        write.call(lines, prompt);
      }
    };
    // Without a listener, readline only pauses on Ctrl-C, and the command would end with Node's
    // exit code 13 for an unsettled await. Ending on SIGINT gives the usual Ctrl-C exit instead.
    lines.on("SIGINT", () => {
      lines.close();
      output.write("\n");
      process.kill(process.pid, "SIGINT");
    });
    lines.question(prompt, (answer) => {
      lines.close();
      output.write("\n");
      resolve(answer);
    });
  });
}
