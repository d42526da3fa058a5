import { expect } from "chai";
import { BesterError, toWireError } from "../../core/errors.js";
import { HandlerLinkError } from "../../plugins/handler-bridge/handler-connection.js";

describe("BesterError instanceof", () => {
  /** Builds an error shaped like a BesterError from a second copy of core/errors.ts. */
  function foreignError(): Error {
    const error = new Error("No handler for type x.");
    Object.assign(error, { [Symbol.for("bester-ng.BesterError")]: true, code: "noHandler", toWire: BesterError.prototype.toWire });
    return error;
  }

  it("recognises errors from another module copy", () => {
    expect(foreignError()).to.be.instanceOf(BesterError);
    expect(toWireError(foreignError())).to.deep.equal({ code: "noHandler", message: "No handler for type x." });
  });

  it("rejects plain errors and non-objects", () => {
    expect(new Error("x")).to.not.be.instanceOf(BesterError);
    expect(null).to.not.be.instanceOf(BesterError);
    expect("noHandler").to.not.be.instanceOf(BesterError);
  });

  it("keeps the prototype check for subclasses", () => {
    const link = new HandlerLinkError("handlerFailed", "The connection broke.");

    expect(link).to.be.instanceOf(BesterError);
    expect(link).to.be.instanceOf(HandlerLinkError);
    expect(new BesterError("handlerFailed", "x")).to.not.be.instanceOf(HandlerLinkError);
  });
});
