import { clientErrorOf, type TileOutput } from "../../../common/src/mod.js";
import type { Coordinator } from "../../../coordinator/src/mod.js";
import type { FailureKindReport, ResultSender, UploadOutcome } from "../../../worker/src/mod.js";

/**
 * The embedded default's result path: the worker calls the coordinator in the same process. Errors
 * go through the same mapping as gRPC (statusOf, then errorOf), so the worker loop sees exactly
 * what a cluster worker would.
 */
export class DirectResultSender implements ResultSender {
  constructor(private readonly coordinator: Coordinator, private readonly workerId: string) {}

  jobKey(jobId: string): Promise<Uint8Array> {
    return this.call(() => this.coordinator.jobKey(jobId));
  }

  started(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }> {
    return this.call(() => this.coordinator.tileStarted(jobId, tileId, this.workerId, attempt));
  }

  progress(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }> {
    return this.call(() => this.coordinator.tileProgress(jobId, tileId, this.workerId, attempt));
  }

  upload(jobId: string, tileId: string, attempt: number, mac: string, output: TileOutput, computeSeconds: number): Promise<UploadOutcome> {
    return this.call(() => this.coordinator.acceptResult({ jobId, tileId, attempt, workerId: this.workerId, mac, output, computeSeconds }));
  }

  failed(jobId: string, tileId: string, attempt: number, error: string, kind: FailureKindReport): Promise<{ action: "retry" | "drop" }> {
    return this.call(() => this.coordinator.tileFailed(jobId, tileId, this.workerId, attempt, error, kind));
  }

  async close(): Promise<void> {}

  private async call<T>(fn: () => Promise<T> | T): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw clientErrorOf(err);
    }
  }
}
