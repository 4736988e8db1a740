import { stat } from "node:fs/promises";
import { join } from "node:path";
import { ModelError } from "../errors.js";

/**
 * Decoder files of an optimum export, best first: one decoder with KV cache inputs (model.onnx), a
 * merged decoder (use_cache_branch; delift keeps its with-cache branch), or the decoder-with-past
 * half of a split export (delift runs it with an empty past for the first tokens). The same under
 * onnx/, the layout of ONNX repositories that keep the tokenizer at the top.
 */
const NAMES = ["model.onnx", "decoder_model_merged.onnx", "decoder_with_past_model.onnx"];
export const DECODER_FILES = [...NAMES, ...NAMES.map((f) => `onnx/${f}`)];

export async function findDecoderFile(dir: string): Promise<string> {
  for (const name of DECODER_FILES) if (await isFile(join(dir, name))) return name;
  const noPast = ["decoder_model.onnx", "onnx/decoder_model.onnx"];
  for (const name of noPast) {
    if (await isFile(join(dir, name))) {
      throw new ModelError(
        `${dir} has ${name} but no decoder with KV cache (${DECODER_FILES.slice(0, 3).join(", ")}): ` +
          "delift reuses each example's cache; export with optimum-cli's --task text-generation-with-past",
      );
    }
  }
  throw new ModelError(`${dir}: no ONNX decoder found (looked for ${DECODER_FILES.join(", ")}) and no manifest.json naming one`);
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}
