/** Entry of a job's worker thread (see job-thread.ts): runs the operations the coordinator asks for. */
import { parentPort, workerData } from "node:worker_threads";
import { newThreadState, THREAD_OPS } from "./thread-ops.js";
import type { ThreadMessage } from "./job-thread.js";

const port = parentPort!;
const state = newThreadState(
  (workerData as { jobId: string }).jobId,
  (point) => port.postMessage({ kind: "hold", point } satisfies ThreadMessage),
  (progress) => port.postMessage({ kind: "progress", progress } satisfies ThreadMessage),
);

port.on("message", (m: { id: number; op: keyof typeof THREAD_OPS; input: never }) => {
  void (async () => {
    try {
      const { value, transfer } = await THREAD_OPS[m.op](state, m.input);
      port.postMessage({ kind: "result", id: m.id, ok: true, value } satisfies ThreadMessage, transfer ?? []);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      port.postMessage({ kind: "result", id: m.id, ok: false, error: { name: e.name, message: e.message, stack: e.stack } } satisfies ThreadMessage);
    }
  })();
});
