/**
 * npm run bench -- quality [--quick] [--eval FILE ...]: the quality study (bench/quality/run.py), opt-in
 * only (it takes up to an hour on 2 cores and is never part of npm test or of a plain `npm run bench`).
 * Arguments after "quality" go to run.py; DELIFT_PYTHON names an interpreter with
 * bench/quality/requirements.txt installed.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../common/paths.js";

const python = process.env.DELIFT_PYTHON || "python3";
const probe = spawnSync(python, ["-c", "import torch, transformers, tokenizers, matplotlib"], { encoding: "utf8" });
if (probe.status !== 0) {
  console.error(`${python} cannot import torch/transformers/tokenizers/matplotlib: install bench/quality/requirements.txt and set DELIFT_PYTHON`);
  process.exit(2);
}
const r = spawnSync(python, [join(ROOT, "bench", "quality", "run.py"), ...process.argv.slice(2)], { stdio: "inherit", cwd: ROOT });
process.exit(r.status ?? 1);
