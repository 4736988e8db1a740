/**
 * npm run bench: every benchmark in turn, each in its own process. Figures are ratios against a
 * baseline measured in the same invocation (these machines are shared and noisy).
 *   node dist/bench/run.js [kernel] [prepare] [transfer] [select] [select-distributed] [cluster] [scale] [event-loop] [rss] [mutations]   (default: all but the opt-in ones)
 *   node dist/bench/run.js quality [--quick] [run.py options]     (opt-in: the quality study, up to an hour)
 * Environment: DELIFT_PYTHON (interpreter for the reference harness), BENCH_SAMPLES, BENCH_THREADS.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./common/paths.js";

const BENCHES: Record<string, { script: string; args: string[]; about: string; optIn?: boolean }> = {
  kernel: { script: "kernel/main.js", args: [], about: "delift vs the Python reference (pairs/s), vs raw onnxruntime (tokens/s)" },
  prepare: { script: "prepare/main.js", args: [], about: "what model preparation saves on a 32k vocabulary" },
  transfer: { script: "prepare/transfer.js", args: [], about: "host <-> session bytes per pair and tokens/s: prefix cache broadcast in the graph vs copied on the host" },
  select: { script: "select/main.js", args: [], about: "stochastic vs lazy greedy on a 1M x 32 sparse kernel" },
  "select-distributed": { script: "select-distributed/main.js", args: [], about: "distributed selection (bands, partition) on shard hosts over NATS vs central greedy, 1e6 x 64 and 1e7 x 32 kernels on disk" },
  cluster: { script: "cluster/main.js", args: [], about: "cluster over NATS + gRPC vs the embedded default" },
  scale: { script: "scale/main.js", args: [], about: "reading, embeddings, candidate search, plan and tile bytes at 100k samples (--million for 10^6: node dist/bench/scale/main.js --million)" },
  "event-loop": { script: "runtime/event-loop.js", args: [], about: "coordinator event-loop delay while it selects over a 1M-column kernel vs selecting on the loop" },
  rss: { script: "runtime/rss.js", args: [], about: "coordinator RSS over 20 consecutive small jobs vs after the first" },
  mutations: { script: "mutations/main.js", args: [], about: "hand-made bugs applied to a copy of the repository: which tests catch each" },
  quality: { script: "quality/main.js", args: [], about: "does the selection help? fine-tuning study (bench/quality)", optIn: true },
};

const argv = process.argv.slice(2);
// "quality" takes the rest of the command line as its own options.
const q = argv.indexOf("quality");
const chosen = q >= 0 ? [...argv.slice(0, q), "quality"] : argv;
const qualityArgs = q >= 0 ? argv.slice(q + 1) : [];
for (const name of chosen) if (!BENCHES[name]) throw new Error(`unknown benchmark "${name}" (known: ${Object.keys(BENCHES).join(", ")})`);
let failed = 0;
for (const [name, b] of Object.entries(BENCHES)) {
  if (chosen.length > 0 ? !chosen.includes(name) : b.optIn) continue;
  console.log(`\n=== ${name}: ${b.about}`);
  const r = spawnSync(process.execPath, ["--expose-gc", join(ROOT, "dist", "bench", b.script), ...b.args, ...(name === "quality" ? qualityArgs : [])], { stdio: "inherit", cwd: ROOT });
  if (r.status !== 0) {
    failed++;
    console.log(`=== ${name} failed (exit ${r.status})`);
  }
}
process.exitCode = failed ? 1 : 0;
