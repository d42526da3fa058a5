// The script that /bin/sh runs for a string handler command. A simple command, optionally after
// variable assignments (`LANG=C python3 h.py`), runs with `exec`, so the program replaces the
// shell: it is the daemon's child, as a handler that watches its parent process id expects, and
// its pid and exit status are the program's own. Anything else (`cd dir && prog`, pipes, lists)
// runs as written, and the shell stays as the program's parent.

/** Leading `NAME=value` words, with single-quoted, double-quoted or plain values. */
const ASSIGNMENTS = /^(\s*[A-Za-z_][A-Za-z0-9_]*=(?:'[^']*'|"(?:[^"\\]|\\.)*"|[^\s'"\\;&|<>()`]+)*)*\s*/;

/**
 * Characters that make a command more than one simple command. Checked on the whole string, even
 * inside quotes, so a command that merely quotes one of them runs without `exec`, which still works.
 */
const COMPOUND = /[;&|\n`(){}]|\$\(/;

/** Returns the script for `sh -c`: `command` with `exec` before its program when it is a simple command. */
export function shellScript(command: string): string {
  if (COMPOUND.test(command)) {
    return command;
  }
  const assignments = ASSIGNMENTS.exec(command)![0];
  const rest = command.slice(assignments.length);
  // An assignment the pattern could not read to its end, such as one with a backslash, is left to the shell.
  const unreadAssignment = assignments !== "" && !/\s$/.test(assignments);
  if (unreadAssignment || rest.trim() === "" || rest.startsWith("exec ")) {
    return command;
  }
  return `${assignments}exec ${rest}`;
}
