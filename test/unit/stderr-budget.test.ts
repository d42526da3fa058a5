import { expect } from "chai";
import { StderrBudget } from "../../plugins/handler-bridge/stderr-budget.js";

describe("stderr budget (unit)", () => {
  it("warns up to the limit in a window", () => {
    const budget = new StderrBudget(3, 60_000, 0);

    const levels = [1, 2, 3, 4, 5].map((second) => budget.take(second * 1000).level);

    expect(levels).to.deep.equal(["warn", "warn", "lastWarn", "debug", "debug"]);
  });

  it("warns again once the window ended", () => {
    const budget = new StderrBudget(2, 60_000, 0);
    for (const at of [0, 10, 20, 30]) {
      budget.take(at);
    }

    const next = budget.take(60_000);
    const after = budget.take(60_001);

    expect(next).to.deep.equal({ level: "warn", ended: 2 });
    expect(after).to.deep.equal({ level: "lastWarn", ended: 0 });
  });

  it("reports no debug lines for a window within the limit", () => {
    const budget = new StderrBudget(5, 1000, 0);
    budget.take(100);

    expect(budget.take(5000)).to.deep.equal({ level: "warn", ended: 0 });
  });
});
