import { Worker } from "node:worker_threads";
import { ModelError } from "../errors.js";
import type { TokenizedPrompts } from "../prompt/tokenized-prompt.js";
import type { BatchInput, BatchResult } from "./tokenize-batch.js";
import type { FieldMap } from "./types.js";

export type WorkerInit = { tokenizerPath: string; fields: FieldMap; prompts: TokenizedPrompts | null };

/** Per batch: tokenize (false once the read is known to fail: only validation is still needed), two-byte ids. */
export type BatchMode = { tokenize: boolean; narrow: boolean };

export type WorkerReply =
  | { type: "ready"; vocabSize: number }
  | { type: "result"; seq: number; result: BatchResult }
  | { type: "error"; seq: number; name: string; message: string };

type Waiting = { seq: number; input: BatchInput; mode: BatchMode; resolve(r: BatchResult): void; reject(e: Error): void };

/**
 * Worker threads that tokenize batches. `run` queues a batch and resolves with its result; the
 * reader keeps a bounded number in flight and merges results in submission order.
 */
export class TokenizePool {
  private readonly idle: Worker[] = [];
  private readonly queue: Waiting[] = [];
  private readonly busy = new Map<Worker, Waiting>();
  private closed = false;

  private constructor(private readonly workers: Worker[]) {}

  static async start(threads: number, init: WorkerInit): Promise<TokenizePool> {
    const url = new URL("./tokenize-worker.js", import.meta.url);
    const workers = Array.from({ length: threads }, () => new Worker(url, { workerData: init }));
    const pool = new TokenizePool(workers);
    try {
      await Promise.all(workers.map((w) => pool.ready(w)));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Vocabulary size the threads' tokenizer reported. */
  vocabSize = 0;

  run(seq: number, input: BatchInput, mode: BatchMode): Promise<BatchResult> {
    if (this.closed) return Promise.reject(new Error("tokenizer pool is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ seq, input, mode, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = new Error("tokenizer pool closed");
    for (const w of this.queue.splice(0)) w.reject(stopped);
    for (const w of this.busy.values()) w.reject(stopped);
    this.busy.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private ready(worker: Worker): Promise<void> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: WorkerReply) => {
        worker.off("error", onError);
        if (m.type === "ready") {
          this.vocabSize = m.vocabSize;
          worker.on("message", (r: WorkerReply) => this.onReply(worker, r));
          worker.on("error", (err) => this.onCrash(worker, err));
          this.idle.push(worker);
          resolve();
        } else if (m.type === "error") {
          reject(new ModelError(m.message));
        }
      };
      const onError = (err: Error) => reject(err);
      worker.once("message", onMessage);
      worker.once("error", onError);
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.busy.set(worker, job);
      const transfer = job.input.kind === "lines" ? [job.input.bytes.buffer as ArrayBuffer] : [];
      worker.postMessage({ seq: job.seq, input: job.input, mode: job.mode }, transfer);
    }
  }

  private onReply(worker: Worker, reply: WorkerReply): void {
    const job = this.busy.get(worker);
    if (!job) return;
    this.busy.delete(worker);
    this.idle.push(worker);
    if (reply.type === "result") job.resolve(reply.result);
    else if (reply.type === "error") {
      const err = new Error(reply.message);
      err.name = reply.name;
      job.reject(err);
    }
    this.dispatch();
  }

  private onCrash(worker: Worker, err: Error): void {
    const job = this.busy.get(worker);
    this.busy.delete(worker);
    job?.reject(new Error(`tokenizer thread failed: ${err.message}`, { cause: err }));
    void this.close();
  }
}
