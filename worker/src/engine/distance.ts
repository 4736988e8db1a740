/**
 * d(y | context) = ||1 - p||_2 / sqrt(T) over the T scored positions, from log-probabilities
 * laid out so that logprobs[offset + t] is the log-probability of response token t.
 */
export function responseDistance(logprobs: Float32Array, offset: number, count: number): number {
  let sum = 0;
  for (let t = 0; t < count; t++) {
    const miss = 1 - Math.exp(logprobs[offset + t]);
    sum += miss * miss;
  }
  return Math.sqrt(sum / count);
}
