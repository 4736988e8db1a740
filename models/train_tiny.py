"""Builds delift's own tiny model bundle (models/tiny): tokenizer, Llama-style decoder, ONNX exports, manifest.

  /tmp/pyenv/bin/python models/train_tiny.py --out models/tiny              # full build (~30 min of training on 2 idle cores)
  /tmp/pyenv/bin/python models/train_tiny.py --out DIR --steps 150          # quick bundle, same layout
  /tmp/pyenv/bin/python models/train_tiny.py --random-vocab 32000 --out DIR # untrained benchmark bundle

Reproducible: fixed seeds, fixed step count. The tokenizer is trained once (BPE, byte level, 4096) and then
kept: if DIR/tokenizer.json exists it is reused unless --retrain-tokenizer is given.
Python is only needed to prepare the bundle; delift never runs it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tinylib import EOS_ID, EOS_TOKEN, export_onnx, load_jsonl, prompt_x, sha256_file  # noqa: E402

DATA = "/work/shared/data/pretrain-p3-41k.jsonl.gz"
GSM8K_TEST = "/work/shared/data/gsm8k-test.jsonl"
VOCAB = 4096
SEQ = 1024
ARCH = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=SEQ)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---------------------------------------------------------------- tokenizer

def train_tokenizer(samples: list[dict], path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=[EOS_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)

    def it():
        for s in samples:
            yield prompt_x(s)
            yield s["output"]

    tok.train_from_iterator(it(), trainer, length=2 * len(samples))
    assert tok.token_to_id(EOS_TOKEN) == EOS_ID
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    tok.save(str(path))


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path))
    assert tok.token_to_id(EOS_TOKEN) == EOS_ID
    return tok


def encode_samples(tok, samples: list[dict]) -> list[list[int]]:
    """Per sample: tok(x) + tok("\\n") + [EOS] + tok(y) + [EOS], each field tokenized on its own (the canonical
    tokenization delift scores with)."""
    xs = tok.encode_batch([prompt_x(s) for s in samples], add_special_tokens=False)
    ys = tok.encode_batch([s["output"] for s in samples], add_special_tokens=False)
    nl = tok.encode("\n", add_special_tokens=False).ids
    return [x.ids + nl + [EOS_ID] + y.ids + [EOS_ID] for x, y in zip(xs, ys)]


def pack(samples: list[dict], enc: list[list[int]], fill: bool) -> list[list[int]]:
    """Packs consecutive samples of the same task into sequences of at most SEQ tokens, each starting at a
    sample boundary. fill=True (training): a sample that does not fit tops up the current sequence with its
    beginning and then starts the next one in full (no padding waste). fill=False (evaluation): every token
    is counted once; the sequence is closed and the sample starts the next one. A sample longer than SEQ is
    cut to SEQ tokens."""
    groups: "OrderedDict[str, list[list[int]]]" = OrderedDict()
    for s, e in zip(samples, enc):
        groups.setdefault(s["task"], []).append(e)
    seqs = []
    for lst in groups.values():
        cur: list[int] = []
        k = 0
        while k < len(lst):
            s = lst[k]
            if not cur and len(s) >= SEQ:
                seqs.append(s[:SEQ])
                k += 1
            elif len(cur) + len(s) <= SEQ:
                cur = cur + s
                k += 1
            else:
                if fill:
                    cur = cur + s[:SEQ - len(cur)]
                seqs.append(cur)
                cur = []
        if cur:
            seqs.append(cur)
    return seqs


def to_tensors(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(seqs), SEQ), EOS_ID, dtype=torch.int64)
    lab = torch.full((len(seqs), SEQ), -100, dtype=torch.int64)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
        lab[r, :len(s)] = torch.tensor(s)
    return ids, lab


# ---------------------------------------------------------------- model

def make_config(vocab: int):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=vocab, **ARCH, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                       tie_word_embeddings=True, attention_bias=False, mlp_bias=False, rms_norm_eps=1e-6,
                       bos_token_id=None, eos_token_id=EOS_ID, pad_token_id=EOS_ID, dtype="float32")


def make_model(vocab: int, seed: int):
    from transformers import LlamaForCausalLM
    torch.manual_seed(seed)
    m = LlamaForCausalLM(make_config(vocab)).to(torch.float32)
    m.config._attn_implementation = "sdpa"
    return m


@torch.no_grad()
def eval_nll(model, ids: torch.Tensor, lab: torch.Tensor, bs: int = 8) -> tuple[float, int]:
    model.eval()
    tot, n = 0.0, 0
    lens = (lab != -100).sum(1)
    order = torch.argsort(lens, descending=True, stable=True)
    for i in range(0, len(ids), bs):
        sel = order[i:i + bs]
        w = int(lens[sel].max())  # right padding only: trim the batch to its longest row
        x, y = ids[sel, :w], lab[sel, :w]
        logits = model(input_ids=x).logits[:, :-1].float()
        tgt = y[:, 1:]
        m = tgt != -100
        lp = torch.log_softmax(logits, -1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        tot += float(-(lp * m).sum())
        n += int(m.sum())
    model.train()
    return tot, n


def unigram_nll(logp: np.ndarray, lab: torch.Tensor) -> float:
    tgt = lab[:, 1:]
    t = tgt[tgt != -100].numpy()
    return float(-logp[t].sum())


def evaluate(model, logp_uni, sets: dict) -> dict:
    out = {}
    for name, (ids, lab, nsamp) in sets.items():
        nll, n = eval_nll(model, ids, lab)
        out[name] = {"samples": nsamp, "sequences": len(ids), "tokens": n, "ppl": round(math.exp(nll / n), 4),
                     "unigramPpl": round(math.exp(unigram_nll(logp_uni, lab) / n), 4)}
    return out


def lr_at(step: int, total: int, base: float, warmup: int, floor: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def train(model, ids, lab, args, eval_fn) -> dict:
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(ids), generator=g)
    ptr = 0
    epochs = 0
    model.train()
    t0 = time.time()
    hist = []
    run_loss = None
    for step in range(args.steps):
        if ptr + args.batch > len(order):
            order = torch.randperm(len(ids), generator=g)
            ptr = 0
            epochs += 1
        idx = order[ptr:ptr + args.batch]
        ptr += args.batch
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        loss = model(input_ids=ids[idx], labels=lab[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lv = loss.item()
        run_loss = lv if run_loss is None else 0.95 * run_loss + 0.05 * lv
        if step % 25 == 0 or step == args.steps - 1:
            el = time.time() - t0
            log(f"step {step}/{args.steps} loss {lv:.4f} (ema {run_loss:.4f}) lr {opt.param_groups[0]['lr']:.2e} "
                f"{el:.0f}s eta {el / (step + 1) * (args.steps - step - 1):.0f}s")
        if args.eval_every and step > 0 and step % args.eval_every == 0:
            ev = eval_fn()
            log("eval", json.dumps(ev))
            hist.append({"step": step, **{k: v["ppl"] for k, v in ev.items()}})
    secs = time.time() - t0
    tokens_seen = args.steps * args.batch * SEQ
    return {"steps": args.steps, "batchSequences": args.batch, "seqLen": SEQ, "tokensSeen": tokens_seen,
            "epochs": round(tokens_seen / (len(ids) * SEQ), 3), "lr": args.lr, "warmupSteps": args.warmup,
            "schedule": "linear warmup + cosine to 0.1*lr", "optimizer": "AdamW(0.9,0.95), wd %g, clip 1.0" % args.weight_decay,
            "seconds": round(secs, 1), "evalHistory": hist}


# ---------------------------------------------------------------- bundle

def write_bundle(model, out: Path, tok_path: Path, metrics: dict, training: dict, name: str) -> dict:
    from check_export import run_checks
    out.mkdir(parents=True, exist_ok=True)
    if tok_path.resolve() != (out / "tokenizer.json").resolve():
        shutil.copyfile(tok_path, out / "tokenizer.json")
    model.eval()
    ck = out / "checkpoint"
    if ck.exists():
        shutil.rmtree(ck)
    model.config._attn_implementation = "eager"
    model.save_pretrained(str(ck))
    export_onnx(model, out)
    log("export done; checking")
    check = run_checks(out)
    log("export check", json.dumps(check))
    if not check["ok"]:
        raise SystemExit("export check failed")
    cfg = model.config
    manifest = {
        "format": "delift-bundle/1",
        "name": name,
        "eosId": EOS_ID,
        "padId": EOS_ID,
        "maxLength": SEQ,
        "vocabSize": cfg.vocab_size,
        "numLayers": cfg.num_hidden_layers,
        "numHeads": cfg.num_attention_heads,
        "numKvHeads": cfg.num_key_value_heads,
        "headDim": cfg.hidden_size // cfg.num_attention_heads,
        "hiddenSize": cfg.hidden_size,
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json", "encoder": "encoder.onnx"},
        "sha256": {f: sha256_file(out / f) for f in ("model.onnx", "tokenizer.json", "encoder.onnx")},
        "checkpointSha256": sha256_file(ck / "model.safetensors"),
        "metrics": metrics,
        "training": training,
        "exportCheck": check,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_readme(out: Path, man: dict) -> None:
    m, t = man["metrics"], man["training"]
    ho, gs = m["heldout"], m["gsm8k"]
    hs, gss = m["heldoutSingle"], m["gsm8kSingle"]
    ec = man["exportCheck"]
    txt = f"""# delift-tiny

