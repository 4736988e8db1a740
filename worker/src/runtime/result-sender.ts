import type { TileOutput } from "../../../common/src/mod.js";

/** How a worker talks back to the coordinator: gRPC in a cluster, direct calls in the embedded default. */
export interface ResultSender {
  /** Says the tile started; `wanted: false` means drop it (job ended, tile already stored). */
  started(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }>;
  /** Resolves once the coordinator stored the result durably. */
  upload(jobId: string, tileId: string, attempt: number, output: TileOutput, computeSeconds: number): Promise<"stored" | "duplicate">;
  failed(jobId: string, tileId: string, attempt: number, error: string, final: boolean): Promise<void>;
  close(): Promise<void>;
}

/** The coordinator no longer knows or wants the job: drop its tiles for good. */
export class JobGoneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JobGoneError";
  }
}

/** The coordinator refused the result as invalid: retrying the same bytes cannot help. */
export class ResultRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ResultRejectedError";
  }
}
