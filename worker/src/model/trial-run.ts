import { ModelError } from "../../../common/src/mod.js";
import type { CausalLm } from "./causal-lm.js";
import { classifyLoadError } from "./session-errors.js";

const TOKENS = Int32Array.from([1, 2, 3, 1, 2]);

/**
 * A load-time check that costs three tiny runs: the log-probabilities of a short sequence run
 * whole must equal those of a batch-1 prefix run followed by a batch of right-padded
 * continuations (the way tiles run it). An export whose cache, position or padding handling is
 * broken fails here, once, with a ModelError, instead of computing a wrong kernel on every tile.
 */
export async function checkCachePath(model: CausalLm & { kvType?: string }, label: string): Promise<void> {
  const tolerance = model.kvType === "float16" ? 5e-2 : 1e-3;
  let whole: Float32Array;
  let cont: { logprobs: Float32Array; width: number };
  try {
    whole = (await model.scoreContinuations(null, { sequences: [TOKENS] })).logprobs;
    const prefix = await model.extend(null, TOKENS.subarray(0, 2));
    cont = await model.scoreContinuations(prefix, { sequences: [TOKENS.subarray(2), TOKENS.subarray(2, 4)] });
  } catch (err) {
    throw classifyLoadError(err, `${label}: the trial run failed`);
  }
  if (whole.length !== TOKENS.length || cont.width !== 3 || cont.logprobs.length !== 6) {
    throw new ModelError(`${label}: the trial run returned ${whole.length} and ${cont.logprobs.length} log-probabilities, expected ${TOKENS.length} and 6 (the graph's outputs are not per position)`);
  }
  // position p of the whole run predicts token p + 1; continuation row r, position t predicts token 3 + t
  const pairs: [number, number][] = [
    [whole[2], cont.logprobs[0]],
    [whole[3], cont.logprobs[1]],
    [whole[2], cont.logprobs[3]],
  ];
  let worst = 0;
  for (const [a, b] of pairs) {
    if (!Number.isFinite(a) || !Number.isFinite(b) || a > 1e-4 || b > 1e-4) {
      throw new ModelError(`${label}: the trial run gave log-probabilities ${a} and ${b}: not finite or above 0 (a broken graph)`);
    }
    worst = Math.max(worst, Math.abs(a - b));
  }
  if (worst > tolerance) {
    throw new ModelError(
      `${label}: with a KV cache the model scores a continuation ${worst.toExponential(2)} away from the same whole prompt (tolerance ${tolerance}): ` +
        "the export's past_key_values, attention_mask or position handling is broken, and delift would compute a wrong kernel",
    );
  }
}
