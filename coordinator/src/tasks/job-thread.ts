import { type TransferListItem, Worker } from "node:worker_threads";
import { AbortedError, type PhaseProgress } from "../../../common/src/mod.js";
import type { HoldPoint } from "./hold.js";
import type { ThreadOps } from "./thread-ops.js";

type OpValue<K extends keyof ThreadOps> = Awaited<ReturnType<ThreadOps[K]>>["value"];

type Pending = { resolve(v: unknown): void; reject(e: Error): void };

/** An error thrown in the job's thread, with its class name kept (callers branch on it). */
export class ThreadTaskError extends Error {
  constructor(name: string, message: string, readonly threadStack?: string) {
    super(message);
    this.name = name;
  }
}

export type ThreadMessage =
  | { kind: "result"; id: number; ok: true; value: unknown }
  | { kind: "result"; id: number; ok: false; error: { name: string; message: string; stack?: string } }
  | { kind: "hold"; point: HoldPoint }
  | { kind: "progress"; progress: PhaseProgress };

/**
 * A job's worker thread: its planned data (samples, tokens, tile plan, kernels) lives there, and the
 * CPU-heavy work runs there (planning with the neighbour search, tile encoding, kernel assembly,
 * selection, the report, writing outputs), so the coordinator's event loop stays free for
 * heartbeats, gRPC and status. Aborting a call terminates the thread (whatever it was doing stops);
 * releasing the job terminates it too, which frees all of the job's planned data at once.
 */
export class JobThread {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private ended: Error | null = null;

  constructor(private readonly jobId: string, private readonly onHold: (point: HoldPoint) => void, private readonly onProgress: (p: PhaseProgress) => void = () => undefined) {}

  call<K extends keyof ThreadOps>(op: K, input: Parameters<ThreadOps[K]>[1], o: { signal?: AbortSignal; transfer?: TransferListItem[] } = {}): Promise<OpValue<K>> {
    if (this.ended) return Promise.reject(this.ended);
    if (o.signal?.aborted) return Promise.reject(o.signal.reason instanceof Error ? o.signal.reason : new AbortedError());
    const worker = this.ensure();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        // Rejected once the thread has stopped, so the task's cleanup (staged kernel files) runs
        // after the thread's last write, never beside it.
        this.pending.delete(id);
        const reason = o.signal!.reason instanceof Error ? o.signal!.reason : new AbortedError();
        void this.terminate(new AbortedError(`job ${this.jobId}: its thread was stopped (a task was aborted)`)).finally(() => reject(reason));
      };
      o.signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, {
        resolve: (v) => {
          o.signal?.removeEventListener("abort", onAbort);
          resolve(v as OpValue<K>);
        },
        reject: (e) => {
          o.signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      worker.postMessage({ id, op, input }, o.transfer ?? []);
    });
  }

  get alive(): boolean {
    return this.worker !== null && this.ended === null;
  }

  /** Stops the thread; pending calls fail with `reason`. Later calls fail too. */
  async terminate(reason: Error = new AbortedError(`job ${this.jobId}: thread released`)): Promise<void> {
    if (!this.ended) this.ended = reason;
    const w = this.worker;
    this.worker = null;
    this.failAll(reason);
    if (w) await w.terminate();
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL("./job-thread-main.js", import.meta.url), { workerData: { jobId: this.jobId }, stdout: false, stderr: false });
    w.on("message", (m: ThreadMessage) => {
      if (m.kind === "hold") return this.onHold(m.point);
      if (m.kind === "progress") return this.onProgress(m.progress);
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new ThreadTaskError(m.error.name, m.error.message, m.error.stack));
    });
    w.on("error", (err) => this.stop(new ThreadTaskError("ThreadError", `job ${this.jobId}: its worker thread failed: ${err.message}`)));
    w.on("exit", (code) => this.stop(new ThreadTaskError("ThreadError", `job ${this.jobId}: its worker thread exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  private stop(err: Error): void {
    if (!this.ended) this.ended = err;
    this.worker = null;
    this.failAll(this.ended);
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
