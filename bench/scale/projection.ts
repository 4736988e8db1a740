/**
 * bench/scale/projection (issue 8 item 7): how long the LM utility kernel would take at 10^6 and
 * 10^7 samples in sparse mode on 1, 8 and 64 GPUs, from tokens per pair measured on this
 * machine (run (c): `node dist/bench/scale/main.js --lm-sparse 5000`) and a stated GPU prefill
 * rate, next to the paper's 67,379 s for 15k x 5k pairs on 2 x A40 (NN-CIFT Table 7, Phi-3).
 *
 *   node dist/bench/scale/projection.js --tokens-per-pair T [--baseline-tokens B] [--neighbors 64]
 *        [--random-columns 0] [--json]
 *
 * The model: every scored pair feeds the model `T` tokens (the target's continuation after the
 * example's cached prefix, plus each example's prefix once per tile, amortised: what the engine
 * counts), and each sample's P0 baseline feeds `B`. A GPU runs `peak x utilisation / (2 x params)`
 * tokens a second (a decoder's forward costs about 2 FLOPs per parameter per token; attention
 * over a few hundred positions adds a few per cent, left out). Tiles are independent, so the
 * cluster's rate is the sum of its GPUs' (the bus carries <= 64 bytes and results 4 bytes a pair:
 * 64 GPUs at the rates below move well under 10 MB/s). None of this was run on a GPU here: no
 * GPU was lent to this work, and onnxruntime-node's CUDA provider cannot be installed in this
 * workplace.
 */
import { parseArgs } from "node:util";

type Gpu = { name: string; peakFlops: number };
type Model = { name: string; params: number };

/** Dense bf16 tensor peaks from the vendors' data sheets. */
const GPUS: Gpu[] = [
  { name: "A40", peakFlops: 149.7e12 },
  { name: "H100 SXM", peakFlops: 989e12 },
];
/** Phi-3-mini is the paper's utility model; Qwen2-0.5B a small one users bring (both run through delift's bundles). */
const MODELS: Model[] = [
  { name: "Phi-3-mini (3.8B)", params: 3.82e9 },
  { name: "Qwen2-0.5B", params: 0.494e9 },
];
/** Model FLOPs utilisation of batched teacher-forced scoring (ANCHORS.md: 25-30% on an H100). */
const UTILISATION = 0.3;
const PAPER = { pairs: 15_000 * 5_000, seconds: 67_379, gpus: 2, gpu: "A40", model: "Phi-3-mini (3.8B)" };

const { values: flags } = parseArgs({
  options: {
    "tokens-per-pair": { type: "string" },
    "baseline-tokens": { type: "string" },
    neighbors: { type: "string", default: "64" },
    "random-columns": { type: "string", default: "0" },
    json: { type: "boolean", default: false },
  },
});
if (!flags["tokens-per-pair"]) throw new Error("projection: --tokens-per-pair T is required (measure it with node dist/bench/scale/main.js --lm-sparse 5000)");
const tokensPerPair = Number(flags["tokens-per-pair"]);
const baselineTokens = Number(flags["baseline-tokens"] ?? tokensPerPair);
const columnsPerTarget = Number(flags.neighbors) + Number(flags["random-columns"]);
for (const [name, v] of Object.entries({ tokensPerPair, baselineTokens, columnsPerTarget })) {
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`projection: ${name} must be a positive number, got ${v}`);
}

const tokensPerSecond = (gpu: Gpu, model: Model) => (gpu.peakFlops * UTILISATION) / (2 * model.params);
const hours = (s: number) => (s >= 36_000 ? `${(s / 3600).toFixed(0)} h` : s >= 3600 ? `${(s / 3600).toFixed(1)} h` : `${(s / 60).toFixed(0)} min`);

const rows: { model: string; gpu: string; samples: number; gpus: number; pairs: number; seconds: number }[] = [];
for (const model of MODELS) {
  for (const samples of [1e6, 1e7]) {
    const tokens = samples * (columnsPerTarget * tokensPerPair + baselineTokens);
    for (const gpus of [1, 8, 64]) {
      const gpu = GPUS[1];
      rows.push({ model: model.name, gpu: gpu.name, samples, gpus, pairs: samples * columnsPerTarget, seconds: tokens / (gpus * tokensPerSecond(gpu, model)) });
    }
  }
}
// The paper's job, priced the same way on its own hardware: the same pairs with delift's tokens per pair.
const a40 = GPUS[0];
const phi3 = MODELS[0];
const paperRate = PAPER.pairs / PAPER.seconds;
const delift15k = (PAPER.pairs * tokensPerPair) / (PAPER.gpus * tokensPerSecond(a40, phi3));
const paperTokensAtPeak = (PAPER.gpus * a40.peakFlops) / (2 * phi3.params) / paperRate;

if (flags.json) {
  console.log(JSON.stringify({ tokensPerPair, baselineTokens, columnsPerTarget, utilisation: UTILISATION, rows, paper: { ...PAPER, pairsPerSecond: paperRate, tokensPerPairAtFullPeak: paperTokensAtPeak }, delift15kSeconds: delift15k }));
} else {
  console.log(`tokens per pair ${tokensPerPair} (measured), baseline tokens per sample ${baselineTokens}, ${columnsPerTarget} columns per target, ${(UTILISATION * 100).toFixed(0)}% of dense bf16 peak`);
  for (const m of MODELS) for (const g of GPUS) console.log(`  ${m.name} on one ${g.name}: ${(tokensPerSecond(g, m) / 1000).toFixed(0)}k tokens/s = ${(tokensPerSecond(g, m) / tokensPerPair).toFixed(0)} pairs/s`);
  console.log("\n| model | samples | pairs | 1 GPU | 8 GPUs | 64 GPUs |\n|---|---|---|---|---|---|");
  for (const model of MODELS) {
    for (const samples of [1e6, 1e7]) {
      const r = rows.filter((x) => x.model === model.name && x.samples === samples);
      console.log(`| ${model.name}, ${r[0].gpu} | 10^${Math.log10(samples)} | ${(r[0].pairs / 1e6).toFixed(0)}M | ${r.map((x) => hours(x.seconds)).join(" | ")} |`);
    }
  }
  console.log(`\npaper (NN-CIFT Table 7): ${PAPER.pairs / 1e6}M pairs (15k x 5k), ${PAPER.model}, ${PAPER.gpus} x ${PAPER.gpu}: ${PAPER.seconds.toLocaleString("en-US")} s = ${paperRate.toFixed(0)} pairs/s`);
  console.log(`  at face value that is at most ${paperTokensAtPeak.toFixed(0)} tokens a pair even at 100% of both A40s' peak`);
  console.log(`delift, the same pairs at ${tokensPerPair} tokens a pair on the same 2 x A40 at ${(UTILISATION * 100).toFixed(0)}%: ${delift15k.toFixed(0)} s (${hours(delift15k)})`);
}
