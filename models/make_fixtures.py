"""Builds delift's user-model fixtures (test/fixtures/models): tiny seeded exports of real architectures in the
shapes users bring, each trained a few hundred steps so their utilities are well above float noise.

  /tmp/pyenv/bin/python models/make_fixtures.py                 # everything; training takes most of it (3.8 to 20 minutes
                                                                 # per family on the shared 2-core VM at load 7 to 16), and a
                                                                 # checkpoint of the same tokenizer and shapes is reused (--retrain)
  /tmp/pyenv/bin/python models/make_fixtures.py --only qwen2    # one family (its exports and reference)

Families (transformers configs, trained from the same seed on test/fixtures/gsm8k-train-512.jsonl, GSM8K, MIT):
  qwen2  Qwen2ForCausalLM, grouped-query attention (4 heads, 2 KV heads), tied embeddings; byte-level BPE with
         Qwen2's split regex and NFC; eos <|endoftext|> (not id 0), generation_config eos as a list
  llama  LlamaForCausalLM, GQA, untied; SentencePiece-style BPE with a Metaspace pre-tokenizer and byte fallback
  phi3   Phi3ForCausalLM (fused qkv_proj and gate_up_proj); Llama-2-style tokenizer (Prepend/Replace normalizer,
         byte fallback), eos <|endoftext|>
  gpt2   GPT2LMHeadModel, learned positions, n_positions; GPT-2 byte-level BPE

Exports (optimum's signature: input_ids, attention_mask, position_ids, past_key_values.N.key/value -> logits,
present.N.key/value; legacy torch.onnx exporter, opset 17; dynamic batch, sequence and past axes), each a plain
export directory (config.json, generation_config.json, tokenizer.json, tokenizer_config.json, no delift manifest):
  qwen2            model.onnx
  qwen2-merged     decoder_model_merged.onnx (optimum's If over use_cache_branch; built like optimum's merge_decoders)
  qwen2-fp16       model.onnx with float16 weights and cache
  qwen2-bf16       model.onnx with bfloat16 weights (onnxruntime's CPU provider has no bfloat16 kernels: delift widens it)
  llama            model.onnx + model.onnx_data (all weights in one external file, as optimum saves large models)
  llama-tensors    model.onnx + one external file per tensor
  phi3             decoder_model.onnx + decoder_with_past_model.onnx (a split export)
  gpt2             model.onnx with position_ids
  gpt2-nopos       model.onnx without a position_ids input (positions follow the past length inside the graph)
PyTorch checkpoints go to test/fixtures/models/checkpoints/<family>; reference kernels (bench/reference, whole
prompt, no cache) to test/fixtures/models/reference-<family>.json; Python tokenizers' ids of GSM8K and hard
non-ASCII texts to test/fixtures/models/tokenizer-parity-<family>.jsonl; test/fixtures/models/fixtures.json lists it all.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "models"
TRAIN = ROOT / "test" / "fixtures" / "gsm8k-train-512.jsonl"
EVAL = ROOT / "test" / "fixtures" / "gsm8k-32.jsonl"
REFERENCE = ROOT / "bench" / "reference" / "delift_reference.py"
SEED = 20261201
STEPS = 240
SEQ = 160
BATCH = 8
CONTEXT = 1024
REF_SAMPLES = 8

QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

HARD_TEXTS = [
    "café 数学 🙂 \r\n\t x", "  leading spaces and trailing  ", "naïve façade — “quotes” … ½ × 3 ≠ 2",
    "日本語のテキストと中文混合", "emoji 👩‍👩‍👧‍👦 family, flags 🇫🇷🇯🇵", "שלום עולם مرحبا بالعالم", "tabs\tand\nnewlines\r\nand\r",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ", "e\u0301 combining vs é precomposed", "$1,234.56 + 7% = ? #### 42", "a" * 60,
    "<|endoftext|> inside text", "</s> and <s> as text", "\u00a0non-breaking\u2009thin space", "zero\u200bwidth",
]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def prompt_x(s: dict) -> str:
    return s["instruction"] + ("\n" + s["input"] if s.get("input") else "")


def texts_of(samples: list[dict]):
    for s in samples:
        yield prompt_x(s)
        yield s["output"]


# ---------------------------------------------------------------- tokenizers

def byte_level_tokenizer(samples, style: str):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    if style == "qwen2":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        vocab = 512
    else:  # gpt2
        specials = ["<|endoftext|>"]
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        vocab = 512
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab - len(specials), min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts_of(samples), trainer)
    tok.add_special_tokens(specials)  # appended at the end of the vocabulary, as in Qwen2 and GPT-2
    assert tok.get_vocab_size() == vocab, tok.get_vocab_size()
    return tok, {"eos": "<|endoftext|>", "specials": specials}


def sentencepiece_tokenizer(samples, style: str):
    """Llama-2-style BPE with byte fallback: <unk> <s> </s>, then <0x00>..<0xFF>, then merges."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    extra = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"] if style == "phi3" else []
    vocab = 512 if style == "phi3" else 768
    trainer = trainers.BpeTrainer(vocab_size=vocab - len(extra), min_frequency=2, show_progress=False, limit_alphabet=64,
                                  special_tokens=["<unk>", "<s>", "</s>", *byte_tokens])
    tok.train_from_iterator(texts_of(samples), trainer)
    data = json.loads(tok.to_str())
    # byte tokens are ordinary vocabulary entries (byte fallback), not added tokens
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in set(byte_tokens)]
    if style == "llama":
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
        data["normalizer"] = None
    else:  # phi3: the legacy Llama-2 form, normalizer instead of pre-tokenizer
        data["pre_tokenizer"] = None
        data["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                                   {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    if extra:
        tok.add_special_tokens(extra)
    assert tok.get_vocab_size() == vocab, tok.get_vocab_size()
    return tok, {"eos": "<|endoftext|>" if style == "phi3" else "</s>", "specials": ["<unk>", "<s>", "</s>", *extra]}


def make_tokenizer(family: str, samples):
    return byte_level_tokenizer(samples, family) if family in ("qwen2", "gpt2") else sentencepiece_tokenizer(samples, family)


# ---------------------------------------------------------------- models

def make_model(family: str, vocab: int, eos: int, bos: int | None):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=CONTEXT, eos_token_id=eos, bos_token_id=bos)
    if family == "qwen2":
        cfg = Qwen2Config(**common, num_key_value_heads=2, tie_word_embeddings=True, use_sliding_window=False, rope_theta=10000.0)
        return Qwen2ForCausalLM(cfg)
    if family == "llama":
        cfg = LlamaConfig(**common, num_key_value_heads=2, tie_word_embeddings=False, rope_theta=10000.0)
        return LlamaForCausalLM(cfg)
    if family == "phi3":
        # smaller than the others: a split export holds the weights twice and must stay under 1 MB
        common.update(hidden_size=48, intermediate_size=96)
        cfg = Phi3Config(**common, num_key_value_heads=4, tie_word_embeddings=False, pad_token_id=eos, sliding_window=None,
                         original_max_position_embeddings=CONTEXT, rope_scaling=None)
        return Phi3ForCausalLM(cfg)
    cfg = GPT2Config(vocab_size=vocab, n_positions=CONTEXT, n_embd=64, n_layer=2, n_head=4, n_inner=128, bos_token_id=eos, eos_token_id=eos)
    return GPT2LMHeadModel(cfg)


