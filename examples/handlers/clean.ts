// clean: the first step of the `clean -> wordcount` chain. It strips Markdown markup (code fences,
// links, emphasis, headings) and collapses whitespace, then feeds the plain text into wordcount
// with the handler director, so the statistics count prose rather than markup.

import { pipeTo, serveHandler } from "../../plugins/handler-bridge/serve-handler.js";
import { readTextPayload } from "./text-payload.js";

export function stripMarkdown(markdown: string): string {
  return markdown
    .replace(/```[\s\S]*?```/g, " ")
    .replace(/`[^`]*`/g, " ")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/^\s{0,3}(#{1,6}|>|[-*+]|\d+\.)\s+/gm, "")
    .replace(/[*_~|]/g, " ")
    .replace(/[ \t]+/g, " ")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

await serveHandler({ type: "clean" }, (payload, job, tools) => {
  const { text, recipients } = readTextPayload(payload, job);
  tools.progress({ step: "clean", characters: text.length });
  // The recipients travel with the text, so wordcount delivers where the submitter asked.
  return { payload: { text: stripMarkdown(text), deliverTo: recipients }, director: pipeTo("wordcount") };
});
