import { expect } from "chai";
import { createHooks } from "../../core/hooks.js";

describe("hooks isUsed", () => {
  it("is false for a hook without taps", () => {
    const hooks = createHooks();

    expect(hooks.onJobAccepted.isUsed()).to.equal(false);
    expect(hooks.onAuth.isUsed()).to.equal(false);
  });

  it("is true once a plugin taps the hook", () => {
    const hooks = createHooks();
    hooks.onJobAccepted.tap("test-plugin", () => undefined);

    expect(hooks.onJobAccepted.isUsed()).to.equal(true);
  });

  it("counts only taps on a hook map entry", () => {
    const hooks = createHooks();
    const untapped = hooks.onDirector.for("archive");
    hooks.onDirector.for("shelve").tap("test-plugin", () => "done");

    expect(untapped.isUsed()).to.equal(false);
    expect(hooks.onDirector.get("shelve")?.isUsed()).to.equal(true);
  });
});
