import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ModelError } from "../errors.js";

export const BUNDLE_FORMAT = "delift-bundle/1";

/** manifest.json of a model bundle (DESIGN.md §4). Unknown keys are kept as they are. */
export type BundleManifest = {
  format: typeof BUNDLE_FORMAT;
  name?: string;
  eosId: number;
  padId?: number;
  maxLength: number;
  files: { model: string; tokenizer: string; encoder?: string; [other: string]: string | undefined };
  /** sha256 of each file, checked on load when present. */
  sha256?: Record<string, string>;
  /** True when model.onnx already returns target log-probabilities (`delift model prepare`). */
  prepared?: boolean;
  [other: string]: unknown;
};

export async function readManifest(dir: string): Promise<BundleManifest> {
  const path = join(dir, "manifest.json");
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new ModelError(`cannot read model bundle manifest ${path}: ${(err as Error).message}`, { cause: err });
  }
  return validateManifest(value, path);
}

export function validateManifest(value: unknown, path: string): BundleManifest {
  const fail = (field: string, expected: string): never => {
    throw new ModelError(`${path}: field "${field}": expected ${expected}`);
  };
  if (!value || typeof value !== "object") fail("(root)", "a JSON object");
  const m = value as Record<string, unknown>;
  if (m.format !== BUNDLE_FORMAT) fail("format", `"${BUNDLE_FORMAT}"`);
  if (!Number.isInteger(m.eosId) || (m.eosId as number) < 0) fail("eosId", "a non-negative integer token id");
  if (!Number.isInteger(m.maxLength) || (m.maxLength as number) < 8) fail("maxLength", "an integer of at least 8");
  if (m.padId !== undefined && (!Number.isInteger(m.padId) || (m.padId as number) < 0)) fail("padId", "a non-negative integer");
  const files = m.files as Record<string, unknown> | undefined;
  if (!files || typeof files !== "object") fail("files", 'an object like {"model": "model.onnx", "tokenizer": "tokenizer.json"}');
  for (const key of ["model", "tokenizer"]) {
    if (typeof files![key] !== "string" || (files![key] as string).includes("..") || (files![key] as string).startsWith("/")) fail(`files.${key}`, "a file name inside the bundle");
  }
  if (files!.encoder !== undefined && typeof files!.encoder !== "string") fail("files.encoder", "a file name");
  return m as BundleManifest;
}
