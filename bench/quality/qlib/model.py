"""The base model in PyTorch for the study: loading, a packed forward pass (several samples in one row,
block-diagonal causal attention, positions restarting at each sample), fine-tuning and greedy generation.

The packed forward re-implements the Llama forward over the weights of a transformers LlamaForCausalLM
(as models/tinylib.py does for the ONNX export), so that packing is exact: a sample in a packed row gets
the same logits as alone (checked by test_model.py against the transformers forward)."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from .text import EOS_ID, Encoded


def load_model(checkpoint: str):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32, attn_implementation="eager")
    model.config.use_cache = True
    return model


# ---------------------------------------------------------------- packing

class Packed:
    """Rows of packed samples: ids, positions, segment ids (0 = padding, k = k-th sample of the row) and labels
    (-100 where no loss is taken: prompt tokens and padding). sample_of[r][k-1] = index of the row's k-th sample."""

    def __init__(self, ids, pos, seg, labels, sample_of):
        self.ids, self.pos, self.seg, self.labels, self.sample_of = ids, pos, seg, labels, sample_of


def pack(samples: list[Encoded], order: list[int], seq_len: int) -> Packed:
    """Next-fit packing of the samples in `order` into rows of seq_len tokens; a sample is never split (each
    is at most seq_len tokens long, see text.encode)."""
    rows: list[list[int]] = []
    cur: list[int] = []
    used = 0
    for i in order:
        n = samples[i].length
        if n > seq_len:
            raise ValueError(f"sample {i} has {n} tokens, more than the row length {seq_len}")
        if used + n > seq_len:
            rows.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += n
    if cur:
        rows.append(cur)
    R = len(rows)
    ids = torch.full((R, seq_len), EOS_ID, dtype=torch.int64)
    pos = torch.zeros((R, seq_len), dtype=torch.int64)
    seg = torch.zeros((R, seq_len), dtype=torch.int64)
    lab = torch.full((R, seq_len), -100, dtype=torch.int64)
    for r, members in enumerate(rows):
        at = 0
        for k, i in enumerate(members):
            s = samples[i]
            n = s.length
            toks = torch.tensor(s.x + s.y, dtype=torch.int64)
            ids[r, at:at + n] = toks
            pos[r, at:at + n] = torch.arange(n)
            seg[r, at:at + n] = k + 1
            # label at position t is the token at t+1 (next-token prediction): response tokens only
            lab[r, at + len(s.x) - 1:at + n - 1] = toks[len(s.x):]
            at += n
    return Packed(ids, pos, seg, lab, rows)


# ---------------------------------------------------------------- forward

