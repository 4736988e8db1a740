/** The coordinator package's public entry. */

// jobs
export { DEFAULT_BATCH, DEFAULT_QUEUE, parseJobSpec } from "./jobs/job-spec.js";
export type { JobSpec, ScoringSettings, SelectionSpec, Stage } from "./jobs/job-spec.js";
export { ImpossibleTransitionError, TERMINAL_JOB_STATES, handleJobEvent, jobRate, newJob } from "./jobs/job-state.js";
export type { JobEffect, JobEvent, JobRecord, JobState, PlannedTile, TileRecord, TileState, WorkerTally } from "./jobs/job-state.js";

// planning
export { columnRows, tilePairCount } from "./plan/tile-spec.js";
export type { TileSpec } from "./plan/tile-spec.js";
export { DEFAULT_TILE_SHAPE, planDenseKernel, planSparseKernel } from "./plan/plan-tiles.js";
export type { DenseKernelRequest, SparseKernelRequest, TileShape } from "./plan/plan-tiles.js";
export { invertCandidates, withRandomColumns } from "./plan/candidates.js";
export type { CandidateSettings } from "./plan/candidates.js";
export { sampleKeys } from "./plan/sample-keys.js";
export { settingsKey } from "./plan/settings-key.js";
export { tileWork } from "./plan/tile-work.js";

// inputs
export { loadCorpus, loadJobSets, loadModelInputs } from "./inputs/load-inputs.js";
export type { ModelInputs } from "./inputs/load-inputs.js";
export { combineSets, resolveIdList } from "./inputs/sample-sets.js";
export type { SampleSets } from "./inputs/sample-sets.js";

// tile store and kernels
export { TileStore } from "./store/tile-store.js";
export type { PutOutcome } from "./store/tile-store.js";
export { TileConflictError } from "./store/errors.js";
export { assembleKernel } from "./kernel/assemble-kernel.js";
export type { AssembledKernel, KernelAxes } from "./kernel/assemble-kernel.js";

// selection runs and reports
export { columnMaxima, runSelection, valueHistogram } from "./select/run-selection.js";
export type { SelectionKernels, SelectionOutcome, SelectionSettings } from "./select/run-selection.js";
export { buildReport } from "./select/build-report.js";
export type { ReportContext, SelectedSample } from "./select/build-report.js";
export { SELECTION_FILES, writeSelection } from "./select/write-selection.js";
export type { SelectionRecords } from "./select/write-selection.js";
export { cosineKernel } from "./select/cosine-kernel.js";
export type { KernelSection, SelectionReport } from "./report/types.js";
export { renderReportHtml } from "./report/report-html.js";

// runtime
export { Coordinator } from "./runtime/coordinator.js";
export type { CoordinatorDeps, ResultUpload } from "./runtime/coordinator.js";
export { JobNotReadyError, UnknownJobError } from "./runtime/errors.js";
export { DEFAULT_MAX_TILE_TOKENS, kernelRequests, planJob, publishModel, workSpecFor } from "./runtime/plan-job.js";
export type { KernelRequest, PlannedJob } from "./runtime/plan-job.js";
export { assembleJobKernels, finishJob, seKernels } from "./runtime/finish-job.js";
export type { JobTimings, KernelFacts } from "./runtime/finish-job.js";
export { jobDir, listSavedJobs, resultDir, saveSpec, saveState } from "./runtime/job-files.js";
export type { SavedJobState } from "./runtime/job-files.js";
export { jobStatus } from "./runtime/job-status.js";
export { embedSamples } from "./runtime/embeddings.js";

// gRPC service
export { startGrpcServer } from "./rpc/grpc-server.js";
export type { GrpcServerOptions } from "./rpc/grpc-server.js";
