/** The coordinator package's public entry. */

// jobs
export { DEFAULT_BATCH, DEFAULT_QUEUE, parseJobSpec } from "./jobs/job-spec.js";
export type { JobSpec, ScoringSettings, SelectionSpec, Stage } from "./jobs/job-spec.js";
export { ImpossibleTransitionError, LIVE_JOB_STATES, TERMINAL_JOB_STATES, jobRate, newJob } from "./jobs/job-state.js";
export type {
  Change,
  FailureKind,
  FailureReply,
  Instruction,
  JobCounts,
  JobEvent,
  JobEventType,
  JobRecord,
  JobSettings,
  JobState,
  PlannedTile,
  Reply,
  StartedReply,
  Stimulus,
  StoreOutcome,
  TaskKind,
  TaskStart,
  TileRecord,
  TileState,
  UploadReply,
  WorkerTally,
} from "./jobs/job-state.js";
export { MAX_LOST, handleStimulus } from "./jobs/machine.js";
export type { Outcome } from "./jobs/machine.js";
export { formatStoryEntry, parseStory, replayStory, storyEntries } from "./jobs/story.js";
export type { StoryChange, StoryEntry, StoryHead, StoryStimulus } from "./jobs/story.js";

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
export { maxAbsDifference, readStoredTile, TileStore } from "./store/tile-store.js";
export type { PutOrCompare, PutOutcome } from "./store/tile-store.js";
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
export { Coordinator, DEFAULT_CONFLICT_TOLERANCE } from "./runtime/coordinator.js";
export type { CoordinatorDeps, ResultUpload } from "./runtime/coordinator.js";
export { CoordinatorUnavailableError, InvalidRequestError, JobStateError, UnknownJobError } from "./runtime/errors.js";
export { readStory, StoryLog } from "./runtime/story-log.js";
export { acquireCoordinatorLease, COORDINATOR_LEASE_KEY, dataDirIdentity, LeaseError } from "./runtime/lease.js";
export type { LeaseHandle, LeaseOptions } from "./runtime/lease.js";
export { DEFAULT_MAX_TILE_TOKENS, kernelRequests, planJob, publishModel, workSpecFor } from "./runtime/plan-job.js";
export type { KernelRequest, PlannedJob } from "./runtime/plan-job.js";
export { assembleJobKernels, finishJob, seKernels, selectJob, writeKernelJob, writeSelectedJob } from "./runtime/finish-job.js";
export type { JobTimings, KernelFacts, SelectedJob } from "./runtime/finish-job.js";
export { atomicWrite, jobDir, listSavedJobs, resultDir, saveKey, saveSpec, saveState, storyPath } from "./runtime/job-files.js";
export type { SavedJob, SavedJobState } from "./runtime/job-files.js";

// tasks
export { TaskRunner } from "./tasks/task-runner.js";
export type { TaskBody, TaskContext } from "./tasks/task-runner.js";
export { JobThread, ThreadTaskError } from "./tasks/job-thread.js";
export { announceHold, HOLD_POINTS, holdAt, holdRequested, holds } from "./tasks/hold.js";
export type { HoldPoint } from "./tasks/hold.js";
export { describePlan } from "./tasks/thread-ops.js";
export type { PlanDescription, PlanResult } from "./tasks/thread-ops.js";
export { jobStatus } from "./runtime/job-status.js";
export { embedSamples } from "./runtime/embeddings.js";

// gRPC service
export { startGrpcServer } from "./rpc/grpc-server.js";
export type { GrpcServerOptions } from "./rpc/grpc-server.js";

// metrics
export { JobMetrics } from "./metrics/job-metrics.js";
export type { JobMetricsOptions, QueueDepth } from "./metrics/job-metrics.js";