class PackedForward:
    """Llama forward over a transformers model's modules, with a block-diagonal causal mask."""

    def __init__(self, model):
        cfg = model.config
        self.model = model
        self.nh = cfg.num_attention_heads
        self.nkv = cfg.num_key_value_heads
        self.hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        rope = getattr(cfg, "rope_parameters", None) or {}
        theta = float(rope.get("rope_theta", 10000.0))
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.int64).float() / self.hd))

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def rotary(self, pos):
        """cos and sin of the rotary embedding at positions pos [b, s], shaped to broadcast over heads."""
        freqs = pos.to(torch.float32).unsqueeze(-1) * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)

    def qkv(self, att, x, cos, sin):
        """The layer's rotated queries and keys and its values, [b, heads, s, head_dim]."""
        b, s, _ = x.shape
        q = att.q_proj(x).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = att.k_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = att.v_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        return q * cos + self.rotate_half(q) * sin, k * cos + self.rotate_half(k) * sin, v

    def mlp(self, layer, h):
        x = self.rms(h, layer.post_attention_layernorm.weight)
        mlp = layer.mlp
        return h + mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))

    def hidden(self, ids, pos, seg):
        m = self.model.model
        b, s = ids.shape
        h = m.embed_tokens(ids)
        cos, sin = self.rotary(pos)
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        mask = (seg.unsqueeze(2) == seg.unsqueeze(1)) & causal  # [b, s, s]; padding (seg 0) attends to padding
        mask = mask.unsqueeze(1)
        for layer in m.layers:
            att = layer.self_attn
            q, k, v = self.qkv(att, self.rms(h, layer.input_layernorm.weight), cos, sin)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
            h = self.mlp(layer, h + att.o_proj(o.transpose(1, 2).reshape(b, s, self.nh * self.hd)))
        return self.rms(h, m.norm.weight)

    def step(self, ids, pos, valid, caches, start):
        """Incremental forward for generation: the T new tokens `ids` sit at cache slots start..start+T-1;
        valid[b, s] says whether cache slot s holds a real token of row b (left padding does not)."""
        m = self.model.model
        b, T = ids.shape
        h = m.embed_tokens(ids)
        cos, sin = self.rotary(pos)
        end = start + T
        q_idx = torch.arange(T) + start
        k_idx = torch.arange(end)
        mask = (k_idx.unsqueeze(0) <= q_idx.unsqueeze(1)).unsqueeze(0) & valid[:, None, :end]  # [b, T, end]
        mask = mask | (~mask.any(-1, keepdim=True))  # a padding query sees everything (its output is unused)
        mask = mask.unsqueeze(1)
        for li, layer in enumerate(m.layers):
            att = layer.self_attn
            q, k, v = self.qkv(att, self.rms(h, layer.input_layernorm.weight), cos, sin)
            ck, cv = caches[li]
            ck[:, :, start:end] = k
            cv[:, :, start:end] = v
            o = F.scaled_dot_product_attention(q, ck[:, :, :end], cv[:, :, :end], attn_mask=mask, enable_gqa=True)
            h = self.mlp(layer, h + att.o_proj(o.transpose(1, 2).reshape(b, T, self.nh * self.hd)))
        return self.rms(h, m.norm.weight)

    def logits(self, ids, pos, seg):
        return self.model.lm_head(self.hidden(ids, pos, seg))


def token_nll(fwd: PackedForward, packed: Packed, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position negative log-likelihood of the labels (0 where the label is -100) and the label mask."""
    logits = fwd.logits(packed.ids[rows], packed.pos[rows], packed.seg[rows])
    lab = packed.labels[rows]
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1).clamp(min=0), reduction="none")
    mask = lab.reshape(-1) != -100
    return (nll * mask).view(lab.shape), mask.view(lab.shape)


# ---------------------------------------------------------------- fine-tuning

def lr_at(step: int, total: int, base: float, warmup: int, floor: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def fine_tune(model, samples: list[Encoded], recipe: dict, seed: int, log=None) -> dict:
    """Fine-tunes `model` in place on `samples` with the study's fixed recipe: `epochs` passes over the data,
    each a fresh seeded shuffle packed into rows of `seq_len` tokens, `batch_rows` rows a step, AdamW,
    linear warmup then cosine decay to floor * lr, gradient clipping; loss on response tokens only."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    epochs, seq_len, batch = recipe["epochs"], recipe["seq_len"], recipe["batch_rows"]
    plans = []
    for _ in range(epochs):
        order = torch.randperm(len(samples), generator=g).tolist()
        plans.append(pack(samples, order, seq_len))
    steps_per_epoch = [math.ceil(p.ids.shape[0] / batch) for p in plans]
    total = sum(steps_per_epoch)
    warmup = max(1, int(round(recipe["warmup_frac"] * total)))
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=recipe["lr"], betas=(0.9, 0.95), eps=1e-8)
    fwd = PackedForward(model)
    model.train()
    step = 0
    t0 = time.time()
    losses = []
    tokens = 0
    for ep, packed in enumerate(plans):
        R = packed.ids.shape[0]
        for b0 in range(0, R, batch):
            rows = torch.arange(b0, min(R, b0 + batch))
            for pg in opt.param_groups:
                pg["lr"] = lr_at(step, total, recipe["lr"], warmup, recipe["floor"])
            nll, mask = token_nll(fwd, packed, rows)
            n = mask.sum()
            loss = nll.sum() / n
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["clip"])
            opt.step()
            losses.append(loss.item())
            tokens += int(n)
            step += 1
            if log and (step % 50 == 0 or step == total):
                el = time.time() - t0
                log(f"  step {step}/{total} loss {loss.item():.4f} {el:.0f}s eta {el / step * (total - step):.0f}s")
    model.eval()
    return {"steps": total, "responseTokens": tokens, "rowsPerEpoch": [p.ids.shape[0] for p in plans],
            "firstLoss": losses[0] if losses else None,
            "lastLoss": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else None}


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def response_nll(model, samples: list[Encoded], seq_len: int, batch_rows: int = 8) -> list[tuple[float, int]]:
    """Teacher-forced NLL (sum over the response tokens and the closing EOS) and token count per sample."""
    model.eval()
    fwd = PackedForward(model)
    packed = pack(samples, list(range(len(samples))), seq_len)
    out: list[tuple[float, int] | None] = [None] * len(samples)
    R = packed.ids.shape[0]
    for b0 in range(0, R, batch_rows):
        rows = torch.arange(b0, min(R, b0 + batch_rows))
        nll, mask = token_nll(fwd, packed, rows)
        seg = packed.seg[rows]
        for r_local, r in enumerate(rows.tolist()):
            for k, i in enumerate(packed.sample_of[r]):
                # labels sit one position before their token: the segment's label positions
                sel = (seg[r_local] == k + 1) & mask[r_local]
                out[i] = (float(nll[r_local][sel].sum()), int(sel.sum()))
    return out  # type: ignore[return-value]