def shape_of(model) -> dict:
    """What decides a checkpoint besides the tokenizer: every parameter's name and shape."""
    return {name: list(p.shape) for name, p in model.state_dict().items()}


def train(model, tok, eos: int, samples, seed: int) -> dict:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    nl = tok.encode("\n", add_special_tokens=False).ids
    seqs = [tok.encode(prompt_x(s), add_special_tokens=False).ids + nl + [eos] + tok.encode(s["output"], add_special_tokens=False).ids + [eos]
            for s in samples]
    stream = [t for s in seqs for t in s]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(STEPS):
        lr = 3e-3 * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / STEPS)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = [rng.randrange(0, len(stream) - SEQ - 1) for _ in range(BATCH)]
        x = torch.tensor([stream[s:s + SEQ] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return {"steps": STEPS, "batch": BATCH, "seq": SEQ, "lr": 3e-3, "seconds": round(time.perf_counter() - t0, 1),
            "firstLoss": round(sum(losses[:10]) / 10, 4), "lastLoss": round(sum(losses[-10:]) / 10, 4), "seed": seed,
            "trainTokens": len(stream)}


# ---------------------------------------------------------------- export

class WithPast(torch.nn.Module):
    def __init__(self, model, layers: int, position_ids: bool):
        super().__init__()
        self.model, self.layers, self.position_ids = model, layers, position_ids

    def forward(self, input_ids, attention_mask, *rest):
        from transformers import DynamicCache
        if self.position_ids:
            position_ids, past = rest[0], rest[1:]
        else:
            position_ids, past = None, rest
        cache = DynamicCache(config=self.model.config)
        for l in range(self.layers):
            cache.update(past[2 * l], past[2 * l + 1], l)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache, use_cache=True)
        res = [out.logits]
        for layer in out.past_key_values.layers[:self.layers]:
            res += [layer.keys, layer.values]
        return tuple(res)


class NoPast(torch.nn.Module):
    def __init__(self, model, layers: int):
        super().__init__()
        self.model, self.layers = model, layers

    def forward(self, input_ids, attention_mask, position_ids):
        from transformers import DynamicCache
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=DynamicCache(config=self.model.config), use_cache=True)
        res = [out.logits]
        for layer in out.past_key_values.layers[:self.layers]:
            res += [layer.keys, layer.values]
        return tuple(res)


