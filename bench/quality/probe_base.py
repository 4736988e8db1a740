"""Is a base model strong enough for the study? Fine-tunes it on random 30% subsets of the corpus (two
seeds) and on the whole corpus with the study's recipe and prints the teacher-forced response loss on the
dev sets (gsm8k-dev, p3-dev: never used by the study's comparisons). If full vs random-30% moves the loss
by much more than the two random seeds differ, fine-tuning differences show with this model.

  /tmp/pyenv/bin/python bench/quality/probe_base.py [--checkpoint models/tiny/checkpoint] [--epochs 3] [--lr 1e-3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see run.py

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from qlib.model import fine_tune, load_model, response_nll  # noqa: E402
from qlib.recipe import RECIPE  # noqa: E402
from qlib.splits import build_splits  # noqa: E402
from qlib.text import TextCodec, load_jsonl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(ROOT / "models/tiny/checkpoint"))
    ap.add_argument("--tokenizer", default=str(ROOT / "models/tiny/tokenizer.json"))
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    ap.add_argument("--lr", type=float, default=RECIPE["lr"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = dict(RECIPE, epochs=args.epochs, lr=args.lr)
    paths = build_splits(Path(args.data), HERE / "cache" / "splits-full", quick=False)
    codec = TextCodec(args.tokenizer, recipe["max_len"])
    corpus = codec.encode(load_jsonl(paths["corpus"]))
    dev = {k: codec.encode(load_jsonl(paths[k])) for k in ("gsm8k-dev", "p3-dev")}

    def dev_loss(model):
        out = {}
        for k, s in dev.items():
            r = response_nll(model, s, recipe["seq_len"])
            out[k] = round(sum(a for a, _ in r) / sum(b for _, b in r), 4)
        out["mean"] = round(sum(out.values()) / len(out), 4)
        return out

    base = load_model(args.checkpoint)
    rows = [{"run": "base", **dev_loss(base)}]
    print(json.dumps(rows[-1]), flush=True)
    k = round(0.3 * len(corpus))
    runs = [(f"random30-s{s}", random.Random(s).sample(range(len(corpus)), k), s) for s in range(args.seeds)]
    runs.append(("full", list(range(len(corpus))), 0))
    for name, idx, seed in runs:
        model = load_model(args.checkpoint)
        t, c = time.time(), time.process_time()
        info = fine_tune(model, [corpus[i] for i in idx], recipe, seed)
        rows.append({"run": name, **dev_loss(model), "steps": info["steps"], "wall_s": round(time.time() - t, 1),
                     "cpu_s": round(time.process_time() - c, 1)})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
