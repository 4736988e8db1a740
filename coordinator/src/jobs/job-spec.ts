import { isAbsolute } from "node:path";
import { type BatchLimits, DEFAULT_FIELDS, DEFAULT_TEMPLATES, type FieldMap, InputError, type PromptTemplates } from "../../../common/src/mod.js";
import { DEFAULT_TILE_SHAPE, type TileShape } from "../plan/plan-tiles.js";
import type { CandidateSettings } from "../plan/candidates.js";
import { EMBED_TILE_TOKENS } from "../runtime/embeddings.js";

export type Stage = "instruction" | "task" | "continual";

/** How prompts are built and scored: shared by every tile of a job. */
export type ScoringSettings = {
  fields: FieldMap;
  templates: PromptTemplates;
  /** null: the model bundle's maxLength. */
  maxLength: number | null;
  batch: BatchLimits;
  tile: TileShape;
  skipInvalid: boolean;
  /** Sparse mode: score each target against its candidates only (null: dense, every pair). */
  candidates: CandidateSettings | null;
  /** Padded tokens per embed tile (the SE kernel's embeddings, computed by workers). */
  embedTileTokens: number;
};

export type SelectionSpec = {
  stage: Stage;
  budget: string;
  optimizer: "stochastic" | "lazy";
  epsilon: number;
  seed: number;
  scaling: "min-max" | "clip-at-zero";
  eta: number;
  nu: number;
  kernelType: "utility" | "se";
  compareLazy: "auto" | "always" | "never";
  /** Distributed selection over this many shards (null: the choice rule decides, by `memory`). */
  shards: number | null;
  /** Bytes the coordinator may spend on a central selection; above it the selection is sharded (null: 4 GiB). */
  memory: number | null;
  /** The distributed algorithm: bands (exact, lazy greedy's picks) or partition (for comparison). */
  algorithm: "bands" | "partition";
};

/**
 * A job: what `delift submit` sends (as JSON) and what the embedded commands build from flags.
 * Paths are read by the coordinator, so they must be absolute.
 */
export type JobSpec = {
  kind: "select" | "kernel";
  data: string;
  model: string;
  target: string | null;
  targetIds: string | null;
  existing: string | null;
  existingIds: string | null;
  /** A V x V utility kernel written earlier ("delift kernel"), reused instead of scoring it again. */
  kernel: string | null;
  /**
   * Sentence embeddings given with the data (`--embeddings`, .npy or Parquet, rows of the data
   * file): the SE kernel's vectors and sparse mode's neighbour space, instead of the bundle's encoder.
   */
  embeddings: string | null;
  selection: SelectionSpec;
  scoring: ScoringSettings;
  queue: { ackWaitSeconds: number; maxDeliver: number; maxQueued: number };
  /** Also write the V x V utility kernel into the result. */
  saveKernel: boolean;
};

export const DEFAULT_BATCH: BatchLimits = { maxBatch: 32, maxTokens: 8192 };
export const DEFAULT_QUEUE = { ackWaitSeconds: 30, maxDeliver: 5, maxQueued: 256 };

const TOP_KEYS = ["kind", "data", "model", "target", "targetIds", "existing", "existingIds", "kernel", "embeddings", "selection", "scoring", "queue", "saveKernel"];

