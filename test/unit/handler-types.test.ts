// Type checks of the handler SDK's director types. Each `@ts-expect-error` line must fail to
// compile, so `npm run typecheck` (which includes test/) fails when the director types loosen
// again. The runtime asserts show that the accepted replies are the objects the daemon expects.

import { expect } from "chai";
import {
  deliverTo,
  handOff,
  pipeTo,
  type Director,
  type HandlerFunction,
  type HandlerJob,
  type HandlerReply,
  type HandlerTools,
  type PluginDirector,
  type serveHandler,
} from "../../index.js";
import type { FileSinkDirector } from "../../examples/plugins/file-sink.js";

const job: HandlerJob = { jobID: "j1", type: "upper", from: "alice@127.0.0.1:2222", priority: 0 };
const tools: HandlerTools = { progress: () => undefined, signal: new AbortController().signal };

/** Calls a handler function and returns its reply, awaited. */
async function replyOf<Custom extends { type: string }>(handle: HandlerFunction<Custom>, payload: unknown): Promise<HandlerReply<Custom>> {
  return handle(payload, job, tools);
}

describe("handler SDK director types", () => {
  it("built-in directors check their options", async () => {
    const users: HandlerFunction = (payload) => ({ payload, director: { type: "userDelivery", users: ["bob"] } });
    // @ts-expect-error userDelivery takes `users`, not `user`.
    const misspeltOption: HandlerFunction = (payload) => ({ payload, director: { type: "userDelivery", user: ["bob"] } });
    // @ts-expect-error `users` is an array of names.
    const notArray: HandlerFunction = (payload) => ({ payload, director: { type: "userDelivery", users: "bob" } });
    // @ts-expect-error "handof" is no built-in director, and no plugin director is named.
    const misspeltType: HandlerFunction = (payload) => ({ payload, director: { type: "handof", handler: "x@h:1" } });

    expect((await replyOf(users, 1)).director).to.deep.equal({ type: "userDelivery", users: ["bob"] });
    expect((await replyOf(misspeltOption, 1)).director.type).to.equal("userDelivery");
    expect((await replyOf(notArray, 1)).director.type).to.equal("userDelivery");
    expect((await replyOf(misspeltType, 1)).director.type).to.equal("handof");
  });

  it("helpers build built-in directors", async () => {
    const viaHelpers: HandlerFunction = async (payload: { next?: string; peer?: string }, context) => {
      if (payload.next) {
        return { payload, director: pipeTo(payload.next) };
      }
      if (payload.peer) {
        return { payload, director: handOff(payload.peer) };
      }
      return { payload, director: deliverTo(context.from) };
    };
    const general: Director = deliverTo(["bob", "carol@10.0.0.2:2222"]);

    expect((await replyOf(viaHelpers, { next: "wordcount" })).director).to.deep.equal({ type: "handler", handler: "wordcount" });
    expect((await replyOf(viaHelpers, { peer: "upper@10.0.0.2:2222" })).director).to.deep.equal({ type: "handoff", handler: "upper@10.0.0.2:2222" });
    expect((await replyOf(viaHelpers, {})).director).to.deep.equal({ type: "userDelivery", users: [job.from] });
    expect(general.users).to.deep.equal(["bob", "carol@10.0.0.2:2222"]);
  });

  it("named plugin director is checked", async () => {
    const sink: HandlerFunction<FileSinkDirector> = (payload) => ({ payload, director: { type: "fileSink", path: "out.jsonl" } });
    const builtinToo: HandlerFunction<FileSinkDirector> = (payload) => ({ payload, director: deliverTo("bob") });
    // @ts-expect-error fileSink takes `path`.
    const misspeltPath: HandlerFunction<FileSinkDirector> = (payload) => ({ payload, director: { type: "fileSink", file: "out.jsonl" } });
    // @ts-expect-error naming a plugin director leaves the built-ins checked.
    const misspeltBuiltin: HandlerFunction<FileSinkDirector> = (payload) => ({ payload, director: { type: "userDelivery", user: ["bob"] } });

    expect((await replyOf(sink, 1)).director).to.deep.equal({ type: "fileSink", path: "out.jsonl" });
    expect((await replyOf(builtinToo, 1)).director.type).to.equal("userDelivery");
    expect((await replyOf(misspeltPath, 1)).director.type).to.equal("fileSink");
    expect((await replyOf(misspeltBuiltin, 1)).director.type).to.equal("userDelivery");
  });

  it("plugin director accepts any shape", async () => {
    const anyPlugin: HandlerFunction<PluginDirector> = (payload) => ({ payload, director: { type: "team", name: "ops" } });

    expect((await replyOf(anyPlugin, 1)).director).to.deep.equal({ type: "team", name: "ops" });
  });

  it("serveHandler infers no plugin director", () => {
    /** Uses serveHandler's signature at the type level only. It is never called, so no socket opens. */
    function signatures(serve: typeof serveHandler): void {
      // @ts-expect-error without a named plugin director, only the built-ins compile.
      void serve({ type: "upper" }, (payload: string) => ({ payload, director: { type: "userDelivery", user: ["bob"] } }));
      // @ts-expect-error an unnamed plugin director is not inferred from the reply either.
      void serve({ type: "upper" }, (payload: string) => ({ payload, director: { type: "fileSink", path: "out.jsonl" } }));
      void serve<FileSinkDirector>({ type: "upper" }, (payload: string) => ({ payload, director: { type: "fileSink", path: "out.jsonl" } }));
      void serve({ type: "upper" }, (payload: string, context) => ({ payload, director: deliverTo(context.from) }));
    }

    expect(signatures).to.be.a("function");
  });
});
