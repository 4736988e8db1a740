import type { JobStatusMessage, PhaseProgress } from "../../../common/src/mod.js";
import { jobRate, type JobRecord } from "../jobs/job-state.js";

/** The status a watcher sees (gRPC JobStatus, KV <job>.status). */
export function jobStatus(
  job: JobRecord,
  stage: string,
  now: number,
  finishedAt: number | null,
  traffic: { tileBytes: number; resultBytes: number } = { tileBytes: 0, resultBytes: 0 },
  phase: PhaseProgress | null = null,
): JobStatusMessage {
  const { pairsPerSecond, etaSeconds } = jobRate(job, now);
  return {
    jobId: job.id,
    state: job.state,
    tilesTotal: job.counts.tilesTotal,
    tilesDone: job.counts.tilesDone,
    tilesReused: job.counts.tilesReused,
    pairsTotal: job.counts.pairsTotal,
    pairsDone: job.counts.pairsDone,
    pairsPerSecond,
    etaSeconds,
    redeliveries: job.counts.redeliveries,
    workers: [...job.workers.entries()].map(([workerId, w]) => ({
      workerId,
      tiles: w.tiles,
      pairs: w.pairs,
      pairsPerSecond: w.seconds > 0 ? w.pairs / w.seconds : 0,
    })),
    error: job.error ?? "",
    elapsedSeconds: ((finishedAt ?? now) - job.createdAt) / 1000,
    stage,
    createdAt: new Date(job.createdAt).toISOString(),
    tileBytes: traffic.tileBytes,
    resultBytes: traffic.resultBytes,
    failedDuring: job.failedDuring ?? "",
    phase: phase ?? (job.state === "embedding" ? embeddingPhase(job, now, pairsPerSecond, etaSeconds) : null),
  };
}

/** The embeddings stage's progress: samples embedded by the workers' embed tiles. */
function embeddingPhase(job: JobRecord, now: number, rate: number, eta: number): PhaseProgress {
  return {
    name: "embeddings",
    step: "encoding on workers",
    done: job.counts.pairsDone,
    total: job.counts.pairsTotal,
    unit: "samples",
    elapsedSeconds: (now - job.createdAt) / 1000,
    rate,
    etaSeconds: eta,
  };
}
