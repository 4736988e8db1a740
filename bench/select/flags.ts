import { parseArgs } from "node:util";
import { ConfigError } from "../../common/src/errors.js";
import { parseBudget } from "../../common/src/selection/mod.js";

export type BenchFlags = {
  n: number;
  perColumn: number;
  budgetText: string;
  k: number;
  seed: number;
  epsilon: number;
  /** Internal: set in the child processes that measure one optimiser each. */
  child: "lazy" | "stochastic" | null;
};

export const usage =
  "usage: node dist/bench/select/main.js [--n 1000000] [--per-column 32] [--budget 30%] [--seed 1] [--epsilon 0.01]\n" +
  "       node dist/bench/select/main.js --assembly [--se] [--n 1000000] [--neighbors 16,64]   (kernel assembly + selection memory, in-memory vs chunked; --se: the SE kernel from candidate lists)";

export function parseBenchFlags(argv: string[]): BenchFlags {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: "string", default: "1000000" },
      "per-column": { type: "string", default: "32" },
      budget: { type: "string", default: "30%" },
      seed: { type: "string", default: "1" },
      epsilon: { type: "string", default: "0.01" },
      child: { type: "string" },
    },
    strict: true,
  });
  const n = positiveInteger("--n", values.n);
  const perColumn = positiveInteger("--per-column", values["per-column"]);
  if (perColumn > n) throw new ConfigError(`--per-column ${perColumn} exceeds --n ${n}`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new ConfigError(`--seed must be an integer, got "${values.seed}"`);
  const epsilon = Number(values.epsilon);
  if (!(epsilon > 0 && epsilon < 1)) throw new ConfigError(`--epsilon must satisfy 0 < epsilon < 1, got "${values.epsilon}"`);
  const child = values.child ?? null;
  if (child !== null && child !== "lazy" && child !== "stochastic") throw new ConfigError(`unknown --child "${child}"`);
  return { n, perColumn, budgetText: values.budget, k: parseBudget(values.budget, n), seed, epsilon, child };
}

export function childArgs(flags: BenchFlags, child: "lazy" | "stochastic"): string[] {
  return [
    "--n", String(flags.n),
    "--per-column", String(flags.perColumn),
    "--budget", flags.budgetText,
    "--seed", String(flags.seed),
    "--epsilon", String(flags.epsilon),
    "--child", child,
  ];
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < 1) throw new ConfigError(`${name} must be a positive integer, got "${text}"`);
  return value;
}
