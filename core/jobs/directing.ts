// Carrying out a handler's reply: check its shape, let onHandlerOutput taps see it, check its
// director and hand it to the onDirector taps for that director type. Every failure becomes a
// coded error that the job's notification carries to the submitter.

import type { ErrorObject } from "ajv";
import type { Logger } from "pino";
import { BesterError, endSentence, isStoreUnavailable, isWireCode, type WireError, type WireErrorCode } from "../errors.js";
import type { BesterHooks, DirectorOutcome } from "../hooks.js";
import { compileSchema, describeSchemaError, DIRECTOR_SCHEMAS, HANDLER_REPLY_SCHEMA } from "../protocol/schemas.js";
import type { Director, HandlerOutput, Job } from "./job.js";

const validateHandlerReply = compileSchema<Record<string, unknown>>(HANDLER_REPLY_SCHEMA);
const directorValidators = new Map(Object.entries(DIRECTOR_SCHEMAS).map(([type, schema]) => [type, compileSchema(schema)]));

/** Validates the reply and runs its director; returns whether the job is done or continued. */
export async function runDirector(hooks: BesterHooks, job: Job, reply: Record<string, unknown>): Promise<DirectorOutcome> {
  if (!validateHandlerReply(reply)) {
    const problem = describeSchemaError(errorsOfIntendedForm(reply, validateHandlerReply.errors));
    throw coded("invalidHandlerOutput", `Handler "${job.type}" sent an invalid reply (${problem}). A reply is {"payload", "director"} or {"error": {"message"}}.`);
  }
  if ("error" in reply && !("director" in reply)) {
    const message = (reply.error as { message?: unknown }).message;
    const text = typeof message === "string" && message.trim() !== "" ? message.trim() : "no message given";
    // A handler's own message often ends its sentence already.
    throw coded("handlerFailed", `Handler "${job.type}" failed: ${endSentence(text)}`);
  }

  let output = reply as unknown as HandlerOutput;
  if (hooks.onHandlerOutput.isUsed()) {
    output = await hooks.onHandlerOutput.promise(output, job);
  }

  const director: Director = output.director;
  const directorType = director.type;
  const validate = directorValidators.get(directorType);
  if (validate && !validate(director)) {
    throw coded("invalidHandlerOutput", `Handler "${job.type}" sent an invalid ${directorType} director (${describeSchemaError(validate.errors)}).`);
  }

  const hook = hooks.onDirector.get(director.type);
  if (!hook?.isUsed()) {
    throw coded("unknownDirector", `Handler "${job.type}" named director type "${director.type}", which no plugin handles. Use userDelivery, handler or handoff, or add a plugin that taps onDirector for it.`);
  }
  const outcome = await hook.promise({ job, output, director });
  if (outcome === undefined) {
    const plugins = [...new Set(hook.taps.map((tap) => `"${tap.name}"`))].join(", ");
    throw coded("unknownDirector", `Handler "${job.type}" named director type "${director.type}", but every onDirector tap for it (plugin ${plugins}) returned undefined, so none carried it out. A tap that carries out the director returns "done" or "continued".`);
  }
  return outcome;
}

/**
 * Keeps the wire code a director or output tap chose, and reports any other failure as
 * `directorFailed`. A tap that throws a plain Error arrives wrapped as `pluginFailed`, a host-only
 * code that would otherwise reach the submitter as `internalError`.
 */
export function directingError(log: Logger, job: Job, error: unknown): WireError {
  // A store outage fails a job that already ran, so its submitter gets directorFailed rather than
  // storeUnavailable, whose message requests a retry. The log keeps the store's reason.
  const outage = isStoreUnavailable(error);
  if (outage) {
    log.warn({ err: error, jobId: job.id, type: job.type }, "carrying out the handler's output failed because the store is unreachable");
  }
  if (error instanceof BesterError && isWireCode(error.code) && error.code !== "storeUnavailable") {
    return error.toWire();
  }
  if (outage) {
    return { code: "directorFailed", message: `Carrying out the output of handler "${job.type}" failed because the server's store was unreachable. The server log has the details.` };
  }
  log.error({ err: error, jobId: job.id, type: job.type }, "carrying out the handler's output failed");
  const plugin = error instanceof BesterError && error.plugin ? ` in plugin "${error.plugin}"` : "";
  return { code: "directorFailed", message: `Carrying out the output of handler "${job.type}" failed${plugin}. The server log has the details.` };
}

function coded(code: WireErrorCode, message: string): BesterError {
  return new BesterError(code, message);
}

/**
 * Keeps the schema errors of the reply form the handler meant: the error form when the reply has
 * `error` and no `director`, the output form otherwise. Without this, `{"error": "text"}` would be
 * reported as a missing payload, the first form's complaint.
 */
function errorsOfIntendedForm(reply: Record<string, unknown>, errors: ErrorObject[] | null | undefined): ErrorObject[] {
  const meantError = "error" in reply && !("director" in reply);
  const all = errors ?? [];
  const intended = all.filter((error) => error.keyword !== "oneOf" && error.instancePath.startsWith("/error") === meantError);
  return intended.length > 0 ? intended : all;
}
