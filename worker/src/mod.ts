/** The worker package's public entry. */

// model
export type { CausalLm, ContinuationBatch, KvCache, ModelLayout } from "./model/causal-lm.js";
export { loadOnnxCausalLm } from "./model/onnx-causal-lm.js";
export type { Device, OnnxModelOptions } from "./model/onnx-causal-lm.js";
export { PREPARED_METADATA_KEY, TARGET_IDS_INPUT, TARGET_LOGPROBS_OUTPUT, inspectModel, prepareModelGraph } from "./model/prepare-graph.js";
export type { GraphFacts } from "./model/prepare-graph.js";

// tile engine
export { TileEngine } from "./engine/tile-engine.js";
export type { TileFed, TileHooks } from "./engine/tile-engine.js";
export { responseDistance } from "./engine/distance.js";

// runtime
export { WorkerLoop, WorkerRetiredError } from "./runtime/worker-loop.js";
export type { WorkerOptions } from "./runtime/worker-loop.js";
export { ModelCache, defaultModelCacheDir } from "./runtime/model-cache.js";
export { CorpusCache } from "./corpus/corpus-cache.js";
export type { CorpusCacheLimits } from "./corpus/corpus-cache.js";
export type { LoadedModel, ModelCacheLimits, ModelLease } from "./runtime/model-cache.js";
export type { FailureKindReport, ResultSender, UploadOutcome } from "./runtime/result-sender.js";
export { GrpcResultSender } from "./rpc/grpc-result-sender.js";
export type { GrpcSenderOptions } from "./rpc/grpc-result-sender.js";

// shared with the coordinator, re-exported for callers of the engine
export { planBatches } from "../../common/src/mod.js";
export type { BatchLimits } from "../../common/src/mod.js";

// distributed selection: shard hosts for the jobs that select on the cluster
export { ShardService } from "./select/shard-service.js";
export type { ShardServiceOptions } from "./select/shard-service.js";
