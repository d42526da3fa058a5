import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { shellScript } from "../../plugins/handler-bridge/shell-command.js";

describe("handler shell script (unit)", () => {
  const cases: Array<[string, string]> = [
    ["python3 h.py", "exec python3 h.py"],
    ["  python3 h.py --port 1", "  exec python3 h.py --port 1"],
    ["LANG=C.UTF-8 python3 h.py", "LANG=C.UTF-8 exec python3 h.py"],
    [`A="x y" B='z' prog`, `A="x y" B='z' exec prog`],
    ["A=$HOME/bin prog", "A=$HOME/bin exec prog"],
    ["cd handlers && python3 h.py", "cd handlers && python3 h.py"],
    ["prog | tee log", "prog | tee log"],
    ["prog; other", "prog; other"],
    ["A=$(date) prog", "A=$(date) prog"],
    ["A=x\\ y prog", "A=x\\ y prog"],
    ["exec prog", "exec prog"],
    ["A=1", "A=1"],
  ];
  for (const [command, script] of cases) {
    it(`runs ${JSON.stringify(command)} as ${JSON.stringify(script)}`, () => {
      expect(shellScript(command)).to.equal(script);
    });
  }

  it("runs the program in place of the shell", () => {
    // The program prints its parent's pid: with exec that is this process, not the outer shell.
    const output = execFileSync("/bin/sh", ["-c", shellScript(`GREETING=hi sh -c 'echo $PPID $GREETING'`)], { encoding: "utf8" });

    expect(output.trim()).to.equal(`${process.pid} hi`);
  });
});
