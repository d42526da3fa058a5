import { expect } from "chai";
import { BesterError } from "../../core/errors.js";
import { validatePluginOptions } from "../../core/config/plugin-options.js";
import { fileSink } from "../../examples/plugins/file-sink.js";
import { websocketTransport } from "../../examples/plugins/websocket-transport.js";

const SCHEMA = {
  type: "object",
  required: ["folder"],
  additionalProperties: false,
  properties: { folder: { type: "string" }, retries: { type: "integer", minimum: 0 } },
};

/** Returns the BesterError that `create` throws. */
function errorOf(create: () => unknown): BesterError {
  try {
    create();
  } catch (error) {
    expect(error).to.be.instanceOf(BesterError);
    return error as BesterError;
  }
  throw new Error("The options were accepted.");
}

describe("plugin options (unit)", () => {
  it("accepts options that match", () => {
    expect(() => validatePluginOptions("sink", SCHEMA, { folder: "out", retries: 2 })).to.not.throw();
  });

  it("names a misspelt option", () => {
    const error = errorOf(() => validatePluginOptions("sink", SCHEMA, { folder: "out", retires: 2 }));

    expect(error.code).to.equal("invalidConfig");
    expect(error.message).to.equal('Invalid config in the options of plugin "sink": unknown key "retires". Remove it or check its spelling against the plugin\'s documentation.');
  });

  it("names a missing option", () => {
    const error = errorOf(() => validatePluginOptions("sink", SCHEMA, {}));

    expect(error.message).to.equal('Invalid config in the options of plugin "sink": missing key "folder". Add it, as the plugin\'s documentation describes.');
  });

  it("names a misspelt required option", () => {
    const error = errorOf(() => validatePluginOptions("sink", SCHEMA, { foldr: "out", retries: 2 }));

    expect(error.message).to.equal(
      'Invalid config in the options of plugin "sink": missing key "folder". Add it, as the plugin\'s documentation describes. The unknown key "foldr" may be a misspelling of it.',
    );
  });

  it("names a value of the wrong type", () => {
    const error = errorOf(() => validatePluginOptions("sink", SCHEMA, { folder: "out", retries: "2" }));

    expect(error.message).to.include('retries = "2" must be an integer');
  });

  it("checks the example plugins' options", () => {
    const sink = errorOf(() => fileSink({ foldr: "x" } as never));
    const transport = errorOf(() => websocketTransport({ pth: "/ws" } as never));

    expect(sink.message).to.include('plugin "example-file-sink": missing key "folder"');
    expect(transport.message).to.include('plugin "example-transport-websocket": unknown key "pth"');
  });
});
