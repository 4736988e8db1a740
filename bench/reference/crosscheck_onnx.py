"""Cross-checks a reference fixture against the bundle's ONNX decoder (onnxruntime), computed a second way:
each sequence unpadded, the P1 example prefix (everything up to and including "Query:\\n") run once and the
rest as a continuation with its KV cache, the way delift's engine works. Left-truncated sequences are run whole.

  /tmp/pyenv/bin/python bench/reference/crosscheck_onnx.py --fixture test/fixtures/reference-kernel.json \\
      --data test/fixtures/gsm8k-32.jsonl [--pairs 64]

Prints the max abs difference of d0, d1 and uf over all P0 baselines and a seeded sample of pairs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delift_reference import NEWLINE, P0_PREFIX, P1_PREFIX, P1_QUERY, read_samples  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="models/tiny")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    from tokenizers import Tokenizer
    fx = json.loads(Path(a.fixture).read_text())
    bundle = Path(a.model)
    man = json.loads((bundle / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(bundle / "model.onnx"), so, providers=["CPUExecutionProvider"])
    nl, nkv, hd = man["numLayers"], man["numKvHeads"], man["headDim"]
    eos = man["eosId"]
    L = fx["maxLength"]
    n = len(fx["ids"])
    samples = read_samples(a.data, n)
    assert [s["id"] for s in samples] == fx["ids"]

    def enc(t):
        return tok.encode(t, add_special_tokens=False).ids

    X = [enc(s["instruction"] + (NEWLINE + s["input"] if s.get("input") else "")) for s in samples]
    Y = [enc(s["output"]) for s in samples]

    def run(ids, past, past_len):
        feeds = {"input_ids": np.array([ids], np.int64),
                 "attention_mask": np.ones((1, past_len + len(ids)), np.int64),
                 "position_ids": np.arange(past_len, past_len + len(ids), dtype=np.int64)[None]}
        for l in range(nl):
            for k, kv in enumerate(("key", "value")):
                feeds[f"past_key_values.{l}.{kv}"] = (past[2 * l + k] if past is not None
                                                      else np.zeros((1, nkv, 0, hd), np.float32))
        out = sess.run(None, feeds)
        return out[0][0], out[1:]

    def d_from_logits(logits, seq, t):
        # logits[k] predicts seq[k + 1]; response = last t tokens of seq
        n_ = len(seq)
        lg = logits[n_ - t - 1:n_ - 1].astype(np.float64)
        lg = lg - lg.max(-1, keepdims=True)
        p = np.exp(lg) / np.exp(lg).sum(-1, keepdims=True)
        pt = p[np.arange(t), seq[n_ - t:]]
        return math.sqrt(float(((1 - pt) ** 2).sum())) / math.sqrt(t)

    def d_seq(prefix, rest, t):
        seq = prefix + rest
        if len(seq) > L:  # left truncation: run the truncated sequence whole
            seq = seq[len(seq) - L:]
            logits, _ = run(seq, None, 0)
            return d_from_logits(logits, seq, t)
        if not prefix:
            logits, _ = run(seq, None, 0)
            return d_from_logits(logits, seq, t)
        lp, past = run(prefix, None, 0)
        lr, _ = run(rest, past, len(prefix))
        return d_from_logits(np.concatenate([lp, lr], 0), seq, t)

    dmax = {"d0": 0.0, "d1": 0.0, "uf": 0.0}
    d0 = []
    for i in range(n):
        v = d_seq([], enc(P0_PREFIX) + X[i] + enc(NEWLINE) + [eos] + Y[i] + [eos], len(Y[i]) + 1)
        d0.append(v)
        dmax["d0"] = max(dmax["d0"], abs(v - fx["d0"][i]))
    rng = random.Random(a.seed)
    pairs = [(i, j) for i in range(n) for j in range(n)]
    if a.pairs < len(pairs):
        pairs = rng.sample(pairs, a.pairs)
    for i, j in pairs:
        prefix = enc(P1_PREFIX) + X[j] + enc(NEWLINE) + Y[j] + enc(P1_QUERY)
        rest = X[i] + enc(NEWLINE) + [eos] + Y[i] + [eos]
        v = d_seq(prefix, rest, len(Y[i]) + 1)
        dmax["d1"] = max(dmax["d1"], abs(v - fx["d1"][i][j]))
        dmax["uf"] = max(dmax["uf"], abs((d0[i] - v) - fx["uf"][i][j]))
    res = {"fixture": a.fixture, "p0": n, "pairs": len(pairs), **{f"maxAbsDiff_{k}": v for k, v in dmax.items()},
           "tolerance": a.tol}
    res["ok"] = all(v <= a.tol for v in dmax.values())
    print(json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