delift's own small causal language model, trained from scratch by `models/train_tiny.py` so that the
whole project (kernel engine, workers, tests) runs offline. It is a test and demo model, not a useful LM.

## Architecture

transformers `LlamaForCausalLM`: vocabulary {man['vocabSize']}, hidden {man['hiddenSize']}, MLP 384 (SwiGLU),
{man['numLayers']} layers, {man['numHeads']} attention heads, {man['numKvHeads']} key/value heads (grouped-query attention),
head dim {man['headDim']}, RoPE theta 10000, max positions {man['maxLength']}, tied input/output embeddings, no biases,
float32, {t.get('parameters', 0):,} parameters.

Tokenizer: byte-level BPE (Hugging Face `tokenizers`), 4096 entries, ByteLevel pre-tokenizer
(add_prefix_space=false, GPT-2 regex), ByteLevel decoder, no normalizer, no post-processor (nothing added).
The single special token `<|endoftext|>` is id 0 and serves as EOS and padding.

## Files

| file | what |
|---|---|
| `tokenizer.json` | the tokenizer |
| `model.onnx` | decoder with KV cache, optimum signature: `input_ids`, `attention_mask` (past + current), `position_ids`, `past_key_values.{{0..3}}.key/value` [batch, 2, past, 32] -> `logits` [batch, seq, 4096], `present.{{0..3}}.key/value` |
| `encoder.onnx` | `input_ids`, `attention_mask` -> `last_hidden_state` [batch, seq, 128] (final normed hidden states; mean pooling is done by the caller) |
| `checkpoint/` | the PyTorch weights (`save_pretrained`), used by the Python reference `bench/reference/` |
| `manifest.json` | ids, shapes, sha256 of the files, metrics, training settings, export check |

