import { stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { ModelError } from "../errors.js";
import { sha256File, sha256Hex } from "../util/hash.js";
import { findDecoderFile } from "./decoder-file.js";
import { readExportSettings } from "./export-config.js";
import { externalDataFiles } from "./external-data.js";
import { BUNDLE_FORMAT, readManifest, type BundleManifest } from "./manifest.js";

export type ModelBundle = {
  dir: string;
  /** manifest.json, or for a plain export the manifest delift derives from its config files. */
  manifest: BundleManifest;
  /** "manifest": described by manifest.json; "export": a plain optimum export read from config.json. */
  source: "manifest" | "export";
  modelPath: string;
  tokenizerPath: string;
  encoderPath: string | undefined;
  /**
   * Every file the bundle loads, relative to dir and sorted: the decoder, the external data files
   * its tensors name, the tokenizer, the encoder (and its data), the config files of an export.
   */
  files: string[];
  /** Content hash over every file in `files`: identifies the model everywhere (tile keys, kernel reuse). */
  hash: string;
  fileHashes: Record<string, string>;
};

/**
 * Opens a bundle directory: a delift bundle (manifest.json) or a plain optimum export
 * (config.json, tokenizer.json, optional generation_config.json). Checks that every file the model
 * loads is there and matches the manifest's sha256 entries, and hashes them all. Every problem is
 * a ModelError: it is the bundle's, the same on every machine.
 */
export async function openBundle(dir: string): Promise<ModelBundle> {
  const root = resolve(dir);
  const hasManifest = await stat(join(root, "manifest.json")).then(() => true, () => false);
  const { manifest, configFiles } = hasManifest ? { manifest: await readManifest(root), configFiles: [] } : await exportManifest(root);
  const named = Object.values(manifest.files).filter((f): f is string => typeof f === "string");
  for (const name of named) {
    const ok = await stat(join(root, name)).then((s) => s.isFile(), () => false);
    if (!ok) throw new ModelError(`model bundle ${root}: file "${name}" ${hasManifest ? "named in manifest.json" : "of the export"} is missing`);
  }
  const fileHashes: Record<string, string> = {};
  const hashFile = async (name: string) => {
    const actual = await sha256File(join(root, name)).catch((err) => {
      throw new ModelError(`model bundle ${root}: cannot read ${name}: ${(err as Error).message}`, { cause: err });
    });
    const expected = manifest.sha256?.[name];
    if (expected && expected !== actual) {
      throw new ModelError(`model bundle ${root}: ${name} has sha256 ${actual}, the manifest says ${expected} (corrupt or replaced file)`);
    }
    fileHashes[name] = actual;
  };
  // The named files first: a corrupt or replaced file is reported as that before anything parses it.
  for (const name of named) await hashFile(name);
  const onnxFiles = named.filter((f) => f.endsWith(".onnx"));
  const external = (await Promise.all(onnxFiles.map((f) => externalDataFiles(root, f)))).flat();
  const files = [...new Set([...named, ...external, ...configFiles])].sort();
  for (const name of files) if (!(name in fileHashes)) await hashFile(name);
  const hash = sha256Hex("delift-bundle/1\n", ...files.map((n) => `${n}:${fileHashes[n]}\n`));
  return {
    dir: root,
    manifest,
    source: hasManifest ? "manifest" : "export",
    modelPath: join(root, manifest.files.model),
    tokenizerPath: join(root, manifest.files.tokenizer),
    encoderPath: manifest.files.encoder ? join(root, manifest.files.encoder) : undefined,
    files,
    hash,
    fileHashes,
  };
}

/** The files a worker needs to load the bundle: `files`, plus manifest.json when there is one. */
export function bundleFiles(bundle: ModelBundle): string[] {
  return bundle.source === "manifest" ? [...bundle.files, "manifest.json"] : [...bundle.files];
}

/** The manifest of a plain export, derived from its config files (what `delift model prepare` would write). */
export async function exportManifest(
  root: string,
  overrides: { eosId?: number; maxLength?: number } = {},
): Promise<{ manifest: BundleManifest; configFiles: string[]; sources: Record<string, string> }> {
  const tokenizer = "tokenizer.json";
  if (!(await stat(join(root, tokenizer)).then((s) => s.isFile(), () => false))) {
    throw new ModelError(
      `${root}: no tokenizer.json. delift reads Hugging Face tokenizers' tokenizer.json (optimum exports write it; ` +
        `for a model with only a slow tokenizer, save it once with transformers: AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR))`,
    );
  }
  const model = await findDecoderFile(root);
  const settings = await readExportSettings(root, tokenizer, overrides);
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    name: basename(root),
    eosId: settings.eosId,
    padId: settings.padId,
    maxLength: settings.maxLength,
    ...(settings.vocabSize !== undefined ? { vocabSize: settings.vocabSize } : {}),
    files: { model, tokenizer },
  };
  return { manifest, configFiles: settings.files, sources: settings.sources };
}
