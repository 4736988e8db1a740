export type { CausalLm, ContinuationBatch, KvCache, ModelLayout } from "./model/causal-lm.js";
export { loadOnnxCausalLm } from "./model/onnx-causal-lm.js";
export type { Device, OnnxModelOptions } from "./model/onnx-causal-lm.js";
export {
  inspectModel,
  prepareModelGraph,
  PREPARED_METADATA_KEY,
  TARGET_IDS_INPUT,
  TARGET_LOGPROBS_OUTPUT,
} from "./model/prepare-graph.js";
export type { GraphFacts } from "./model/prepare-graph.js";
export { TileEngine } from "./engine/tile-engine.js";
export type { TileHooks } from "./engine/tile-engine.js";
export { planBatches } from "../../common/src/tiles/batching.js";
export type { BatchLimits } from "../../common/src/tiles/types.js";
export { responseDistance } from "./engine/distance.js";
