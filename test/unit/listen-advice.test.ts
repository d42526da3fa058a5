import { expect } from "chai";
import { listenAdvice } from "../../plugins/transport-tcp/listen-advice.js";

describe("listen failure advice", () => {
  const cases: Array<[string | undefined, string]> = [
    ["EADDRINUSE", "Another process uses the port: pick a free one in federation.listen, or stop the other process."],
    ["EACCES", "This user may not bind that port (ports below 1024 need extra privileges): pick a port of 1024 or more in federation.listen."],
    ["EADDRNOTAVAIL", "The host is not an address of this machine: set federation.listen to one of its addresses, such as 127.0.0.1 or 0.0.0.0."],
    ["ENOTFOUND", "The host is not an address of this machine: set federation.listen to one of its addresses, such as 127.0.0.1 or 0.0.0.0."],
    [undefined, "Check the host and port in federation.listen."],
  ];

  for (const [code, advice] of cases) {
    it(`names the setting for ${code ?? "no code"}`, () => {
      expect(listenAdvice(code, "federation.listen")).to.equal(advice);
    });
  }
});