## Data and training

Text: `pretrain-p3-41k.jsonl.gz` (P3 prompts of 22 datasets, no overlap with the selection corpora), each sample
formatted as `x + "\\n" + EOS + output + EOS` with x = instruction (+ "\\n" + input), every field tokenized on its
own. Consecutive samples of the same task are packed into 1024-token sequences, so that the model learns to use
earlier examples in its context. {t['heldoutSamples']} samples (2%) are held out.
{t['steps']} steps x {t['batchSequences']} sequences x 1024 tokens ({t['tokensSeen'] / 1e6:.1f} M tokens, {t['epochs']} epochs of the
{t['trainSequences']} training sequences), AdamW lr {t['lr']}, {t['warmupSteps']} warmup steps then cosine decay, seed {t['seed']},
2 CPU threads: {t['seconds'] / 60:.1f} minutes of training ({t['totalSeconds'] / 60:.1f} minutes for the whole build).
{t.get('note', '')}

## Metrics (token perplexity)

| eval set | tokens | model | unigram baseline (add-one) |
|---|---|---|---|
| held-out P3 samples, packed like training | {ho['tokens']:,} | {ho['ppl']:.2f} | {ho['unigramPpl']:.2f} |
| held-out P3 samples, one sample per sequence | {hs['tokens']:,} | {hs['ppl']:.2f} | {hs['unigramPpl']:.2f} |
| GSM8K test (first 200), packed | {gs['tokens']:,} | {gs['ppl']:.2f} | {gs['unigramPpl']:.2f} |
| GSM8K test (first 200), one sample per sequence | {gss['tokens']:,} | {gss['ppl']:.2f} | {gss['unigramPpl']:.2f} |

The unigram baseline uses token frequencies of the training split, add-one smoothed, on the same tokens.
The held-out samples are unseen, but P3 applies several templates to the same source examples and consecutive
samples often share a passage, so their source texts largely occur in the training split: the held-out figure
measures in-distribution fit, not generalisation. GSM8K is not in the training data (out of domain) and is the
honest figure for the selection corpora.

Export check (`models/check_export.py`, max abs diff of ONNX vs PyTorch): no past {ec['noPastMaxAbsDiff']:.2e},
prefix {ec['prefixMaxAbsDiff']:.2e}, continuation with past {ec['continuationMaxAbsDiff']:.2e}, encoder {ec['encoderMaxAbsDiff']:.2e}.

## Rebuild

