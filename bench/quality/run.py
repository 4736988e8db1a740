"""Does the selection help? delift's replication study (issue 12), one command from scratch to the README table:

  npm run build && python3 bench/quality/run.py            # the study (README section "Does the selection help?")
  python3 bench/quality/run.py --quick                     # a ~10-minute version on smaller splits (not written to README)
  python3 bench/quality/run.py --eval my-heldout.jsonl     # adds a held-out set (JSONL: instruction, input, output)

Needs Python with bench/quality/requirements.txt (torch CPU, transformers, tokenizers, numpy, matplotlib): if
python3 lacks torch, the script re-runs itself with $DELIFT_PYTHON. Every subset is chosen by
`node bin/delift.js select` (so run `npm run build` first); every intermediate result is cached under
bench/quality/cache/ by a key of its inputs, so an interrupted run resumes and a rerun recomputes nothing
(--fresh starts over). Run it niced on a shared machine: `nice -n 5 python3 bench/quality/run.py`.

See bench/quality/README.md for what the study does and how to read it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# OpenMP threads that spin while waiting burn a shared machine's cores: measured here under load, greedy
# generation took 86 s with spinning threads and 2 s without (training steps 2.5x less CPU). Must be set
# before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _ensure_torch() -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as e:
        py = os.environ.get("DELIFT_PYTHON")
        if py and os.path.realpath(py) != os.path.realpath(sys.executable) and not os.environ.get("DELIFT_QUALITY_REEXEC"):
            os.environ["DELIFT_QUALITY_REEXEC"] = "1"
            os.execv(py, [py, str(Path(__file__).resolve()), *sys.argv[1:]])
        sys.exit(f"{sys.executable} cannot import {e.name}: install bench/quality/requirements.txt "
                 "(python3 -m venv /tmp/pyenv && /tmp/pyenv/bin/pip install -r bench/quality/requirements.txt) "
                 "and set DELIFT_PYTHON=/tmp/pyenv/bin/python, or run the script with that interpreter")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller splits and sparser kernels: about 10 minutes")
    ap.add_argument("--eval", action="append", default=[], metavar="FILE",
                    help="an extra held-out set (JSONL with instruction, input, output); repeatable")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data directory")
    ap.add_argument("--model", default=str(ROOT / "models" / "tiny"),
                    help="base model bundle (delift bundle with a PyTorch checkpoint/ directory)")
    ap.add_argument("--cache", default=str(HERE / "cache"), help="cached intermediate results")
    ap.add_argument("--out", default=None, help="where results go (default bench/quality/results, or "
                    "bench/quality/cache/quick-results with --quick)")
    ap.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    ap.add_argument("--dense-check", action="store_true",
                    help="also compute the sparse-vs-dense comparison on a slice of the corpus (slice^2 pairs: "
                    "300 samples take about 25 CPU-minutes, 1,000 about 4.7 CPU-hours on these cores; a cached result is always reported)")
    ap.add_argument("--dense-check-only", action="store_true", help="compute only the sparse-vs-dense comparison")
    ap.add_argument("--dense-slice", type=int, default=None, help="samples in that slice (default 300; 80 with --quick; 1000 is about 4.7 CPU-hours here)")
    ap.add_argument("--delift-seeds", type=int, default=None,
                    help="fine-tuning seeds of the DELIFT and full-data arms (default 1; random always has 3)")
    ap.add_argument("--fresh", action="store_true", help="delete this mode's cache first")
    args = ap.parse_args()
    _ensure_torch()
    sys.path.insert(0, str(HERE))
    from qlib.study import Study, StudyConfig
    cfg = StudyConfig.quick() if args.quick else StudyConfig.full()
    if args.delift_seeds:
        cfg.delift_seeds = tuple(range(args.delift_seeds))
    if args.dense_slice:
        cfg.dense_slice = args.dense_slice
    out = Path(args.out) if args.out else (HERE / "cache" / "quick-results" if args.quick else HERE / "results")
    study = Study(cfg, root=ROOT, data=Path(args.data), bundle=Path(args.model), cache=Path(args.cache) / cfg.name,
                  out=out, threads=args.threads, extra_evals=[Path(p) for p in args.eval])
    if args.fresh:
        study.clear_cache()
    if args.dense_check_only:
        study.run_dense_check_only()
        return 0
    study.run(dense_check=args.dense_check)
    if not args.quick and not args.no_readme:
        study.write_readme(ROOT / "README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
