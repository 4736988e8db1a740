import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { InputError } from "../../../common/src/mod.js";
import { DEFAULT_TILE_SHAPE, type JobSpec, parseJobSpec } from "../../../coordinator/src/mod.js";
import type { OptionSpec } from "../args.js";

/** Flags shared by every command that defines a job (kernel, select, submit). */
export const JOB_OPTIONS: OptionSpec = {
  job: { type: "string" },
  config: { type: "string" },
  data: { type: "string" },
  model: { type: "string" },
  stage: { type: "string" },
  target: { type: "string" },
  "target-ids": { type: "string" },
  existing: { type: "string" },
  "existing-ids": { type: "string" },
  kernel: { type: "string" },
  embeddings: { type: "string" },
  budget: { type: "string" },
  optimizer: { type: "string" },
  epsilon: { type: "string" },
  seed: { type: "string" },
  scaling: { type: "string" },
  eta: { type: "string" },
  nu: { type: "string" },
  "kernel-type": { type: "string" },
  "save-kernel": { type: "boolean" },
  "compare-lazy": { type: "string" },
  "select-shards": { type: "string" },
  "select-memory": { type: "string" },
  "select-algorithm": { type: "string" },
  "max-length": { type: "string" },
  "batch-size": { type: "string" },
  "batch-tokens": { type: "string" },
  "tile-columns": { type: "string" },
  "tile-rows": { type: "string" },
  "embed-tile-tokens": { type: "string" },
  neighbors: { type: "string" },
  "random-columns": { type: "string" },
  "skip-invalid": { type: "boolean" },
  "field-instruction": { type: "string" },
  "field-input": { type: "string" },
  "field-output": { type: "string" },
  "field-id": { type: "string" },
  "field-source": { type: "string" },
  "ack-wait": { type: "string" },
  "max-deliver": { type: "string" },
};

export const SELECTION_HELP = `Selection:
  --data FILE            candidate samples V (JSONL, .jsonl.gz or Parquet)
  --model DIR            model bundle (manifest.json, model.onnx, tokenizer.json)
  --stage STAGE          instruction (FL, default) | task (FLMI with a target set) | continual (FLCG)
  --target FILE          task stage: the target set Q; or --target-ids FILE: ids of samples of --data
  --existing FILE        continual stage: the data already used E; or --existing-ids FILE: ids of samples of --data
                         (Q and E are never selected; id lists take those samples out of V)
  --budget B             a fraction (0.3), a percentage (30%) or a count (300) of V
  --optimizer NAME       stochastic (default) | lazy (exact)
  --epsilon E            stochastic greedy's epsilon (default 0.01)
  --seed N               seed of every random choice (default 0)
  --scaling NAME         min-max (default) | clip (max(UF, 0))
  --eta X / --nu X       FLMI / FLCG weights (default 1)
  --kernel-type T        utility (DELIFT, default) | se (DELIFT-SE: sentence-embedding cosine)
  --kernel DIR           reuse the V x V kernel "delift kernel" wrote for the same data and model
  --save-kernel          also write the V x V utility kernel into OUT/kernel/
  --compare-lazy WHEN    auto (default: when the kernel is small) | always | never: also run lazy greedy
                         and report the ratio of f(A)
  --select-shards N      distributed selection over N shards (on a cluster: hosted by the job's
                         workers; embedded: in this process); the picks are exactly lazy greedy's
  --select-memory BYTES  without --select-shards: select centrally while the kernel needs at most
                         BYTES of the coordinator's memory (default 4 GiB), else shard it
  --select-algorithm A   bands (default: exact, lazy greedy's picks) | partition (partition-and-merge,
                         for comparison)`;

export const SCORING_HELP = `Scoring:
  --config FILE          JSON scoring settings: {"fields", "templates", "maxLength", "batch", "tile", "skipInvalid"}
  --max-length N         prompts longer than N tokens are left-truncated (default: the model's maxLength)
  --batch-size N         continuations per model run (default 32)
  --batch-tokens N       padded tokens per model run; bounds memory (default 8192)
  --tile-columns N       example columns per tile (default ${DEFAULT_TILE_SHAPE.columns})
  --tile-rows N          targets per tile (default ${DEFAULT_TILE_SHAPE.rows})
  --embed-tile-tokens N  padded tokens per embedding tile, the SE kernel's encoder work on the
                         workers (default 32768; the vectors do not depend on it)
  --neighbors K          sparse mode: score each target against its K nearest samples only (cosine of
                         the bundle's encoder embeddings) instead of every sample: n x K pairs, not n^2
  --random-columns R     sparse mode: plus R random samples per target (seeded by --seed)
  --embeddings FILE      sentence embeddings of the --data records, in data order: .npy (float32 or
                         float16, shape [records, dim]) or Parquet (an id column and a list column);
                         the SE kernel's vectors and --neighbors' search space instead of the bundle's
                         encoder (with --kernel-type se the corpus is not tokenized at all)
  --skip-invalid         skip (and report) invalid records instead of failing
  --field-instruction/--field-input/--field-output/--field-id/--field-source NAME
                         record field names (default instruction, input, output, id, task)`;

