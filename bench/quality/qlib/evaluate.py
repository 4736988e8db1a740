"""Held-out evaluation of one model on one set: teacher-forced loss of the reference responses (mean NLL per
response token, the closing EOS included, over the whole set), ROUGE-L (x100) of greedy generations against
the references, and for GSM8K-style references (a "#### answer" line) final-answer exact match (x100)."""

from __future__ import annotations

import math

from .metrics import gsm8k_match, rouge_l
from .model import greedy_generate, response_nll
from .text import Encoded, TextCodec

MAX_NEW_TOKENS = 256


def generation_budget(encoded: list[Encoded]) -> int:
    """Greedy generation stops at EOS or after this many tokens: the longest reference (in tokens), capped."""
    return min(MAX_NEW_TOKENS, max(len(e.y) for e in encoded))


def evaluate_set(model, codec: TextCodec, records: list[dict], seq_len: int, generate: int) -> dict:
    """generate: how many samples (the first ones) get a greedy generation; loss is over all of them."""
    enc = codec.encode(records)
    nll = response_nll(model, enc, seq_len)
    tokens = sum(n for _, n in nll)
    loss = sum(v for v, _ in nll) / tokens
    out = {"samples": len(records), "tokens": tokens, "loss": loss, "ppl": math.exp(loss),
           "perSampleLoss": [v / n for v, n in nll]}
    g = min(generate, len(records))
    if g > 0:
        gen_recs, gen_enc = records[:g], enc[:g]
        budget = generation_budget(gen_enc)
        outs = greedy_generate(model, [e.x for e in gen_enc], budget)
        texts = [codec.decode(o) for o in outs]
        rouge = [rouge_l(t, r["output"]) for t, r in zip(texts, gen_recs)]
        out.update({"generated": g, "maxNewTokens": budget, "rougeL": 100 * sum(rouge) / g,
                    "meanGeneratedTokens": sum(len(o) for o in outs) / g, "examples": texts[:3]})
        if all("####" in r["output"] for r in gen_recs):
            m = [gsm8k_match(t, r["output"]) for t, r in zip(texts, gen_recs)]
            out["exactMatch"] = 100 * sum(s for s, _ in m) / g
            out["exactMatchFlexible"] = 100 * sum(f for _, f in m) / g
    return out
