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

describe("hooks result checks", () => {
  const job = { id: "j1", type: "echo", data: null, priority: 0, user: "alice", origin: "127.0.0.1:2222", notify: true, chainLength: 0, attempts: 0, acceptedAt: 0 };

  it("rejects an unknown director outcome", async () => {
    const hooks = createHooks();
    hooks.onDirector.for("archive").tapPromise("test-plugin", async () => "ok" as unknown as "done");

    const error = await hooks.onDirector
      .for("archive")
      .promise({ job, output: { payload: 1, director: { type: "archive" } }, director: { type: "archive" } })
      .then(() => undefined, (reason: unknown) => reason as Error);

    expect(error?.message).to.equal('Plugin "test-plugin" failed in hook onDirector.for("archive"): The tap returned "ok", but a tap of this hook returns "done", "continued" or undefined.');
  });

  it("rejects an auth decision without a user", async () => {
    const hooks = createHooks();
    hooks.onAuth.tap("test-plugin", () => ({ ok: true }) as unknown as { ok: true; user: string });

    const error = await hooks.onAuth
      .promise({ username: "alice", password: "pw", connection: {} as never })
      .then(() => undefined, (reason: unknown) => reason as Error);

    expect(error?.message).to.include('Plugin "test-plugin" failed in hook onAuth: The tap returned {"ok":true}');
  });

  it("rejects an auth failure with its own code", async () => {
    const hooks = createHooks();
    hooks.onAuth.tap("test-plugin", () => ({ ok: false, error: { code: "blocked", message: "Blocked." } }) as never);

    const error = await hooks.onAuth
      .promise({ username: "alice", password: "pw", connection: {} as never })
      .then(() => undefined, (reason: unknown) => reason as Error);

    expect(error?.message).to.include('The tap returned {"ok":false,"error":{"code":"blocked","message":"Blocked."}}');
    expect(error?.message).to.include("with a protocol error code such as invalidCredentials or notPermitted");
  });

  it("passes an auth failure with a protocol code", async () => {
    const hooks = createHooks();
    const decision = { ok: false as const, error: { code: "notPermitted" as const, message: "Blocked." } };
    hooks.onAuth.tap("test-plugin", () => decision);

    const result = await hooks.onAuth.promise({ username: "alice", password: "pw", connection: {} as never });

    expect(result).to.deep.equal(decision);
  });

  it("rejects a submitted job replaced by a string", async () => {
    const hooks = createHooks();
    hooks.onJobSubmit.tap("test-plugin", () => "not a job" as unknown as typeof job);

    const error = await hooks.onJobSubmit.promise(job).then(() => undefined, (reason: unknown) => reason as Error);

    expect(error?.message).to.include('The tap returned "not a job", but a tap of this hook returns the job it received, possibly changed.');
  });

  it("keeps the job when a waterfall tap returns nothing", async () => {
    const hooks = createHooks();
    hooks.onJobSubmit.tap("test-plugin", (submitted) => {
      submitted.priority = 7;
      return undefined as unknown as typeof job;
    });

    const result = await hooks.onJobSubmit.promise({ ...job });

    expect(result.priority).to.equal(7);
    expect(result.id).to.equal("j1");
  });
});