def kv_shape(model):
    cfg = model.config
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    hidden = getattr(cfg, "hidden_size", None) or cfg.n_embd
    return layers, kv, hidden // heads


def export(model, path: Path, with_past: bool = True, position_ids: bool = True, dtype=torch.float32) -> None:
    import warnings
    model = copy.deepcopy(model).to(dtype).eval()
    model.config._attn_implementation = "eager"
    layers, kv, hd = kv_shape(model)
    b, s, p = 2, 3, 5
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (b, s))
    names = ["input_ids", "attention_mask"] + (["position_ids"] if position_ids else [])
    outs = ["logits"] + [f"present.{l}.{k}" for l in range(layers) for k in ("key", "value")]
    dyn = {"input_ids": {0: "batch_size", 1: "sequence_length"}, "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
           "logits": {0: "batch_size", 1: "sequence_length"}}
    if position_ids:
        dyn["position_ids"] = {0: "batch_size", 1: "sequence_length"}
    for o in outs[1:]:
        dyn[o] = {0: "batch_size", 2: "total_sequence_length"}
    if with_past:
        past = [torch.randn(b, kv, p, hd).to(dtype) for _ in range(2 * layers)]
        pasts = [f"past_key_values.{l}.{k}" for l in range(layers) for k in ("key", "value")]
        for n in pasts:
            dyn[n] = {0: "batch_size", 2: "past_sequence_length"}
        args = (ids, torch.ones(b, p + s, dtype=torch.int64)) + ((torch.arange(p, p + s).unsqueeze(0).expand(b, s),) if position_ids else ()) + tuple(past)
        wrapper, names = WithPast(model, layers, position_ids), names + pasts
    else:
        args = (ids, torch.ones(b, s, dtype=torch.int64), torch.arange(s).unsqueeze(0).expand(b, s))
        wrapper = NoPast(model, layers)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=outs, dynamic_axes=dyn, opset_version=17,
                          dynamo=False, do_constant_folding=True)


def merge_decoders(no_past: Path, with_past: Path, out: Path) -> None:
    """optimum's merge_decoders, re-done with onnx: an If over `use_cache_branch` whose then-branch is the decoder with
    past; large initializers deduplicated across the two graphs and moved to the outer graph, scalars and 1-D int
    tensors kept inside their branch."""
    import onnx
    from onnx import helper
    dec, dwp = onnx.load(str(no_past)), onnx.load(str(with_past))
    outer: dict[tuple, str] = {}
    outer_tensors = []

    def keep_inside(t):
        return len(t.dims) == 0 or (len(t.dims) == 1 and t.data_type in (6, 7))

    def lift(model, tag):
        renames = {}
        kept = []
        for t in model.graph.initializer:
            if keep_inside(t):
                kept.append(t)
                continue
            key = (t.data_type, tuple(t.dims), t.raw_data)
            if key in outer:
                renames[t.name] = outer[key]
                continue
            name = t.name if all(o.name != t.name for o in outer_tensors) else f"{t.name}_merged_{tag}"
            renames[t.name] = name
            t2 = copy.deepcopy(t)
            t2.name = name
            outer[key] = name
            outer_tensors.append(t2)
        for n in model.graph.node:
            for i, x in enumerate(n.input):
                if x in renames:
                    n.input[i] = renames[x]
        return kept

    kept_dec, kept_dwp = lift(dec, "no_past"), lift(dwp, "with_past")
    no_past_branch = helper.make_graph(list(dec.graph.node), "no_past", [], list(dec.graph.output), kept_dec)
    with_past_branch = helper.make_graph(list(dwp.graph.node), "with_past", [], list(dwp.graph.output), kept_dwp)
    use_cache = helper.make_tensor_value_info("use_cache_branch", onnx.TensorProto.BOOL, [1])
    if_node = helper.make_node("If", inputs=["use_cache_branch"], outputs=[o.name for o in dec.graph.output], name="optimum::if",
                               then_branch=with_past_branch, else_branch=no_past_branch)
    inputs = list(dwp.graph.input)
    for i in dec.graph.input:
        if all(i.name != j.name for j in inputs):
            inputs.append(i)
    graph = helper.make_graph([if_node], "merged", [*inputs, use_cache], list(dec.graph.output), outer_tensors)
    merged = helper.make_model_gen_version(graph, producer_name="optimum-onnx", opset_imports=list(dwp.opset_import), ir_version=9)
    onnx.checker.check_model(merged)
    onnx.save(merged, str(out))


