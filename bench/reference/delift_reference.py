"""Independent Python reference of the DELIFT utility kernel (arXiv 2411.04425), computed the way the original
DELIFT code runs it: a transformers causal LM, the whole prompt of every pair, no KV cache, batches of padded
pairs. It is the ground truth the TypeScript engine's tests compare with (test/fixtures/reference-kernel*.json).

  # fixture: the first N samples of FILE, all N*N pairs
  /tmp/pyenv/bin/python bench/reference/delift_reference.py --data FILE --n 32 --max-len 1024 --out OUT.json
  # timing of the N x N kernel (N*N pairs + N P0 baselines), one JSON line on stdout
  /tmp/pyenv/bin/python bench/reference/delift_reference.py --bench --data FILE --n 64 --max-len 1024 [--threads T]

Definitions (DESIGN.md section 1):
  x = instruction (+ "\\n" + input when input is non-empty), y = output
  P0(i)    = "Instruction: Please generate a response to the following query.\\n\\n\\nQuery: " x_i "\\n" EOS y_i EOS
  P1(i, j) = "Instruction:\\nUse the following example as a guide to answer the query in the same format and style,
              providing a clear and concise response.\\n\\n\\nExample:\\n" x_j "\\n" y_j "\\n\\n\\nQuery:\\n" x_i "\\n" EOS y_i EOS
  every literal segment and every field tokenized on its own (no special tokens added), ids concatenated
  response = tokens of y_i + closing EOS (T tokens); p_t = softmax(logits at the position before token t)[token t]
  d = sqrt(sum_t (1 - p_t)^2) / sqrt(T)
  UF[i][j] = d(y_i | P0(x_i)) - d(y_i | P1(x_j, y_j, x_i))   (row i = target, column j = example)
  sequences longer than max_len lose their first (len - max_len) tokens (context only; a sample whose
  response needs max_len or more tokens is rejected up front).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

P0_PREFIX = "Instruction: Please generate a response to the following query.\n\n\nQuery: "
P1_PREFIX = ("Instruction:\nUse the following example as a guide to answer the query in the same format and style, "
             "providing a clear and concise response.\n\n\nExample:\n")
P1_QUERY = "\n\n\nQuery:\n"
NEWLINE = "\n"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_samples(path: str, n: int) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            s = json.loads(line)
            for k in ("instruction", "output"):
                if not isinstance(s.get(k), str):
                    raise SystemExit(f"{path}:{lineno}: missing field {k}")
            out.append(s)
            if len(out) >= n:
                break
    if len(out) < n:
        raise SystemExit(f"{path}: only {len(out)} samples, {n} requested")
    return out


class Reference:
    def __init__(self, bundle: str, max_len: int, batch: int = 32, checkpoint: str | None = None,
                 eos: int | None = None, pad: int | None = None, weights_dtype: str = "float32"):
        from tokenizers import Tokenizer
        from transformers import AutoModelForCausalLM
        self.bundle = Path(bundle)
        manifest_path = self.bundle / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"files": {"tokenizer": "tokenizer.json"}}
        if eos is None and "eosId" not in manifest:
            raise SystemExit(f"{bundle}: no manifest.json; give --eos-id")
        self.eos = int(eos if eos is not None else manifest["eosId"])
        self.pad = int(pad if pad is not None else manifest.get("padId", self.eos))
        self.tok = Tokenizer.from_file(str(self.bundle / manifest["files"]["tokenizer"]))
        self.checkpoint = Path(checkpoint) if checkpoint else self.bundle / "checkpoint"
        self.model = AutoModelForCausalLM.from_pretrained(str(self.checkpoint), dtype=torch.float32,
                                                          attn_implementation="eager").eval()
        if weights_dtype == "bfloat16":
            # the weights a bfloat16 export holds, computed in float32 (what delift's CPU path does with such an export)
            self.model = self.model.to(torch.bfloat16).to(torch.float32)
        self.max_len = max_len
        self.batch = batch
        self.truncated = {"p0": 0, "p1": 0}
        self.tokens = 0

    def enc(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def prepare(self, samples: list[dict]) -> None:
        self.x = []
        self.y = []
        for s in samples:
            x = s["instruction"] + (NEWLINE + s["input"] if s.get("input") else "")
            self.x.append(self.enc(x))
            self.y.append(self.enc(s["output"]))
        self.p0_prefix = self.enc(P0_PREFIX)
        self.p1_prefix = self.enc(P1_PREFIX)
        self.p1_query = self.enc(P1_QUERY)
        self.nl = self.enc(NEWLINE)
        bad = [samples[i].get("id", i) for i, y in enumerate(self.y) if len(y) + 1 >= self.max_len]
        if bad:
            raise SystemExit(f"samples whose response needs >= max_len={self.max_len} tokens: {bad}")

    def seq_p0(self, i: int) -> list[int]:
        return self.p0_prefix + self.x[i] + self.nl + [self.eos] + self.y[i] + [self.eos]

    def seq_p1(self, i: int, j: int) -> list[int]:
        return (self.p1_prefix + self.x[j] + self.nl + self.y[j] + self.p1_query + self.x[i] + self.nl + [self.eos]
                + self.y[i] + [self.eos])

    def truncate(self, seq: list[int], kind: str) -> list[int]:
        if len(seq) > self.max_len:
            self.truncated[kind] += 1
            return seq[len(seq) - self.max_len:]
        return seq

    @torch.no_grad()
    def score(self, seqs: list[list[int]], resp_lens: list[int]) -> list[float]:
        """d for each (sequence, T): one forward pass per batch of `batch` right-padded sequences."""
        out: list[float] = []
        for b0 in range(0, len(seqs), self.batch):
            chunk = seqs[b0:b0 + self.batch]
            tl = resp_lens[b0:b0 + self.batch]
            w = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), w), self.pad, dtype=torch.int64)
            am = torch.zeros((len(chunk), w), dtype=torch.int64)
            for r, s in enumerate(chunk):
                ids[r, :len(s)] = torch.tensor(s, dtype=torch.int64)
                am[r, :len(s)] = 1
                self.tokens += len(s)
            pos = torch.arange(w, dtype=torch.int64).unsqueeze(0).expand(len(chunk), w)
            logits = self.model(input_ids=ids, attention_mask=am, position_ids=pos, use_cache=False).logits
            for r, s in enumerate(chunk):
                n, t = len(s), tl[r]
                start = n - t  # first response token
                probs = torch.softmax(logits[r, start - 1:n - 1].float(), dim=-1)
                tgt = ids[r, start:n]
                p = probs.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).double()
                out.append(math.sqrt(float(((1.0 - p) ** 2).sum())) / math.sqrt(t))
        return out

    def kernel(self, n: int) -> tuple[list[float], list[list[float]]]:
        p0 = [self.truncate(self.seq_p0(i), "p0") for i in range(n)]
        d0 = self.score(p0, [len(self.y[i]) + 1 for i in range(n)])
        seqs, tl = [], []
        for i in range(n):  # row-major: target i, example j
            for j in range(n):
                seqs.append(self.truncate(self.seq_p1(i, j), "p1"))
                tl.append(len(self.y[i]) + 1)
        flat = self.score(seqs, tl)
        d1 = [flat[i * n:(i + 1) * n] for i in range(n)]
        return d0, d1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/tiny", help="bundle directory (manifest.json or an export's tokenizer.json, checkpoint/)")
    ap.add_argument("--checkpoint", help="PyTorch checkpoint directory (default: MODEL/checkpoint)")
    ap.add_argument("--eos-id", type=int, help="EOS id (default: the manifest's)")
    ap.add_argument("--pad-id", type=int, help="padding id (default: the manifest's, else EOS)")
    ap.add_argument("--weights-dtype", choices=["float32", "bfloat16"], default="float32",
                    help="round the checkpoint's weights to this type first (then compute in float32)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    if not a.bench and not a.out:
        ap.error("--out is required unless --bench")
    torch.set_num_threads(a.threads)
    samples = read_samples(a.data, a.n)
    ref = Reference(a.model, a.max_len, a.batch, a.checkpoint, a.eos_id, a.pad_id, a.weights_dtype)
    t0 = time.perf_counter()
    ref.prepare(samples)
    d0, d1 = ref.kernel(a.n)
    secs = time.perf_counter() - t0
    pairs = a.n * a.n
    if a.bench:
        print(json.dumps({"pairs": pairs, "seconds": round(secs, 3), "pairsPerSecond": round(pairs / secs, 2),
                          "tokens": ref.tokens, "n": a.n, "p0": a.n, "maxLength": a.max_len, "batch": a.batch,
                          "threads": a.threads, "truncated": ref.truncated["p0"] + ref.truncated["p1"]}))
        return 0
    uf = [[d0[i] - d1[i][j] for j in range(a.n)] for i in range(a.n)]
    res = {
        "model": a.model,
        "modelSha256": sha256_file(ref.checkpoint / "model.safetensors"),
        "eosId": ref.eos,
        "weightsDtype": a.weights_dtype,
        "tokenizerSha256": sha256_file(ref.bundle / "tokenizer.json"),
        "data": os.path.basename(a.data),
        "maxLength": a.max_len,
        "ids": [s.get("id", str(k)) for k, s in enumerate(samples)],
        "d0": d0,
        "d1": d1,
        "uf": uf,
        "truncated": ref.truncated["p0"] + ref.truncated["p1"],
        "truncatedP0": ref.truncated["p0"],
        "truncatedP1": ref.truncated["p1"],
        "pairs": pairs,
        "seconds": round(secs, 1),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res) + "\n")
    print(json.dumps({k: res[k] for k in ("pairs", "truncated", "truncatedP0", "truncatedP1", "seconds")}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