@torch.no_grad()
def greedy_generate(model, prompts: list[list[int]], max_new: int, batch: int = 64) -> list[list[int]]:
    """Greedy continuation of each prompt until EOS or max_new tokens (EOS not included), batched with left
    padding and a preallocated KV cache (transformers' generate() costs far more per step for a model this
    small; test_quality.py checks this loop against it)."""
    model.eval()
    fwd = PackedForward(model)
    m = model.model
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    res: list[list[int] | None] = [None] * len(prompts)
    for b0 in range(0, len(order), batch):
        idx = order[b0:b0 + batch]
        B = len(idx)
        L = max(len(prompts[i]) for i in idx)
        S = L + max_new
        ids = torch.full((B, L), EOS_ID, dtype=torch.int64)
        valid = torch.zeros((B, S), dtype=torch.bool)
        for r, i in enumerate(idx):
            p = prompts[i]
            ids[r, L - len(p):] = torch.tensor(p)
            valid[r, L - len(p):L] = True
        pos = (valid[:, :L].long().cumsum(1) - 1).clamp(min=0)
        caches = [(torch.zeros(B, fwd.nkv, S, fwd.hd), torch.zeros(B, fwd.nkv, S, fwd.hd)) for _ in m.layers]
        out = torch.full((B, max_new), EOS_ID, dtype=torch.int64)
        done = torch.zeros(B, dtype=torch.bool)
        x, start = ids, 0
        last_pos = pos[:, -1]
        for t in range(max_new):
            T = x.shape[1]
            h = fwd.step(x, pos, valid, caches, start)
            nxt = model.lm_head(h[:, -1]).argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, EOS_ID), nxt)
            out[:, t] = nxt
            done |= nxt == EOS_ID
            if bool(done.all()):
                break
            start += T
            valid[:, start] = True
            last_pos = last_pos + 1
            x, pos = nxt.unsqueeze(1), last_pos.unsqueeze(1)
        for r, i in enumerate(idx):
            toks = out[r].tolist()
            if EOS_ID in toks:
                toks = toks[:toks.index(EOS_ID)]
            res[i] = toks
    return res  # type: ignore[return-value]