```
python -m venv /tmp/pyenv && /tmp/pyenv/bin/pip install -r models/requirements.txt
/tmp/pyenv/bin/python models/train_tiny.py --out models/tiny
/tmp/pyenv/bin/python models/check_export.py --bundle models/tiny
```
The existing `tokenizer.json` is kept (pass `--retrain-tokenizer` to train it again; it is deterministic).
"""
    (out / "README.md").write_text(txt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/tiny")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--gsm8k", default=GSM8K_TEST)
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--holdout", type=float, default=0.02)
    ap.add_argument("--retrain-tokenizer", action="store_true")
    ap.add_argument("--random-vocab", type=int, default=0, help="untrained bundle with this vocab size")
    ap.add_argument("--tokenizer", default="models/tiny/tokenizer.json", help="tokenizer for --random-vocab")
    ap.add_argument("--readme-only", action="store_true", help="rewrite DIR/README.md from DIR/manifest.json")
    ap.add_argument("--export-only", action="store_true",
                    help="export DIR/checkpoint to ONNX again (after an export change), check it, update the manifest")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.time()
    out = Path(args.out)
    if args.readme_only:
        write_readme(out, json.loads((out / "manifest.json").read_text()))
        return
    if args.export_only:
        from check_export import run_checks
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(str(out / "checkpoint")).eval()
        export_onnx(model, out)
        check = run_checks(out)
        log("export check", json.dumps(check))
        if not check["ok"]:
            raise SystemExit("export check failed")
        man = json.loads((out / "manifest.json").read_text())
        man["sha256"] = {f: sha256_file(out / f) for f in ("model.onnx", "tokenizer.json", "encoder.onnx")}
        man["exportCheck"] = check
        (out / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")
        write_readme(out, man)
        log("re-exported", out)
        return
    out.mkdir(parents=True, exist_ok=True)

    if args.random_vocab:
        tok_path = Path(args.tokenizer)
        tok = load_tokenizer(tok_path)
        if args.random_vocab < tok.get_vocab_size():
            raise SystemExit(f"--random-vocab must be >= the tokenizer's {tok.get_vocab_size()} entries")
        model = make_model(args.random_vocab, args.seed)
        training = {"untrained": True, "seed": args.seed,
                    "parameters": sum(p.numel() for p in model.parameters())}
        man = write_bundle(model, out, tok_path, {}, training, f"delift-random-v{args.random_vocab}")
        log("random bundle written to", out, json.dumps(man["sha256"]))
        return

    samples = load_jsonl(args.data)
    rng = random.Random(args.seed)
    held = [rng.random() < args.holdout for _ in samples]
    tr = [s for s, h in zip(samples, held) if not h]
    ho = [s for s, h in zip(samples, held) if h]
    log(f"{len(samples)} samples: {len(tr)} train, {len(ho)} held out")

    tok_path = out / "tokenizer.json"
    if args.retrain_tokenizer or not tok_path.exists():
        t = time.time()
        train_tokenizer(tr, tok_path)
        log(f"tokenizer trained in {time.time() - t:.0f}s")
    else:
        log("reusing", tok_path)
    tok = load_tokenizer(tok_path)

    enc_tr = encode_samples(tok, tr)
    enc_ho = encode_samples(tok, ho)
    gsm = load_jsonl(args.gsm8k, 200)
    enc_gsm = encode_samples(tok, gsm)
    counts = np.bincount(np.concatenate([np.asarray(e) for e in enc_tr]), minlength=VOCAB).astype(np.float64)
    logp_uni = np.log((counts + 1) / (counts.sum() + VOCAB))
    tr_ids, tr_lab = to_tensors(pack(tr, enc_tr, fill=True))
    log(f"train tokens {int(counts.sum())}, sequences {len(tr_ids)}")
    sets = {
        "heldout": (*to_tensors(pack(ho, enc_ho, fill=False)), len(ho)),
        "heldoutSingle": (*to_tensors([e[:SEQ] for e in enc_ho]), len(ho)),
        "gsm8k": (*to_tensors(pack(gsm, enc_gsm, fill=False)), len(gsm)),
        "gsm8kSingle": (*to_tensors([e[:SEQ] for e in enc_gsm]), len(gsm)),
    }

    model = make_model(VOCAB, args.seed)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model parameters {nparams}")
    training = train(model, tr_ids, tr_lab, args, lambda: evaluate(model, logp_uni, {k: sets[k] for k in ("heldout", "gsm8k")}))
    log(f"training took {training['seconds']:.0f}s")
    metrics = evaluate(model, logp_uni, sets)
    metrics["note"] = ("token perplexity; unigram = training-split token frequencies, add-one smoothed, on the same "
                       "tokens; packed = consecutive same-task samples in 1024-token sequences as in training; "
                       "Single = each sample alone; gsm8k = gsm8k-test.jsonl first 200 samples")
    log("metrics", json.dumps(metrics))
    training.update({"parameters": nparams, "seed": args.seed, "threads": args.threads,
                     "data": os.path.basename(args.data), "trainSamples": len(tr), "heldoutSamples": len(ho),
                     "trainTokens": int(counts.sum()), "trainSequences": len(tr_ids),
                     "torch": torch.__version__, "transformers": __import__("transformers").__version__})
    man = write_bundle(model, out, tok_path, metrics, training, "delift-tiny")
    man["training"]["totalSeconds"] = round(time.time() - t_start, 1)
    (out / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")
    write_readme(out, man)
    log("bundle written to", out)


if __name__ == "__main__":
    main()
