import { loadOnnxEncoder, ModelError, sampleTokens } from "../../../common/src/mod.js";
import type { ModelInputs } from "../inputs/load-inputs.js";
import type { SampleSets } from "../inputs/sample-sets.js";

/**
 * Sentence embeddings of every sample (x + "\n" + y, cut to the maximum length), from the bundle's
 * encoder: L2-normalised rows of `dim` floats, by global sample index. Used by DELIFT (SE) and by
 * sparse mode's neighbour search.
 */
export async function embedSamples(inputs: ModelInputs, sets: SampleSets, why: string): Promise<{ embeddings: Float32Array; dim: number }> {
  if (!inputs.bundle.encoderPath) {
    throw new ModelError(`model bundle ${inputs.bundle.dir} has no encoder (manifest files.encoder): ${why} needs one`);
  }
  const encoder = await loadOnnxEncoder(inputs.bundle.encoderPath, { padId: inputs.bundle.manifest.padId ?? inputs.bundle.manifest.eosId });
  try {
    const newline = inputs.tokenizer.encode("\n");
    const sequences = Array.from({ length: sets.tokens.count }, (_, g) => {
      const t = sampleTokens(sets.tokens, g);
      const ids = new Int32Array(t.x.length + newline.length + t.y.length);
      ids.set(t.x, 0);
      ids.set(newline, t.x.length);
      ids.set(t.y, t.x.length + newline.length);
      return ids.subarray(0, inputs.prompts.maxLength);
    });
    return { embeddings: await encoder.embed(sequences), dim: encoder.dim };
  } finally {
    await encoder.dispose();
  }
}