type Values = Record<string, string | boolean | undefined>;

/**
 * Builds a job spec: a job file (--job, a whole spec) or a scoring config (--config), then flags
 * on top; relative paths are resolved here, since the coordinator needs absolute ones.
 */
export async function jobSpecFromFlags(values: Values, kind: "select" | "kernel"): Promise<JobSpec> {
  const base = typeof values.job === "string" ? await readJson(values.job) : {};
  const source = typeof values.job === "string" ? values.job : "command line";
  const raw: Record<string, unknown> = { kind, ...base };
  const selection = { ...((raw.selection as object) ?? {}) } as Record<string, unknown>;
  const scoring = { ...((raw.scoring as object) ?? {}), ...(typeof values.config === "string" ? await readJson(values.config) : {}) } as Record<string, unknown>;
  const queue = { ...((raw.queue as object) ?? {}) } as Record<string, unknown>;
  const str = (flag: string) => (typeof values[flag] === "string" ? (values[flag] as string) : undefined);
  const num = (flag: string) => (str(flag) === undefined ? undefined : toNumber(str(flag)!, flag));
  const setPath = (key: string, flag: string) => {
    if (str(flag) !== undefined) raw[key] = resolve(str(flag)!);
    else if (typeof raw[key] === "string") raw[key] = resolve(typeof values.job === "string" ? resolve(values.job, "..") : ".", raw[key] as string);
  };
  setPath("data", "data");
  setPath("model", "model");
  setPath("target", "target");
  setPath("targetIds", "target-ids");
  setPath("existing", "existing");
  setPath("existingIds", "existing-ids");
  setPath("kernel", "kernel");
  setPath("embeddings", "embeddings");
  assign(selection, {
    stage: str("stage"),
    budget: str("budget"),
    optimizer: str("optimizer"),
    epsilon: num("epsilon"),
    seed: num("seed"),
    scaling: str("scaling") === "clip" ? "clip-at-zero" : str("scaling"),
    eta: num("eta"),
    nu: num("nu"),
    kernelType: str("kernel-type"),
    compareLazy: str("compare-lazy"),
    shards: num("select-shards"),
    memory: num("select-memory"),
    algorithm: str("select-algorithm"),
  });
  const fields = { ...((scoring.fields as object) ?? {}) } as Record<string, unknown>;
  assign(fields, {
    instruction: str("field-instruction"),
    input: str("field-input"),
    output: str("field-output"),
    id: str("field-id"),
    source: str("field-source"),
  });
  scoring.fields = fields;
  const batch = { ...((scoring.batch as object) ?? {}) } as Record<string, unknown>;
  assign(batch, { maxBatch: num("batch-size"), maxTokens: num("batch-tokens") });
  scoring.batch = batch;
  const tile = { ...((scoring.tile as object) ?? {}) } as Record<string, unknown>;
  assign(tile, { columns: num("tile-columns"), rows: num("tile-rows") });
  scoring.tile = tile;
  assign(scoring, { embedTileTokens: num("embed-tile-tokens"), maxLength: num("max-length"), skipInvalid: values["skip-invalid"] === true ? true : undefined });
  if (str("neighbors") !== undefined || str("random-columns") !== undefined) {
    const cand = { ...((scoring.candidates as object) ?? {}) } as Record<string, unknown>;
    assign(cand, { neighbors: num("neighbors"), random: num("random-columns"), seed: num("seed") });
    scoring.candidates = cand;
  }
  assign(queue, { ackWaitSeconds: num("ack-wait"), maxDeliver: num("max-deliver") });
  if (values["save-kernel"] === true) raw.saveKernel = true;
  raw.selection = selection;
  raw.scoring = scoring;
  raw.queue = queue;
  return parseJobSpec(raw, source);
}

function assign(target: Record<string, unknown>, values: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(values)) if (v !== undefined) target[k] = v;
}

function toNumber(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) throw new InputError({ file: "command line", field: `--${flag}` }, `expected a number, got "${text}"`);
  return n;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new InputError({ file: path }, `cannot read JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new InputError({ file: path }, "expected a JSON object");
  return v as Record<string, unknown>;
}