/** Validates a job spec (from a job file or a submit request), filling in every default. */
export function parseJobSpec(value: unknown, source: string): JobSpec {
  const at = (field: string) => ({ file: source, field });
  const obj = (v: unknown, field: string): Record<string, unknown> => {
    if (v === undefined) return {};
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new InputError(at(field), "expected an object");
    return v as Record<string, unknown>;
  };
  const root = obj(value, "(root)");
  for (const k of Object.keys(root)) if (!TOP_KEYS.includes(k)) throw new InputError(at(k), `unknown setting; expected one of ${TOP_KEYS.join(", ")}`);
  const str = (o: Record<string, unknown>, k: string, field: string, fallback?: string | null): string | null => {
    const v = o[k];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new InputError(at(field), "is required");
      return fallback;
    }
    if (typeof v !== "string" || v === "") throw new InputError(at(field), "expected a non-empty string");
    return v;
  };
  const path = (k: string, required: boolean): string | null => {
    const v = str(root, k, k, required ? undefined : null);
    if (v !== null && !isAbsolute(v)) throw new InputError(at(k), `expected an absolute path (the coordinator reads it), got "${v}"`);
    return v;
  };
  const num = (o: Record<string, unknown>, k: string, field: string, fallback: number, min: number, max: number, integer = false): number => {
    const v = o[k];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      throw new InputError(at(field), `expected ${integer ? "an integer" : "a number"} from ${min} to ${max}`);
    }
    return v;
  };
  const choice = <T extends string>(o: Record<string, unknown>, k: string, field: string, choices: readonly T[], fallback: T): T => {
    const v = o[k];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string" || !choices.includes(v as T)) throw new InputError(at(field), `expected one of ${choices.join(", ")}`);
    return v as T;
  };

  const sel = obj(root.selection, "selection");
  const stage = choice(sel, "stage", "selection.stage", ["instruction", "task", "continual"] as const, "instruction");
  const budgetRaw = sel.budget;
  const budget = typeof budgetRaw === "number" ? String(budgetRaw) : str(sel, "budget", "selection.budget", root.kind === "kernel" ? "1" : undefined)!;
  const selection: SelectionSpec = {
    stage,
    budget,
    optimizer: choice(sel, "optimizer", "selection.optimizer", ["stochastic", "lazy"] as const, "stochastic"),
    epsilon: num(sel, "epsilon", "selection.epsilon", 0.01, 1e-9, 0.999999),
    seed: num(sel, "seed", "selection.seed", 0, 0, 2 ** 32 - 1, true),
    scaling: choice(sel, "scaling", "selection.scaling", ["min-max", "clip-at-zero"] as const, "min-max"),
    eta: num(sel, "eta", "selection.eta", 1, 0, 1e6),
    nu: num(sel, "nu", "selection.nu", 1, 0, 1e6),
    kernelType: choice(sel, "kernelType", "selection.kernelType", ["utility", "se"] as const, "utility"),
    compareLazy: choice(sel, "compareLazy", "selection.compareLazy", ["auto", "always", "never"] as const, "auto"),
    shards: sel.shards === undefined || sel.shards === null ? null : num(sel, "shards", "selection.shards", 1, 1, 4096, true),
    memory: sel.memory === undefined || sel.memory === null ? null : num(sel, "memory", "selection.memory", 0, 1, Number.MAX_SAFE_INTEGER, true),
    algorithm: choice(sel, "algorithm", "selection.algorithm", ["bands", "partition"] as const, "bands"),
  };

  const sc = obj(root.scoring, "scoring");
  const fields = obj(sc.fields, "scoring.fields");
  for (const [k, v] of Object.entries(fields)) {
    if (!Object.hasOwn(DEFAULT_FIELDS, k) || typeof v !== "string" || v === "") throw new InputError(at(`scoring.fields.${k}`), `expected a field name for one of ${Object.keys(DEFAULT_FIELDS).join(", ")}`);
  }
  const templates = obj(sc.templates, "scoring.templates");
  for (const [k, v] of Object.entries(templates)) {
    if (!["baseline", "example"].includes(k) || typeof v !== "string") throw new InputError(at(`scoring.templates.${k}`), 'expected "baseline" or "example" with a template string');
  }
  const batch = obj(sc.batch, "scoring.batch");
  const tile = obj(sc.tile, "scoring.tile");
  const maxLength = sc.maxLength === undefined || sc.maxLength === null ? null : num(sc, "maxLength", "scoring.maxLength", 0, 8, 1 << 20, true);
  const scoring: ScoringSettings = {
    fields: { ...DEFAULT_FIELDS, ...(fields as Partial<FieldMap>) },
    templates: { ...DEFAULT_TEMPLATES, ...(templates as Partial<PromptTemplates>) },
    maxLength,
    batch: {
      maxBatch: num(batch, "maxBatch", "scoring.batch.maxBatch", DEFAULT_BATCH.maxBatch, 1, 4096, true),
      maxTokens: num(batch, "maxTokens", "scoring.batch.maxTokens", DEFAULT_BATCH.maxTokens, 16, 1 << 24, true),
      runCostTokens: num(batch, "runCostTokens", "scoring.batch.runCostTokens", 64, 0, 1 << 20),
    },
    tile: {
      columns: num(tile, "columns", "scoring.tile.columns", DEFAULT_TILE_SHAPE.columns, 1, 65536, true),
      rows: num(tile, "rows", "scoring.tile.rows", DEFAULT_TILE_SHAPE.rows, 1, 1 << 20, true),
    },
    skipInvalid: sc.skipInvalid === true,
    candidates: null,
    embedTileTokens: num(sc, "embedTileTokens", "scoring.embedTileTokens", EMBED_TILE_TOKENS, 16, 1 << 22, true),
  };
  if (sc.candidates !== undefined && sc.candidates !== null) {
    const cand = obj(sc.candidates, "scoring.candidates");
    scoring.candidates = {
      neighbors: num(cand, "neighbors", "scoring.candidates.neighbors", 32, 1, 100_000, true),
      random: num(cand, "random", "scoring.candidates.random", 0, 0, 100_000, true),
      seed: num(cand, "seed", "scoring.candidates.seed", 0, 0, 2 ** 32 - 1, true),
    };
  }
  const q = obj(root.queue, "queue");
  const spec: JobSpec = {
    kind: choice(root, "kind", "kind", ["select", "kernel"] as const, "select"),
    data: path("data", true)!,
    model: path("model", true)!,
    target: path("target", false),
    targetIds: path("targetIds", false),
    existing: path("existing", false),
    existingIds: path("existingIds", false),
    kernel: path("kernel", false),
    embeddings: path("embeddings", false),
    selection,
    scoring,
    queue: {
      ackWaitSeconds: num(q, "ackWaitSeconds", "queue.ackWaitSeconds", DEFAULT_QUEUE.ackWaitSeconds, 1, 3600),
      maxDeliver: num(q, "maxDeliver", "queue.maxDeliver", DEFAULT_QUEUE.maxDeliver, 1, 100, true),
      maxQueued: num(q, "maxQueued", "queue.maxQueued", DEFAULT_QUEUE.maxQueued, 1, 1 << 20, true),
    },
    saveKernel: root.saveKernel === true,
  };
  checkStage(spec, source);
  return spec;
}

