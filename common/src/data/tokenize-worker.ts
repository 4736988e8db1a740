/**
 * Worker-thread entry of the streamed reader: loads the tokenizer once, then parses, validates and
 * tokenizes the batches the reader sends (see tokenize-batch.ts). Started by TokenizePool.
 */
import { parentPort, workerData } from "node:worker_threads";
import { loadReaderTokenizer } from "./reader-tokenizer.js";
import { tokenizeBatch, transferablesOf, type BatchInput } from "./tokenize-batch.js";
import type { BatchMode, WorkerInit, WorkerReply } from "./tokenize-pool.js";

const init = workerData as WorkerInit;
const port = parentPort!;
try {
  const tokenizer = await loadReaderTokenizer(init.tokenizerPath);
  port.postMessage({ type: "ready", vocabSize: tokenizer.vocabSize } satisfies WorkerReply);
  port.on("message", (m: { seq: number; input: BatchInput; mode: BatchMode }) => {
    try {
      const result = tokenizeBatch(m.input, { tokenizer, fields: init.fields, prompts: init.prompts, ...m.mode });
      port.postMessage({ type: "result", seq: m.seq, result } satisfies WorkerReply, transferablesOf(result));
    } catch (err) {
      port.postMessage({ type: "error", seq: m.seq, name: (err as Error).name, message: (err as Error).message } satisfies WorkerReply);
    }
  });
} catch (err) {
  port.postMessage({ type: "error", seq: -1, name: (err as Error).name, message: (err as Error).message } satisfies WorkerReply);
}
