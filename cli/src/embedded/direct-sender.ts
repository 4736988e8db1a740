import { ProtocolError, type TileOutput } from "../../../common/src/mod.js";
import { type Coordinator, UnknownJobError } from "../../../coordinator/src/mod.js";
import { JobGoneError, ResultRejectedError, type ResultSender } from "../../../worker/src/mod.js";

/** The embedded default's result path: the worker calls the coordinator in the same process. */
export class DirectResultSender implements ResultSender {
  constructor(private readonly coordinator: Coordinator, private readonly workerId: string) {}

  async started(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }> {
    return this.coordinator.tileStarted(jobId, tileId, this.workerId, attempt);
  }

  async upload(jobId: string, tileId: string, attempt: number, output: TileOutput, computeSeconds: number): Promise<"stored" | "duplicate"> {
    try {
      return await this.coordinator.acceptResult({ jobId, tileId, attempt, workerId: this.workerId, output, computeSeconds });
    } catch (err) {
      if (err instanceof UnknownJobError) throw new JobGoneError(err.message);
      if (err instanceof ProtocolError) throw new ResultRejectedError(err.message);
      throw err;
    }
  }

  async failed(jobId: string, tileId: string, attempt: number, error: string, final: boolean): Promise<void> {
    this.coordinator.tileFailed(jobId, tileId, this.workerId, attempt, error, final);
  }

  async close(): Promise<void> {}
}
