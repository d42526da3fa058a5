// wordcount: text statistics of a document. Send the text as the job's data (a string), or
// {"text": "...", "deliverTo": ["alice", "bob@host:port"]} to send the statistics to other users.

import { deliverTo, serveHandler } from "../../plugins/handler-bridge/serve-handler.js";
import { readTextPayload } from "./text-payload.js";

const TOP_WORDS = 10;

export interface TextStatistics {
  characters: number;
  lines: number;
  words: number;
  uniqueWords: number;
  topWords: Array<{ word: string; count: number }>;
}

export function countWords(text: string): TextStatistics {
  const words = text.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}'_-]*/gu) ?? [];
  const counts = new Map<string, number>();
  for (const word of words) {
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }

  const topWords = [...counts]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, TOP_WORDS)
    .map(([word, count]) => ({ word, count }));
  const lines = text.length === 0 ? 0 : text.split(/\r\n|\r|\n/).length - (text.endsWith("\n") ? 1 : 0);

  return { characters: [...text].length, lines, words: words.length, uniqueWords: counts.size, topWords };
}

await serveHandler({ type: "wordcount" }, (payload, job) => {
  const { text, recipients } = readTextPayload(payload, job);
  return { payload: countWords(text), director: deliverTo(recipients) };
});