def to_external(path: Path, one_file: bool) -> None:
    import onnx
    model = onnx.load(str(path))
    path.unlink()
    if one_file:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + "_data",
                  size_threshold=100, convert_attribute=True)
    else:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=100, convert_attribute=True)


def check_export(model, path: Path, position_ids: bool, merged: bool = False, tol: float = 1e-4) -> dict:
    """onnxruntime on the export vs PyTorch: a whole sequence from an empty past, and a batch-1 prefix followed by two
    right-padded continuations with the prefix cache repeated to batch 2."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    layers, kv, hd = kv_shape(model)
    dtype = np.float16 if "float16" in sess.get_inputs()[-1 if not merged else -2].type else np.float32
    vocab = model.config.vocab_size
    rng = np.random.default_rng(0)

    def run(ids, mask, pos, past):
        feeds = {"input_ids": ids, "attention_mask": mask}
        if position_ids:
            feeds["position_ids"] = pos
        for l in range(layers):
            for k, kind in enumerate(("key", "value")):
                feeds[f"past_key_values.{l}.{kind}"] = past[2 * l + k]
        if merged:
            feeds["use_cache_branch"] = np.array([True])
        return sess.run(None, feeds)

    def hf(ids):
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()

    seq = rng.integers(0, vocab, 21).tolist()
    empty = [np.zeros((1, kv, 0, hd), dtype) for _ in range(2 * layers)]
    whole = run(np.array([seq]), np.ones((1, 21), np.int64), np.arange(21)[None], empty)
    d_whole = float(np.abs(whole[0][0].astype(np.float32) - hf(seq)).max())
    P = 13
    pre = run(np.array([seq[:P]]), np.ones((1, P), np.int64), np.arange(P)[None], empty)
    conts = [seq[P:], seq[P:P + 4]]
    C = max(len(c) for c in conts)
    ids = np.zeros((2, C), np.int64)
    mask = np.zeros((2, P + C), np.int64)
    mask[:, :P] = 1
    for r, c in enumerate(conts):
        ids[r, :len(c)] = c
        mask[r, P:P + len(c)] = 1
    out = run(ids, mask, np.tile(np.arange(P, P + C), (2, 1)), [np.repeat(t, 2, axis=0) for t in pre[1:]])
    full = hf(seq)
    d_cont = max(float(np.abs(out[0][r, :len(c)].astype(np.float32) - full[P:P + len(c)]).max()) for r, c in enumerate(conts))
    return {"wholeMaxAbsDiff": d_whole, "continuationMaxAbsDiff": d_cont, "tolerance": tol, "ok": d_whole <= tol and d_cont <= tol}


# ---------------------------------------------------------------- files

def write_export_dir(d: Path, model, tok, meta: dict, files_from: list[Path]) -> None:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for f in files_from:
        shutil.move(str(f), str(d / f.name))
    model.config.save_pretrained(str(d))
    model.generation_config.save_pretrained(str(d))
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": meta["eos"], "model_max_length": CONTEXT,
                                                         "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}, indent=2) + "\n")
    (d / "special_tokens_map.json").write_text(json.dumps({"eos_token": meta["eos"]}, indent=2) + "\n")


def dir_size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def parity(tok, family: str) -> Path:
    samples = load_jsonl(EVAL)
    texts = [prompt_x(s) for s in samples[:16]] + [s["output"] for s in samples[:16]] + HARD_TEXTS
    path = OUT / f"tokenizer-parity-{family}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}, ensure_ascii=False) + "\n")
    return path


def reference(family: str, export_dir: Path, eos: int, pad: int, threads: int, weights: str = "float32") -> Path:
    out = OUT / (f"reference-{family}.json" if weights == "float32" else f"reference-{family}-{weights}.json")
    rel = lambda p: os.path.relpath(p, ROOT)  # noqa: E731
    subprocess.run([sys.executable, rel(REFERENCE), "--model", rel(export_dir), "--checkpoint", rel(OUT / "checkpoints" / family),
                    "--eos-id", str(eos), "--pad-id", str(pad), "--data", rel(EVAL), "--n", str(REF_SAMPLES), "--max-len", str(CONTEXT),
                    "--threads", str(threads), "--weights-dtype", weights, "--out", rel(out)], check=True, cwd=ROOT)
    return out


# ---------------------------------------------------------------- main

def build_family(family: str, samples, threads: int, retrain: bool) -> list[dict]:
    from transformers import GenerationConfig
    log(f"{family}: tokenizer")
    tok, meta = make_tokenizer(family, samples)
    eos = tok.token_to_id(meta["eos"])
    bos = tok.token_to_id("<s>") if family in ("llama", "phi3") else (eos if family in ("qwen2", "gpt2") else None)
    torch.manual_seed(SEED)
    model = make_model(family, tok.get_vocab_size(), eos, bos)
    if family == "qwen2":
        model.generation_config = GenerationConfig(eos_token_id=[tok.token_to_id("<|im_end|>"), eos], bos_token_id=bos)
    elif family == "phi3":
        model.generation_config = GenerationConfig(eos_token_id=[eos, tok.token_to_id("<|end|>")], bos_token_id=bos, pad_token_id=eos)
    else:
        model.generation_config = GenerationConfig(eos_token_id=eos, bos_token_id=bos)
    ckpt = OUT / "checkpoints" / family
    if not retrain and (ckpt / "model.safetensors").exists() and (ckpt / "tokenizer.json").exists() \
            and json.loads((ckpt / "tokenizer.json").read_text()) == json.loads(tok.to_str()) and (ckpt / "shape.json").exists() \
            and json.loads((ckpt / "shape.json").read_text()) == shape_of(model):
        from transformers import AutoModelForCausalLM
        log(f"{family}: reusing the trained checkpoint {ckpt.relative_to(ROOT)} (--retrain to train again)")
        generation = model.generation_config
        model = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32).eval()
        model.generation_config = generation
    else:
        log(f"{family}: training {STEPS} steps")
        training = train(model, tok, eos, samples, SEED)
        log(f"{family}: loss {training['firstLoss']} -> {training['lastLoss']} in {training['seconds']} s")
        if ckpt.exists():
            shutil.rmtree(ckpt)
        model.save_pretrained(str(ckpt))
        (ckpt / "training.json").write_text(json.dumps(training, indent=1) + "\n")
        (ckpt / "shape.json").write_text(json.dumps(shape_of(model)) + "\n")
        tok.save(str(ckpt / "tokenizer.json"))
    tmp = OUT / f".tmp-{family}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    variants: list[tuple[str, list[Path], dict]] = []

    def plain(name: str, **kw):
        (tmp / name).mkdir()
        p = tmp / name / "model.onnx"
        export(model, p, **kw)
        return [p]

    if family == "qwen2":
        variants.append(("qwen2", plain("qwen2"), {"dtype": "float32", "shape": "model.onnx"}))
        export(model, tmp / "decoder_model.onnx", with_past=False)
        export(model, tmp / "decoder_with_past_model.onnx")
        merge_decoders(tmp / "decoder_model.onnx", tmp / "decoder_with_past_model.onnx", tmp / "decoder_model_merged.onnx")
        (tmp / "decoder_model.onnx").unlink()
        (tmp / "decoder_with_past_model.onnx").unlink()
        variants.append(("qwen2-merged", [tmp / "decoder_model_merged.onnx"], {"dtype": "float32", "shape": "decoder_model_merged.onnx"}))
        variants.append(("qwen2-fp16", plain("qwen2-fp16", dtype=torch.float16), {"dtype": "float16", "shape": "model.onnx"}))
        # onnxruntime's CPU provider cannot run bfloat16; delift widens it to float32 (exact for the weights), so
        # its reference is PyTorch float32 on the bfloat16-rounded weights
        variants.append(("qwen2-bf16", plain("qwen2-bf16", dtype=torch.bfloat16), {"dtype": "bfloat16", "shape": "model.onnx", "onnxruntimeCpu": False}))
    elif family == "llama":
        p = tmp / "model.onnx"
        export(model, p)
        to_external(p, one_file=True)
        variants.append(("llama", [p, tmp / "model.onnx_data"], {"dtype": "float32", "shape": "model.onnx + model.onnx_data"}))
        sub = tmp / "tensors"
        sub.mkdir()
        q = sub / "model.onnx"
        export(model, q)
        to_external(q, one_file=False)
        variants.append(("llama-tensors", sorted(sub.iterdir()), {"dtype": "float32", "shape": "model.onnx + one file per tensor"}))
    elif family == "phi3":
        export(model, tmp / "decoder_model.onnx", with_past=False)
        export(model, tmp / "decoder_with_past_model.onnx")
        variants.append(("phi3", [tmp / "decoder_model.onnx", tmp / "decoder_with_past_model.onnx"], {"dtype": "float32", "shape": "decoder_model.onnx + decoder_with_past_model.onnx"}))
    else:
        variants.append(("gpt2", plain("gpt2"), {"dtype": "float32", "shape": "model.onnx"}))
        variants.append(("gpt2-nopos", plain("gpt2-nopos", position_ids=False), {"dtype": "float32", "shape": "model.onnx without position_ids"}))

    entries = []
    first_dir = None
    for name, files, info in variants:
        d = OUT / name
        write_export_dir(d, model, tok, meta, files)
        first_dir = first_dir or d
        decoder = next(d / f for f in ("model.onnx", "decoder_model_merged.onnx", "decoder_with_past_model.onnx") if (d / f).exists())
        check = None
        if info.get("onnxruntimeCpu", True):
            tol = 1e-4 if info["dtype"] == "float32" else 5e-2
            check = check_export(model, decoder, position_ids="nopos" not in name, merged="merged" in name, tol=tol)
            log(f"{name}: export check {check}")
            if not check["ok"]:
                raise SystemExit(f"{name}: export check failed")
        size = dir_size(d)
        log(f"{name}: {size / 1e6:.2f} MB")
        if size > 1_000_000:
            raise SystemExit(f"{name}: {size} bytes, over the 1 MB budget of a fixture")
        entries.append({"name": name, "family": family, "dir": name, **info, "eosId": eos, "padId": model.config.pad_token_id if model.config.pad_token_id is not None else eos,
                        "decoder": decoder.name, "bytes": size, "exportCheck": check})
    shutil.rmtree(tmp, ignore_errors=True)
    pad = entries[0]["padId"]
    log(f"{family}: reference kernel")
    ref = reference(family, first_dir, eos, pad, threads)
    par = parity(tok, family)
    for e in entries:
        e["reference"] = ref.name
        e["tokenizerParity"] = par.name
        if e["dtype"] == "bfloat16":
            e["reference"] = reference(family, first_dir, eos, pad, threads, "bfloat16").name
    return entries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["qwen2", "llama", "phi3", "gpt2"], action="append")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--retrain", action="store_true", help="train again even if a checkpoint for the same tokenizer exists")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    samples = load_jsonl(TRAIN)
    OUT.mkdir(parents=True, exist_ok=True)
    index_path = OUT / "fixtures.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"fixtures": []}
    families = a.only or ["qwen2", "llama", "phi3", "gpt2"]
    kept = [e for e in index["fixtures"] if e["family"] not in families]
    for family in families:
        kept += build_family(family, samples, a.threads, a.retrain)
    import tokenizers
    import transformers
    index = {"about": "tiny seeded exports of real architectures, built by models/make_fixtures.py", "fixtures": sorted(kept, key=lambda e: e["name"]),
             "trainData": TRAIN.name, "evalData": EVAL.name, "referenceSamples": REF_SAMPLES, "maxLength": CONTEXT,
             "torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    log("wrote", index_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
