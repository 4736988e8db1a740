import { AbortedError, isAbortedError } from "../../../common/src/mod.js";
import type { JobEvent, TaskKind } from "../jobs/job-state.js";

/** What a running task knows about itself. */
export type TaskContext = { id: string; kind: TaskKind; jobId: string; signal: AbortSignal; startedAt: number };

/** The body of a task: does its work and returns the outcome event for the job's machine. */
export type TaskBody = (ctx: TaskContext) => Promise<JobEvent>;

type Running = { ctx: TaskContext; controller: AbortController; done: Promise<void> };

/**
 * Runs the tasks the job machines ask for. A task has an id (the machine's), a kind, its job, an
 * AbortController and a start time; whatever it ends with (its outcome, an error, an abort) goes
 * back to the machine as an event through `deliver`. The runner decides nothing itself.
 */
export class TaskRunner {
  private readonly running = new Map<string, Running>();
  private closed = false;

  constructor(private readonly deliver: (jobId: string, event: JobEvent) => void) {}

  start(jobId: string, id: string, kind: TaskKind, body: TaskBody, failure: { request?: string } = {}): void {
    const controller = new AbortController();
    const ctx: TaskContext = { id, kind, jobId, signal: controller.signal, startedAt: Date.now() };
    const key = `${jobId}/${id}`;
    const done = (async () => {
      await Promise.resolve();
      let event: JobEvent;
      try {
        controller.signal.throwIfAborted();
        event = await body(ctx);
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        event = { type: "task-failed", task: id, error: e.message, errorName: e.name, aborted: controller.signal.aborted || isAbortedError(e), ...(failure.request ? { request: failure.request } : {}) };
      } finally {
        this.running.delete(key);
      }
      if (!this.closed) this.deliver(jobId, event);
    })();
    this.running.set(key, { ctx, controller, done });
  }

  abort(jobId: string, id: string, reason = "aborted"): void {
    this.running.get(`${jobId}/${id}`)?.controller.abort(new AbortedError(reason));
  }

  /** Resolves once every task of the job (but `except`) has ended. */
  async settled(jobId: string, except?: string): Promise<void> {
    const mine = [...this.running.values()].filter((r) => r.ctx.jobId === jobId && r.ctx.id !== except);
    await Promise.all(mine.map((r) => r.done));
  }

  list(jobId?: string): TaskContext[] {
    return [...this.running.values()].map((r) => r.ctx).filter((c) => jobId === undefined || c.jobId === jobId);
  }

  /** Aborts every task and waits for them; their outcomes are not delivered any more. */
  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.running.values()) r.controller.abort(new AbortedError("the coordinator is stopping"));
    await Promise.all([...this.running.values()].map((r) => r.done));
  }
}
