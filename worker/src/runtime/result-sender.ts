import type { TileOutput } from "../../../common/src/mod.js";

export type UploadOutcome = "stored" | "duplicate" | "gone" | "conflict";
export type FailureKindReport = "tile" | "model" | "health";

/**
 * How a worker talks to the coordinator: gRPC in a cluster, direct calls in the embedded default.
 * Both throw the same classes (common rpc/errors.ts): UnknownJobError (the job is gone: drop its
 * tiles), InvalidRequestError (refused: retrying cannot help), CoordinatorUnavailableError (retry
 * later), UnauthenticatedError (this worker's token is wrong).
 */
export interface ResultSender {
  /** The job's tile key (for checking tile messages), over the authenticated channel only. */
  jobKey(jobId: string): Promise<Uint8Array>;
  /** Says the tile started; `wanted: false` means drop it (job ended, tile already stored). */
  started(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }>;
  /** Says the tile is still being computed (the coordinator's lease on it); `wanted: false`: stop. */
  progress(jobId: string, tileId: string, attempt: number): Promise<{ wanted: boolean }>;
  /** Resolves once the coordinator decided: stored durably, a duplicate, no longer wanted, or a conflict. */
  upload(jobId: string, tileId: string, attempt: number, mac: string, output: TileOutput, computeSeconds: number): Promise<UploadOutcome>;
  /** Reports a failure; the coordinator says whether to retry the message (nak) or drop it (term). */
  failed(jobId: string, tileId: string, attempt: number, error: string, kind: FailureKindReport): Promise<{ action: "retry" | "drop" }>;
  close(): Promise<void>;
}
