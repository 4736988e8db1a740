"""The study's data splits, all deterministic (order by a salted hash of the sample id), from the shared data:

- p3-eval: 20 samples of each of the 10 P3 templates of p3-mix-2k (200), never selected from or trained on;
- p3-dev: 5 more of each (50), used only to fix the fine-tuning recipe before any comparison;
- corpus: mix-4k without p3-eval and p3-dev (3,750 samples), what the instruction and task stages select from;
- gsm8k-target: 100 samples of gsm8k-test, the task stage's target set Q;
- gsm8k-eval: 200 other samples of gsm8k-test (disjoint from the target), the GSM8K held-out set;
- gsm8k-dev: 200 samples of gsm8k-train-rest, only for fixing the recipe;
- continual: new data V = gsm8k-train-2k (2,000), existing data E = p3-mix-2k without p3-eval and p3-dev (1,750).

--quick takes smaller, nested versions of the same splits (see QUICK)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .text import load_jsonl, write_jsonl

SALT = "delift-quality-v1"

FULL = dict(p3_eval_per_task=20, p3_dev_per_task=5, corpus=None, target=100, gsm8k_eval=200, gsm8k_dev=200,
            continual_new=None, continual_existing=None)
QUICK = dict(p3_eval_per_task=6, p3_dev_per_task=5, corpus=400, target=20, gsm8k_eval=60, gsm8k_dev=60,
             continual_new=200, continual_existing=200)


def _rank(rec: dict) -> str:
    return hashlib.sha256(f"{SALT}:{rec['id']}".encode()).hexdigest()


def _by_hash(recs: list[dict]) -> list[dict]:
    return sorted(recs, key=_rank)


def _subsample(recs: list[dict], n: int | None) -> list[dict]:
    """n records chosen by hash, kept in their original order."""
    if n is None or n >= len(recs):
        return recs
    keep = {r["id"] for r in _by_hash(recs)[:n]}
    return [r for r in recs if r["id"] in keep]


def build_splits(data_dir: Path, out_dir: Path, quick: bool) -> dict[str, Path]:
    cfg = QUICK if quick else FULL
    mix = load_jsonl(data_dir / "mix-4k.jsonl")
    p3 = load_jsonl(data_dir / "p3-mix-2k.jsonl")
    gsm_train = load_jsonl(data_dir / "gsm8k-train-2k.jsonl")
    gsm_test = load_jsonl(data_dir / "gsm8k-test.jsonl")
    gsm_rest = load_jsonl(data_dir / "gsm8k-train-rest.jsonl")

    tasks: dict[str, list[dict]] = {}
    for r in p3:
        tasks.setdefault(r["task"], []).append(r)
    p3_eval, p3_dev = [], []
    for task in sorted(tasks):
        ranked = _by_hash(tasks[task])
        p3_eval += ranked[:cfg["p3_eval_per_task"]]
        p3_dev += ranked[cfg["p3_eval_per_task"]:cfg["p3_eval_per_task"] + cfg["p3_dev_per_task"]]
    held = {r["id"] for r in p3_eval + p3_dev}
    p3_ids = {r["id"] for r in p3}
    corpus = _subsample([r for r in mix if r["id"] not in held], cfg["corpus"])
    if quick:  # keep the quick corpus balanced between its two sources, as the full one is
        g = _subsample([r for r in mix if r["id"] not in held and r["id"] not in p3_ids], cfg["corpus"] // 2)
        p = _subsample([r for r in mix if r["id"] not in held and r["id"] in p3_ids], cfg["corpus"] // 2)
        keep = {r["id"] for r in g + p}
        corpus = [r for r in mix if r["id"] in keep]
    existing = _subsample([r for r in p3 if r["id"] not in held], cfg["continual_existing"])
    new = _subsample(gsm_train, cfg["continual_new"])
    ranked_test = _by_hash(gsm_test)
    target = ranked_test[:cfg["target"]]
    gsm_eval = ranked_test[cfg["target"]:cfg["target"] + cfg["gsm8k_eval"]]
    gsm_dev = _by_hash(gsm_rest)[:cfg["gsm8k_dev"]]

    # Sanity: no held-out sample is in anything that is selected from or trained on.
    train_side = {r["id"] for r in corpus + existing + new}
    for name, s in (("p3-eval", p3_eval), ("p3-dev", p3_dev), ("gsm8k-eval", gsm_eval), ("gsm8k-dev", gsm_dev)):
        if train_side & {r["id"] for r in s}:
            raise AssertionError(f"{name} overlaps the training side")
    if {r["id"] for r in target} & {r["id"] for r in gsm_eval}:
        raise AssertionError("the target slice overlaps gsm8k-eval")

    files = {"corpus": corpus, "p3-eval": p3_eval, "p3-dev": p3_dev, "gsm8k-target": target,
             "gsm8k-eval": gsm_eval, "gsm8k-dev": gsm_dev, "continual-new": new, "continual-existing": existing}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, recs in files.items():
        p = out_dir / f"{name}.jsonl"
        write_jsonl(p, recs)
        paths[name] = p
    return paths
