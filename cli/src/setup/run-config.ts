import { readFile } from "node:fs/promises";
import {
  ConfigError,
  DEFAULT_FIELDS,
  DEFAULT_TEMPLATES,
  InputError,
  type FieldMap,
  type PromptTemplates,
} from "../../../common/src/mod.js";
import { DEFAULT_TILE_SHAPE, type TileShape } from "../../../coordinator/src/mod.js";
import type { BatchLimits, Device } from "../../../worker/src/mod.js";
import { choiceOption, intOption, type OptionSpec } from "../args.js";

/** Settings of a scoring run: from --config FILE (JSON), then flags on top. */
export type RunConfig = {
  fields: FieldMap;
  templates: PromptTemplates;
  /** Undefined: the model bundle's maxLength. */
  maxLength: number | undefined;
  batch: BatchLimits;
  tile: TileShape;
  device: Device;
  threads: number | undefined;
  skipInvalid: boolean;
};

export const RUN_OPTIONS: OptionSpec = {
  config: { type: "string" },
  "max-length": { type: "string" },
  device: { type: "string" },
  threads: { type: "string" },
  "batch-size": { type: "string" },
  "batch-tokens": { type: "string" },
  "tile-columns": { type: "string" },
  "tile-rows": { type: "string" },
  "skip-invalid": { type: "boolean" },
  "field-instruction": { type: "string" },
  "field-input": { type: "string" },
  "field-output": { type: "string" },
  "field-id": { type: "string" },
  "field-source": { type: "string" },
};

export const RUN_OPTIONS_HELP = `Scoring options:
  --config FILE          JSON settings (keys: fields, templates, maxLength, batch, tile, device, threads)
  --max-length N         prompts longer than N tokens are left-truncated (default: the model's maxLength)
  --device cpu|cuda      onnxruntime execution provider (default cpu)
  --threads N            onnxruntime intra-op threads (default: all cores)
  --batch-size N         continuations per model run (default 32)
  --batch-tokens N       padded tokens per model run; bounds memory (default 8192)
  --tile-columns N       example columns per tile (default ${DEFAULT_TILE_SHAPE.columns})
  --tile-rows N          targets per tile (default ${DEFAULT_TILE_SHAPE.rows})
  --skip-invalid         skip (and report) invalid records instead of failing
  --field-instruction/--field-input/--field-output/--field-id/--field-source NAME
                         record field names (default instruction, input, output, id, task)`;

export const DEFAULT_BATCH: BatchLimits = { maxBatch: 32, maxTokens: 8192 };

type Values = Record<string, string | boolean | undefined>;

export async function runConfig(values: Values): Promise<RunConfig> {
  const file = typeof values.config === "string" ? await readConfigFile(values.config) : {};
  const fromFile = (key: string) => file[key];
  const fileFields = (fromFile("fields") ?? {}) as Partial<FieldMap>;
  const fileTemplates = (fromFile("templates") ?? {}) as Partial<PromptTemplates>;
  const fileBatch = (fromFile("batch") ?? {}) as Partial<BatchLimits>;
  const fileTile = (fromFile("tile") ?? {}) as Partial<TileShape>;
  const str = (v: string | boolean | undefined) => (typeof v === "string" ? v : undefined);
  const fields: FieldMap = {
    ...DEFAULT_FIELDS,
    ...fileFields,
    ...defined({
      instruction: str(values["field-instruction"]),
      input: str(values["field-input"]),
      output: str(values["field-output"]),
      id: str(values["field-id"]),
      source: str(values["field-source"]),
    }),
  };
  return {
    fields,
    templates: { ...DEFAULT_TEMPLATES, ...fileTemplates },
    maxLength: intOption(values["max-length"], "max-length", 8) ?? (fromFile("maxLength") as number | undefined),
    batch: {
      maxBatch: intOption(values["batch-size"], "batch-size", 1, 4096) ?? fileBatch.maxBatch ?? DEFAULT_BATCH.maxBatch,
      maxTokens: intOption(values["batch-tokens"], "batch-tokens", 16) ?? fileBatch.maxTokens ?? DEFAULT_BATCH.maxTokens,
    },
    tile: {
      columns: intOption(values["tile-columns"], "tile-columns", 1, 65536) ?? fileTile.columns ?? DEFAULT_TILE_SHAPE.columns,
      rows: intOption(values["tile-rows"], "tile-rows", 1, 1 << 20) ?? fileTile.rows ?? DEFAULT_TILE_SHAPE.rows,
    },
    device: choiceOption(values.device, "device", ["cpu", "cuda"] as const) ?? (fromFile("device") as Device | undefined) ?? "cpu",
    threads: intOption(values.threads, "threads", 1, 1024) ?? (fromFile("threads") as number | undefined),
    skipInvalid: values["skip-invalid"] === true,
  };
}

const CONFIG_KEYS = new Set(["fields", "templates", "maxLength", "batch", "tile", "device", "threads"]);

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new InputError({ file: path }, `cannot read config: ${(err as Error).message}`);
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new InputError({ file: path }, "expected a JSON object");
  for (const key of Object.keys(value)) {
    if (!CONFIG_KEYS.has(key)) throw new InputError({ file: path, field: key }, `unknown setting; expected one of ${[...CONFIG_KEYS].join(", ")}`);
  }
  const v = value as Record<string, unknown>;
  for (const key of ["fields", "templates", "batch", "tile"]) {
    if (v[key] !== undefined && (typeof v[key] !== "object" || v[key] === null)) throw new InputError({ file: path, field: key }, "expected an object");
  }
  if (v.templates) {
    for (const [k, t] of Object.entries(v.templates as object)) {
      if (!["baseline", "example"].includes(k) || typeof t !== "string") {
        throw new InputError({ file: path, field: `templates.${k}` }, 'expected "baseline" or "example" with a template string');
      }
    }
  }
  return v;
}

function defined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function ensureMaxLength(requested: number | undefined, modelMax: number): number {
  if (requested === undefined) return modelMax;
  if (requested > modelMax) throw new ConfigError(`--max-length ${requested} exceeds the model's maximum length ${modelMax}`);
  return requested;
}