function checkStage(spec: JobSpec, source: string): void {
  const fail = (field: string, why: string) => {
    throw new InputError({ file: source, field }, why);
  };
  const stage = spec.selection.stage;
  if (spec.target && spec.targetIds) fail("target", "give target or targetIds, not both");
  if (spec.existing && spec.existingIds) fail("existing", "give existing or existingIds, not both");
  if (spec.kind === "select" && stage === "task" && !spec.target && !spec.targetIds) fail("target", "stage task needs a target set (target or targetIds)");
  if (spec.kind === "select" && stage === "continual" && !spec.existing && !spec.existingIds) fail("existing", "stage continual needs the data already used (existing or existingIds)");
  if (stage !== "task" && (spec.target || spec.targetIds)) fail("target", "belongs to stage task");
  if (stage !== "continual" && (spec.existing || spec.existingIds)) fail("existing", "belongs to stage continual");
  if (spec.kind === "kernel" && stage !== "instruction") fail("selection.stage", "a kernel job computes the V x V kernel only");
  if (spec.kernel && (spec.kind === "kernel" || spec.selection.kernelType === "se")) fail("kernel", "a kernel to reuse belongs to a selection with the utility kernel");
  if (spec.embeddings) {
    const se = spec.kind === "select" && spec.selection.kernelType === "se";
    if (!se && !spec.scoring.candidates) {
      fail("embeddings", "given embeddings serve the SE kernel (kernelType se) or sparse mode's neighbour search (scoring.candidates, --neighbors K); this job uses neither");
    }
    if (spec.target) fail("embeddings", "given embeddings cover the data file only: give the target set as ids of samples of the data (targetIds, --target-ids)");
    if (spec.existing) fail("embeddings", "given embeddings cover the data file only: give the data already used as ids of samples of the data (existingIds, --existing-ids)");
  }
}
