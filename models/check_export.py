"""Checks a delift model bundle's ONNX exports against the PyTorch checkpoint.

  /tmp/pyenv/bin/python models/check_export.py [--bundle models/tiny]

(i)   no past (past length 0), full sequences, batch of 2 right-padded rows;
(ii)  a prefix run (batch 1), then a batch of 3 continuations of different lengths, right-padded,
      with the prefix KV (broadcast to batch 3) as past; logits at the real positions are compared with
      the HF model run on each whole unpadded sequence;
(iii) encoder.onnx last_hidden_state vs the HF model's final normed hidden states (right-padded batch).
Fails (exit 1) when a max abs diff exceeds --tol (1e-4).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from transformers import AutoModelForCausalLM


def run_checks(bundle: Path, seed: int = 1234, tol: float = 1e-4) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AutoModelForCausalLM.from_pretrained(str(bundle / "checkpoint"), dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    cfg = model.config
    L, kvh = cfg.num_hidden_layers, cfg.num_key_value_heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    V = cfg.vocab_size
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    dec = ort.InferenceSession(str(bundle / "model.onnx"), so, providers=["CPUExecutionProvider"])
    enc = ort.InferenceSession(str(bundle / "encoder.onnx"), so, providers=["CPUExecutionProvider"])

    def hf_logits(ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids])).logits[0].numpy()

    def empty_past(b):
        return {f"past_key_values.{l}.{kv}": np.zeros((b, kvh, 0, hd), np.float32)
                for l in range(L) for kv in ("key", "value")}

    res = {}
    # (i) no past
    lens = [37, 20]
    seqs = [rng.integers(1, V, n).tolist() for n in lens]
    T = max(lens)
    ids = np.zeros((2, T), np.int64)
    am = np.zeros((2, T), np.int64)
    for r, sq in enumerate(seqs):
        ids[r, :len(sq)] = sq
        am[r, :len(sq)] = 1
    pos = np.tile(np.arange(T, dtype=np.int64), (2, 1))
    out = dec.run(None, {"input_ids": ids, "attention_mask": am, "position_ids": pos, **empty_past(2)})
    d1 = 0.0
    for r, sq in enumerate(seqs):
        d1 = max(d1, float(np.abs(out[0][r, :len(sq)] - hf_logits(sq)).max()))
    res["noPastMaxAbsDiff"] = d1
    assert out[1].shape == (2, kvh, T, hd), out[1].shape

    # (ii) prefix + batch of 3 right-padded continuations
    P = 29
    prefix = rng.integers(1, V, P).tolist()
    pids = np.array([prefix], np.int64)
    pout = dec.run(None, {"input_ids": pids, "attention_mask": np.ones((1, P), np.int64),
                          "position_ids": np.arange(P, dtype=np.int64)[None], **empty_past(1)})
    d_prefix = float(np.abs(pout[0][0] - hf_logits(prefix)).max())
    clen = [11, 4, 8]
    conts = [rng.integers(1, V, n).tolist() for n in clen]
    C = max(clen)
    cids = np.zeros((3, C), np.int64)
    cam = np.zeros((3, P + C), np.int64)
    cam[:, :P] = 1
    for r, c in enumerate(conts):
        cids[r, :len(c)] = c
        cam[r, P:P + len(c)] = 1
    cpos = np.tile(np.arange(P, P + C, dtype=np.int64), (3, 1))
    feeds = {"input_ids": cids, "attention_mask": cam, "position_ids": cpos}
    names = [o.name for o in dec.get_outputs()]
    for i, n in enumerate(names[1:]):
        l, kv = n.split(".")[1], n.split(".")[2]
        feeds[f"past_key_values.{l}.{kv}"] = np.repeat(pout[1 + i], 3, axis=0)
    cout = dec.run(None, feeds)
    d2 = 0.0
    for r, c in enumerate(conts):
        full = hf_logits(prefix + c)
        d2 = max(d2, float(np.abs(cout[0][r, :len(c)] - full[P:]).max()))
    res["prefixMaxAbsDiff"] = d_prefix
    res["continuationMaxAbsDiff"] = d2
    assert cout[1].shape == (3, kvh, P + C, hd)

    # (iii) encoder
    lens = [25, 9, 16]
    seqs = [rng.integers(1, V, n).tolist() for n in lens]
    T = max(lens)
    ids = np.zeros((3, T), np.int64)
    am = np.zeros((3, T), np.int64)
    for r, sq in enumerate(seqs):
        ids[r, :len(sq)] = sq
        am[r, :len(sq)] = 1
    eout = enc.run(None, {"input_ids": ids, "attention_mask": am})[0]
    d3 = 0.0
    for r, sq in enumerate(seqs):
        with torch.no_grad():
            hs = model.model(input_ids=torch.tensor([sq])).last_hidden_state[0].numpy()
        d3 = max(d3, float(np.abs(eout[r, :len(sq)] - hs).max()))
    res["encoderMaxAbsDiff"] = d3
    res["tolerance"] = tol
    res["ok"] = all(res[k] <= tol for k in ("noPastMaxAbsDiff", "prefixMaxAbsDiff", "continuationMaxAbsDiff",
                                            "encoderMaxAbsDiff"))
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default="models/tiny")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(2)
    res = run_checks(Path(a.bundle), tol=a.tol)
    print(json.dumps(res, indent=2))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
