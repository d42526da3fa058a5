import { expect } from "chai";
import { compileSchema, describeSchemaError, DIRECTOR_SCHEMAS, HANDLER_REPLY_SCHEMA, RequestValidators } from "../../core/protocol/schemas.js";

describe("message schemas", () => {
  const validators = new RequestValidators();

  it("accepts a minimal newJob", () => {
    expect(validators.validate("newJob", { request: "newJob", job: { payload: { type: "echo", data: null } } })).to.equal(undefined);
  });

  it("accepts a newJob with priority and tag", () => {
    const message = { request: "newJob", tag: "t1", job: { payload: { type: "echo", data: { any: ["json"] } }, priority: -7 } };

    expect(validators.validate("newJob", message)).to.equal(undefined);
  });

  const invalidJobs: Array<[string, Record<string, unknown>, string]> = [
    ["string priority", { payload: { type: "echo", data: 1 }, priority: "high" }, "/job/priority"],
    ["fractional priority", { payload: { type: "echo", data: 1 }, priority: 1.5 }, "/job/priority"],
    ["missing data", { payload: { type: "echo" } }, "/job/payload/data"],
    ["missing type", { payload: { data: 1 } }, "/job/payload/type"],
    ["type with '@'", { payload: { type: "echo@10.0.0.2:2222", data: 1 } }, "/job/payload/type"],
    ["empty type", { payload: { type: "", data: 1 } }, "/job/payload/type"],
    ["extra job field", { payload: { type: "echo", data: 1 }, colour: "red" }, "/job/colour"],
  ];
  for (const [name, job, field] of invalidJobs) {
    it(`newJob with ${name} names ${field}`, () => {
      const problem = validators.validate("newJob", { request: "newJob", job });

      expect(problem).to.be.a("string");
      expect(problem).to.include(field);
    });
  }

  it("newJob without job names /job", () => {
    expect(validators.validate("newJob", { request: "newJob" })).to.equal("/job is required");
  });

  it("auth needs username and password", () => {
    expect(validators.validate("auth", { request: "auth", account: { username: "a" } })).to.equal("/account/password is required");
    expect(validators.validate("auth", { request: "auth", account: { username: "a", password: "p" } })).to.equal(undefined);
  });

  it("tag must be a string", () => {
    expect(validators.validate("auth", { request: "auth", tag: 5, account: { username: "a", password: "p" } })).to.include("/tag");
  });

  it("only auth and register are public", () => {
    expect(validators.isPublic("auth")).to.equal(true);
    expect(validators.isPublic("register")).to.equal(true);
    expect(validators.isPublic("newJob")).to.equal(false);
  });

  it("lets plugins define request schemas", () => {
    const own = new RequestValidators();
    own.define("ping", { type: "object", required: ["request", "count"], properties: { request: { const: "ping" }, count: { type: "integer" } } }, { public: true });

    expect(own.has("ping")).to.equal(true);
    expect(own.isPublic("ping")).to.equal(true);
    expect(own.validate("ping", { request: "ping", count: "x" })).to.include("/count");
  });

  describe("handler reply", () => {
    const validate = compileSchema(HANDLER_REPLY_SCHEMA);

    it("accepts output with a director", () => {
      expect(validate({ payload: { n: 1 }, director: { type: "userDelivery", users: ["a"] } })).to.equal(true);
    });

    it("accepts an error reply", () => {
      expect(validate({ error: { message: "broken" } })).to.equal(true);
    });

    for (const [name, reply] of [
      ["no director", { payload: 1 }],
      ["director without type", { payload: 1, director: {} }],
      ["empty director type", { payload: 1, director: { type: "" } }],
      ["error that is a string", { error: "broken" }],
      ["array", []],
    ] as const) {
      it(`rejects ${name}`, () => {
        expect(validate(reply)).to.equal(false);
        expect(describeSchemaError(validate.errors)).to.be.a("string").and.not.empty;
      });
    }
  });

  describe("built-in directors", () => {
    const userDelivery = compileSchema(DIRECTOR_SCHEMAS.userDelivery!);
    const handler = compileSchema(DIRECTOR_SCHEMAS.handler!);
    const handoff = compileSchema(DIRECTOR_SCHEMAS.handoff!);

    it("userDelivery needs a users array of strings", () => {
      expect(userDelivery({ type: "userDelivery", users: ["a", "b@10.0.0.2:2222"] })).to.equal(true);
      expect(userDelivery({ type: "userDelivery" })).to.equal(false);
      expect(userDelivery({ type: "userDelivery", users: "a" })).to.equal(false);
      expect(userDelivery({ type: "userDelivery", users: [""] })).to.equal(false);
    });

    it("handler needs a handler name", () => {
      expect(handler({ type: "handler", handler: "wordcount" })).to.equal(true);
      expect(handler({ type: "handler" })).to.equal(false);
    });

    it("handoff needs type@host:port", () => {
      expect(handoff({ type: "handoff", handler: "wordcount@10.0.0.2:2222" })).to.equal(true);
      expect(handoff({ type: "handoff", handler: "wordcount" })).to.equal(false);
    });
  });
});
