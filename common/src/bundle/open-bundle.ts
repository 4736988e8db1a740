import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ModelError } from "../errors.js";
import { sha256File, sha256Hex } from "../util/hash.js";
import { readManifest, type BundleManifest } from "./manifest.js";

export type ModelBundle = {
  dir: string;
  manifest: BundleManifest;
  modelPath: string;
  tokenizerPath: string;
  encoderPath: string | undefined;
  /** Content hash over every file the manifest names: identifies the model everywhere. */
  hash: string;
  fileHashes: Record<string, string>;
};

/** Opens a bundle directory, checks its files exist and match the manifest's sha256 entries. */
export async function openBundle(dir: string): Promise<ModelBundle> {
  const root = resolve(dir);
  const manifest = await readManifest(root);
  const fileHashes: Record<string, string> = {};
  const names = Object.values(manifest.files).filter((f): f is string => typeof f === "string").sort();
  for (const name of names) {
    const path = join(root, name);
    try {
      await stat(path);
    } catch {
      throw new ModelError(`model bundle ${root}: file "${name}" named in manifest.json is missing`);
    }
    const actual = await sha256File(path);
    const expected = manifest.sha256?.[name];
    if (expected && expected !== actual) {
      throw new ModelError(`model bundle ${root}: ${name} has sha256 ${actual}, the manifest says ${expected} (corrupt or replaced file)`);
    }
    fileHashes[name] = actual;
  }
  const hash = sha256Hex("delift-bundle/1\n", ...names.map((n) => `${n}:${fileHashes[n]}\n`));
  return {
    dir: root,
    manifest,
    modelPath: join(root, manifest.files.model),
    tokenizerPath: join(root, manifest.files.tokenizer),
    encoderPath: manifest.files.encoder ? join(root, manifest.files.encoder) : undefined,
    hash,
    fileHashes,
  };
}
