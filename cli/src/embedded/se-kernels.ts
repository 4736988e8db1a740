import { ModelError, sampleTokens } from "../../../common/src/mod.js";
import { cosineKernel } from "../../../coordinator/src/select/cosine-kernel.js";
import type { Stage } from "../../../coordinator/src/select/run-selection.js";
import { loadOnnxEncoder } from "../../../worker/src/mod.js";
import type { StageKernels } from "../commands/select.js";
import type { ModelInputs } from "../setup/load-inputs.js";
import type { RunConfig } from "../setup/run-config.js";
import type { SampleSets } from "../setup/sample-sets.js";

/** DELIFT (SE): kernels from the bundle's sentence encoder instead of in-context utility. */
export async function seKernels(inputs: ModelInputs, sets: SampleSets, stage: Stage, config: RunConfig): Promise<StageKernels> {
  if (!inputs.bundle.encoderPath) {
    throw new ModelError(`model bundle ${inputs.bundle.dir} has no encoder (manifest files.encoder): --kernel-type se needs one`);
  }
  const encoder = await loadOnnxEncoder(inputs.bundle.encoderPath, {
    device: config.device,
    threads: config.threads,
    padId: inputs.bundle.manifest.padId ?? inputs.bundle.manifest.eosId,
  });
  try {
    const newline = inputs.tokenizer.encode("\n");
    const max = inputs.prompts.maxLength;
    const sequences = Array.from({ length: sets.tokens.count }, (_, g) => {
      const t = sampleTokens(sets.tokens, g);
      const ids = new Int32Array(t.x.length + newline.length + t.y.length);
      ids.set(t.x, 0);
      ids.set(newline, t.x.length);
      ids.set(t.y, t.x.length + newline.length);
      return ids.subarray(0, max);
    });
    const embeddings = await encoder.embed(sequences);
    const main = cosineKernel(embeddings, encoder.dim, sets.v, sets.v);
    const second =
      stage === "task" ? cosineKernel(embeddings, encoder.dim, sets.o, sets.v) : stage === "continual" ? cosineKernel(embeddings, encoder.dim, sets.v, sets.o) : null;
    const none = { truncatedPrompts: null, tilesComputed: null, tilesReused: null };
    return { main, second, mainFile: null, mainFacts: none, secondFacts: none };
  } finally {
    await encoder.dispose();
  }
}
