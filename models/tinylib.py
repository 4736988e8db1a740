"""Shared helpers for delift's tiny model: data loading, canonical tokenization, the traceable
decoder/encoder used for the ONNX export. Python is only used to prepare the model bundle and for the
reference harness; delift itself never needs it at runtime."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import torch
import torch.nn as nn

EOS_TOKEN = "<|endoftext|>"
EOS_ID = 0


# ---------------------------------------------------------------- data

def load_jsonl(path: str | Path, limit: int | None = None) -> list[dict]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            out.append(json.loads(line))
            if limit is not None and len(out) >= limit:
                break
    return out


def prompt_x(sample: dict) -> str:
    """x = instruction, plus "\\n" + input when input is non-empty."""
    x = sample["instruction"]
    if sample.get("input"):
        x = x + "\n" + sample["input"]
    return x


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- traceable model

class TinyLlamaCore(nn.Module):
    """A plain re-implementation of the Llama forward (RMSNorm, RoPE, GQA, SwiGLU) over the weights of a
    transformers LlamaForCausalLM, written so that torch.onnx's TorchScript exporter traces it cleanly with
    dynamic batch / seq / past_seq. The causal mask is index-based (query t of a call sits at absolute
    key index past_seq + t) and attention_mask zeros mask keys; position_ids only drive RoPE."""

    def __init__(self, hf_model):
        super().__init__()
        cfg = hf_model.config
        self.num_layers = cfg.num_hidden_layers
        self.num_heads = cfg.num_attention_heads
        self.num_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.hidden = cfg.hidden_size
        self.eps = cfg.rms_norm_eps
        rope = getattr(cfg, "rope_parameters", None) or {}
        theta = float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
        if rope.get("rope_type", "default") != "default":
            raise ValueError("only default RoPE is supported")
        inv = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)
        m = hf_model.model
        # Store the (tied) embedding transposed, [hidden, vocab]: the lookup is a Gather on axis 1 and the
        # LM head a plain MatMul, so the exported graph holds the matrix once.
        self.embed_t = nn.Parameter(m.embed_tokens.weight.detach().t().contiguous(), requires_grad=False)
        self.layers = m.layers
        self.norm_w = m.norm.weight

    def rms(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.eps))

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def embed(self, input_ids):
        b, s = input_ids.shape[0], input_ids.shape[1]
        e = torch.index_select(self.embed_t, 1, input_ids.reshape(-1))  # [hidden, b*s]
        return e.t().reshape(b, s, self.hidden)

    def forward_core(self, input_ids, attention_mask, position_ids, pasts):
        """pasts: list of (key, value) [b, kv, past, d] per layer. Returns (normed hidden, presents)."""
        b, s = input_ids.shape[0], input_ids.shape[1]
        h = self.embed(input_ids)
        freqs = position_ids.to(torch.float32).unsqueeze(-1) * self.inv_freq  # [b, s, d/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos().unsqueeze(1)  # [b, 1, s, d]
        sin = emb.sin().unsqueeze(1)
        past_len = pasts[0][0].shape[2]
        kv_len = attention_mask.shape[1]
        q_idx = torch.arange(s, dtype=torch.int64) + past_len
        k_idx = torch.arange(kv_len, dtype=torch.int64)
        causal = k_idx.unsqueeze(0) <= q_idx.unsqueeze(1)  # [s, kv]
        allowed = causal.unsqueeze(0) & (attention_mask != 0).unsqueeze(1)  # [b, s, kv]
        # An additive bias built once per call and added to the scores of every layer: in onnxruntime a
        # broadcast Add is far cheaper than a Where over [b, heads, s, kv] in each layer.
        bias = ((1.0 - allowed.to(torch.float32)) * -1e9).unsqueeze(1).unsqueeze(1)  # [b,1,1,s,kv]
        n_rep = self.num_heads // self.num_kv
        scale = self.head_dim ** -0.5
        presents = []
        for li, layer in enumerate(self.layers):
            att = layer.self_attn
            x = self.rms(h, layer.input_layernorm.weight)
            q = att.q_proj(x).reshape(b, s, self.num_heads, self.head_dim).transpose(1, 2)
            k = att.k_proj(x).reshape(b, s, self.num_kv, self.head_dim).transpose(1, 2)
            v = att.v_proj(x).reshape(b, s, self.num_kv, self.head_dim).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = torch.cat((pasts[li][0], k), dim=2)
            v = torch.cat((pasts[li][1], v), dim=2)
            presents.append((k, v))
            # grouped-query attention without materialising repeated K/V: head hh uses kv head hh // n_rep
            qg = q.reshape(b, self.num_kv, n_rep, s, self.head_dim)
            scores = torch.matmul(qg * scale, k.unsqueeze(2).transpose(-1, -2)) + bias  # [b, kv, rep, s, kvlen]
            probs = torch.softmax(scores, dim=-1)
            o = torch.matmul(probs, v.unsqueeze(2))  # [b, kv, rep, s, d]
            o = o.reshape(b, self.num_heads, s, self.head_dim).transpose(1, 2).reshape(b, s, self.num_heads * self.head_dim)
            h = h + att.o_proj(o)
            x = self.rms(h, layer.post_attention_layernorm.weight)
            mlp = layer.mlp
            h = h + mlp.down_proj(torch.nn.functional.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
        return self.rms(h, self.norm_w), presents


class OnnxDecoder(nn.Module):
    """optimum-style decoder with past: (input_ids, attention_mask, position_ids, past k/v ...) ->
    (logits, present k/v ...)."""

    def __init__(self, core: TinyLlamaCore):
        super().__init__()
        self.core = core

    def forward(self, input_ids, attention_mask, position_ids, *past_flat):
        pasts = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(self.core.num_layers)]
        h, presents = self.core.forward_core(input_ids, attention_mask, position_ids, pasts)
        logits = torch.matmul(h, self.core.embed_t)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


class OnnxEncoder(nn.Module):
    """Feature extraction: (input_ids, attention_mask) -> last_hidden_state (final normed hidden states).
    Positions are cumsum(attention_mask) - 1 (clamped at 0), i.e. 0.. for the real tokens of a
    right-padded row."""

    def __init__(self, core: TinyLlamaCore):
        super().__init__()
        self.core = core

    def forward(self, input_ids, attention_mask):
        b = input_ids.shape[0]
        pos = torch.clamp(torch.cumsum(attention_mask, dim=1) - 1, min=0)
        empty = torch.zeros(b, self.core.num_kv, 0, self.core.head_dim, dtype=torch.float32)
        pasts = [(empty, empty) for _ in range(self.core.num_layers)]
        h, _ = self.core.forward_core(input_ids, attention_mask, pos, pasts)
        return h


def export_onnx(hf_model, out_dir: Path, opset: int = 17) -> None:
    hf_model.eval()
    core = TinyLlamaCore(hf_model).eval()
    L = core.num_layers
    dec = OnnxDecoder(core).eval()
    b, s, past = 2, 3, 5
    ids = torch.randint(1, 100, (b, s), dtype=torch.int64)
    am = torch.ones(b, past + s, dtype=torch.int64)
    pos = torch.arange(past, past + s, dtype=torch.int64).unsqueeze(0).expand(b, s).contiguous()
    pk = [torch.randn(b, core.num_kv, past, core.head_dim) for _ in range(2 * L)]
    in_names = ["input_ids", "attention_mask", "position_ids"]
    out_names = ["logits"]
    dyn = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for l in range(L):
        for kv in ("key", "value"):
            n = f"past_key_values.{l}.{kv}"
            in_names.append(n)
            dyn[n] = {0: "batch_size", 2: "past_sequence_length"}
            o = f"present.{l}.{kv}"
            out_names.append(o)
            dyn[o] = {0: "batch_size", 2: "total_sequence_length"}
    with torch.no_grad():
        torch.onnx.export(dec, (ids, am, pos, *pk), str(out_dir / "model.onnx"), input_names=in_names,
                          output_names=out_names, dynamic_axes=dyn, opset_version=opset, dynamo=False,
                          do_constant_folding=True)
        enc = OnnxEncoder(core).eval()
        am2 = torch.ones(b, s, dtype=torch.int64)
        torch.onnx.export(enc, (ids, am2), str(out_dir / "encoder.onnx"), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                        "attention_mask": {0: "batch_size", 1: "sequence_length"},
                                        "last_hidden_state": {0: "batch_size", 1: "sequence_length"}},
                          opset_version=opset, dynamo=False, do_constant_folding=True)
