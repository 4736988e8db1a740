import { copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { type BundleManifest, ConfigError, exportManifest, externalDataFiles, ModelError, openBundle, readManifest, sha256File, writeOutputDir } from "../../../common/src/mod.js";
import { inspectModel, loadOnnxCausalLm, prepareModelGraph } from "../../../worker/src/mod.js";
import { holdAt } from "../../../coordinator/src/mod.js";
import { intOption, parseCommand, requireString } from "../args.js";
import { abortOnSignals } from "../setup/interrupt.js";

export const MODEL_HELP = `delift model prepare --model DIR --out DIR [--eos-id N --max-length N] [--skip-check]

Prepares a model bundle for delift by editing the decoder's ONNX graph (weights copied byte for
byte, external data files copied along):
  - a merged decoder (decoder_model_merged.onnx, use_cache_branch) keeps only its cache branch;
  - log-softmax and a gather of the target tokens are appended, so onnxruntime returns one
    log-probability per position instead of full-vocabulary logits;
  - the past_key_values inputs take one batch-1 prefix cache that the graph broadcasts to the
    batch, so a shared prefix crosses to the session (on a GPU: to the device) once per batch.
Workers prepare unprepared bundles in memory on load; preparing once on disk saves that work on
every worker and records every file's sha256 in manifest.json. The result is checked by loading it
and comparing cached continuations with whole prompts (--skip-check skips that).

DIR is a delift bundle (manifest.json) or a plain optimum export as optimum-cli writes it:
config.json, tokenizer.json, optional generation_config.json, and model.onnx,
decoder_model_merged.onnx or decoder_with_past_model.onnx (at the top or under onnx/), with or
without external data. The eos id comes from config.json (eos_token_id; the first of a list),
else generation_config.json, else tokenizer_config.json; the context length from
max_position_embeddings, n_positions, n_ctx or seq_length. --eos-id and --max-length override them.`;

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
    "skip-check": { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(MODEL_HELP + "\n");
    return 0;
  }
  const src = resolve(requireString(values.model, "model", "model prepare"));
  const out = resolve(requireString(values.out, "out", "model prepare"));
  if (src === out) throw new ConfigError("--out must differ from --model (the source bundle is never modified)");
  const eosId = intOption(values["eos-id"], "eos-id", 0);
  const maxLength = intOption(values["max-length"], "max-length", 8);
  const { manifest, sources } = await sourceManifest(src, eosId, maxLength);

  const modelFile = manifest.files.model;
  const bytes = await readFile(join(src, modelFile)).catch((err) => {
    throw new ModelError(`cannot read ${join(src, modelFile)}: ${(err as Error).message}`, { cause: err });
  });
  const started = performance.now();
  const before = inspectModel(bytes);
  const prepared = prepareModelGraph(bytes);
  const seconds = (performance.now() - started) / 1000;
  const named = Object.values(manifest.files).filter((f): f is string => typeof f === "string");
  const external = (await Promise.all(named.filter((f) => f.endsWith(".onnx")).map((f) => externalDataFiles(src, f)))).flat();
  const files = [...new Set([...named, ...external])].sort();
  const owned = [...new Set([...files, "manifest.json"].map((f) => f.split("/")[0]))];

  // Ctrl-C stops the writing (nothing reaches --out); DELIFT_HOLD_AT=writing holds here, a test hook.
  const interrupt = abortOnSignals();
  try {
    await writeOutputDir(out, owned, async (tmp) => {
      for (const f of files) {
        await mkdir(dirname(join(tmp, f)), { recursive: true });
        if (f === modelFile) await writeFile(join(tmp, f), prepared);
        else await copyFile(join(src, f), join(tmp, f));
      }
      const sha256: Record<string, string> = {};
      for (const f of files) sha256[f] = await sha256File(join(tmp, f));
      const { sha256: _old, prepared: _was, ...rest } = manifest;
      const next: BundleManifest = { ...rest, prepared: true, sha256, ...(Object.keys(sources).length > 0 ? { derivedFrom: sources } : {}) };
      await writeFile(join(tmp, "manifest.json"), JSON.stringify(next, null, 1) + "\n");
      if (values["skip-check"] !== true) await checkPrepared(tmp);
      await holdAt("writing", "model prepare", interrupt.signal);
      interrupt.signal.throwIfAborted();
    });
  } finally {
    interrupt.dispose();
  }

  const total = (await Promise.all(files.map((f) => stat(join(out, f)).then((s) => s.size)))).reduce((a, b) => a + b, 0);
  const steps = [
    before.mergedDecoder ? "kept the merged decoder's cache branch" : null,
    before.scoresTargets ? null : "target_logprobs [batch, seq] replaces logits [batch, seq, vocab]",
    before.broadcastsPast ? null : "past_key_values take a batch-1 prefix cache, broadcast in the graph",
  ].filter(Boolean);
  process.stderr.write(
    (steps.length === 0 ? `${modelFile} was already prepared; copied the bundle` : `prepared ${modelFile} in ${seconds.toFixed(2)} s: ${steps.join("; ")}`) +
      `\n  eos id ${manifest.eosId}${sources.eosId ? ` (${sources.eosId})` : ""}, max length ${manifest.maxLength}${sources.maxLength ? ` (${sources.maxLength})` : ""}` +
      `\n  ${files.length} files, ${(total / 1e6).toFixed(1)} MB${external.length > 0 ? ` (external data: ${external.join(", ")})` : ""}; wrote ${out}\n`,
  );
  return 0;
}

async function sourceManifest(dir: string, eosId: number | undefined, maxLength: number | undefined): Promise<{ manifest: BundleManifest; sources: Record<string, string> }> {
  const hasManifest = await stat(join(dir, "manifest.json")).then(() => true, () => false);
  if (!hasManifest) {
    const { manifest, sources } = await exportManifest(dir, { eosId, maxLength });
    return { manifest, sources };
  }
  const manifest = await readManifest(dir);
  const sources: Record<string, string> = {};
  if (eosId !== undefined) {
    manifest.eosId = eosId;
    sources.eosId = "--eos-id";
  }
  if (maxLength !== undefined) {
    manifest.maxLength = maxLength;
    sources.maxLength = "--max-length";
  }
  return { manifest, sources };
}

/** Opens the written bundle as a worker would and runs the load-time trial (cache path vs whole prompts). */
async function checkPrepared(dir: string): Promise<void> {
  const bundle = await openBundle(dir);
  const model = await loadOnnxCausalLm(bundle.modelPath, { padId: bundle.manifest.padId ?? bundle.manifest.eosId });
  await model.dispose();
}
