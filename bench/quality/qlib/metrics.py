"""Generation metrics, implemented here (the wheel mirror has no rouge-score package):

ROUGE-L: F-measure (beta = 1) of the longest common subsequence of tokens, with the tokenization of Google's
rouge-score package without stemming (lowercase, every run of characters other than a-z and 0-9 is a
separator). Two empty texts score 0 (as rouge-score does).

GSM8K exact match: the number after the last "####" of the generation equals the reference's final answer
(commas, "$" and a trailing "." removed; compared as numbers). "flexible" takes the last number of the
generation instead, for a model that does not write "####"."""

from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def rouge_tokens(text: str) -> list[str]:
    return [t for t in _NON_ALNUM.split(text.lower()) if t]


def lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else (prev[j] if prev[j] >= cur[j - 1] else cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    p, r = rouge_tokens(prediction), rouge_tokens(reference)
    lcs = lcs_length(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def _to_number(s: str) -> float | None:
    s = s.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        return float(s)
    except ValueError:
        return None


def gsm8k_reference_answer(output: str) -> float | None:
    if "####" not in output:
        return None
    return _to_number(output.rsplit("####", 1)[1].strip().split()[0]) if output.rsplit("####", 1)[1].strip() else None


def gsm8k_strict_answer(generation: str) -> float | None:
    if "####" not in generation:
        return None
    m = _NUMBER.search(generation.rsplit("####", 1)[1])
    return _to_number(m.group(0)) if m else None


def gsm8k_flexible_answer(generation: str) -> float | None:
    found = _NUMBER.findall(generation)
    return _to_number(found[-1]) if found else None


def gsm8k_match(generation: str, reference_output: str) -> tuple[bool, bool]:
    """(strict, flexible) exact match of the final numeric answer."""
    ref = gsm8k_reference_answer(reference_output)
    if ref is None:
        return False, False
    strict = gsm8k_strict_answer(generation)
    flexible = gsm8k_flexible_answer(generation)
    close = lambda v: v is not None and abs(v - ref) < 1e-6  # noqa: E731
    return close(strict), close(flexible)
