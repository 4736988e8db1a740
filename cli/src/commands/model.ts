import { copyFile, readFile, stat, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { BUNDLE_FORMAT, type BundleManifest, ConfigError, ModelError, readManifest, sha256File, writeOutputDir } from "../../../common/src/mod.js";
import { inspectModel, prepareModelGraph } from "../../../worker/src/mod.js";
import { intOption, parseCommand, requireString } from "../args.js";

export const MODEL_HELP = `delift model prepare --model DIR --out DIR [--eos-id N --max-length N]

Prepares a model bundle for delift: appends log-softmax and a gather of the target tokens to the
decoder graph (by editing the ONNX file, weights copied byte for byte), so onnxruntime returns one
log-probability per position instead of full-vocabulary logits. Workers prepare unprepared
bundles in memory on load; preparing once on disk saves that, and is required for models whose
weights are in external data files (those are copied along).

DIR holds model.onnx (a Hugging Face optimum decoder export with KV cache) and tokenizer.json,
and either a delift manifest.json or, for a plain export, config.json (eos_token_id,
max_position_embeddings) or --eos-id and --max-length.`;

export async function modelCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "--help" || sub === "-h") {
    process.stdout.write(MODEL_HELP + "\n");
    return sub ? 0 : 2;
  }
  if (sub !== "prepare") throw new ConfigError(`delift model: unknown subcommand "${sub}" (expected prepare)`);
  const { values } = parseCommand("model prepare", rest, {
    model: { type: "string" },
    out: { type: "string" },
    "eos-id": { type: "string" },
    "max-length": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(MODEL_HELP + "\n");
    return 0;
  }
  const src = resolve(requireString(values.model, "model", "model prepare"));
  const out = resolve(requireString(values.out, "out", "model prepare"));
  if (src === out) throw new ConfigError("--out must differ from --model (the source bundle is never modified)");
  const manifest = await sourceManifest(src, intOption(values["eos-id"], "eos-id", 0), intOption(values["max-length"], "max-length", 8));
  const modelFile = join(src, manifest.files.model);
  const bytes = await readFile(modelFile).catch((err) => {
    throw new ModelError(`cannot read ${modelFile}: ${(err as Error).message}`);
  });
  const started = performance.now();
  const facts = inspectModel(bytes);
  const prepared = prepareModelGraph(bytes);
  const seconds = (performance.now() - started) / 1000;
  const external = facts.usesExternalData ? await externalDataFiles(src, modelFile) : [];
  const files = Object.values(manifest.files).filter((f): f is string => typeof f === "string");
  await writeOutputDir(out, [...files, "manifest.json", ...external], async (tmp) => {
    await writeFile(join(tmp, manifest.files.model), prepared);
    for (const f of files) if (f !== manifest.files.model) await copyFile(join(src, f), join(tmp, f));
    for (const f of external) await copyFile(join(src, f), join(tmp, f));
    const sha256: Record<string, string> = {};
    for (const f of files) sha256[f] = await sha256File(join(tmp, f));
    const next: BundleManifest = { ...manifest, prepared: true, sha256 };
    await writeFile(join(tmp, "manifest.json"), JSON.stringify(next, null, 1) + "\n");
  });
  process.stderr.write(
    facts.prepared
      ? `${modelFile} was already prepared; copied the bundle to ${out}\n`
      : `prepared ${basename(modelFile)} in ${seconds.toFixed(2)} s: output target_logprobs [batch, seq] replaces logits [batch, seq, vocab]; wrote ${out}\n`,
  );
  return 0;
}

async function sourceManifest(dir: string, eosId: number | undefined, maxLength: number | undefined): Promise<BundleManifest> {
  const hasManifest = await stat(join(dir, "manifest.json")).then(() => true, () => false);
  if (hasManifest) return readManifest(dir);
  const config = await readFile(join(dir, "config.json"), "utf8").then((t) => JSON.parse(t) as Record<string, unknown>, () => null);
  const eos = eosId ?? firstInt(config?.eos_token_id);
  const max = maxLength ?? firstInt(config?.max_position_embeddings);
  if (eos === undefined || max === undefined) {
    throw new ConfigError(`${dir} has no manifest.json; give --eos-id and --max-length (or a config.json with eos_token_id and max_position_embeddings)`);
  }
  return { format: BUNDLE_FORMAT, name: basename(dir), eosId: eos, maxLength: max, files: { model: "model.onnx", tokenizer: "tokenizer.json" } };
}

function firstInt(v: unknown): number | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return Number.isInteger(x) ? (x as number) : undefined;
}

/** Files next to the model that ONNX external data points at (by the usual naming conventions). */
async function externalDataFiles(dir: string, modelFile: string): Promise<string[]> {
  const candidates = [`${basename(modelFile)}.data`, `${basename(modelFile)}_data`, "model.onnx.data", "model.onnx_data"];
  const found: string[] = [];
  for (const c of new Set(candidates)) if (await stat(join(dir, c)).then(() => true, () => false)) found.push(c);
  if (found.length === 0) throw new ModelError(`${modelFile} uses external data, but no ${candidates[0]} file lies next to it`);
  return found;
}
