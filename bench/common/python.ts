import { spawnSync } from "node:child_process";

/**
 * The Python interpreter for the reference and model-preparation harnesses: $DELIFT_PYTHON, else
 * python3. Returns null (with the reason) when it lacks what bench/reference/requirements.txt names.
 */
export function findPython(): { python: string } | { missing: string } {
  const python = process.env.DELIFT_PYTHON || "python3";
  const probe = spawnSync(python, ["-c", "import torch, transformers, tokenizers, onnx"], { encoding: "utf8" });
  if (probe.status === 0) return { python };
  return {
    missing: `${python} cannot import torch/transformers/tokenizers/onnx (${(probe.stderr || probe.error?.message || "").trim().split("\n").at(-1)}); ` +
      "set DELIFT_PYTHON to an interpreter with bench/reference/requirements.txt installed",
  };
}
