"""Data and tokenization for the study: JSONL records (instruction, input, output), the base model's own
format x + "\\n" + EOS + y + EOS (the format it was pretrained on, models/train_tiny.py), every field
tokenized on its own."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

EOS_ID = 0
EOS_TOKEN = "<|endoftext|>"


def load_jsonl(path: str | Path) -> list[dict]:
    """Reads JSONL (or .jsonl.gz); a bad line or a record without instruction/output is an error naming the
    file and line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from e
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object")
            for field in ("instruction", "output"):
                if not isinstance(rec.get(field), str):
                    raise ValueError(f"{path}:{n}: field \"{field}\" must be a string")
            if "input" in rec and rec["input"] is not None and not isinstance(rec["input"], str):
                raise ValueError(f"{path}:{n}: field \"input\" must be a string when present")
            rec.setdefault("id", f"{path.name}:{n}")
            out.append(rec)
    if not out:
        raise ValueError(f"{path}: no records")
    return out


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    """Writes atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def prompt_x(rec: dict) -> str:
    x = rec["instruction"]
    if rec.get("input"):
        x = x + "\n" + rec["input"]
    return x


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def records_key(records: list[dict]) -> str:
    """Content key of a list of records (ids and fields, in order)."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.get("id"), r["instruction"], r.get("input", ""), r["output"]], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class Encoded:
    x: list[int]  # prompt tokens: tok(x) + tok("\n") + [EOS]
    y: list[int]  # response tokens: tok(y) + [EOS]
    truncated: int  # prompt tokens cut from the left

    @property
    def length(self) -> int:
        return len(self.x) + len(self.y)


class TextCodec:
    def __init__(self, tokenizer_json: str | Path, max_len: int):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(str(tokenizer_json))
        if self.tok.token_to_id(EOS_TOKEN) != EOS_ID:
            raise ValueError(f"{tokenizer_json}: expected {EOS_TOKEN} to be id {EOS_ID}")
        self.nl = self.tok.encode("\n", add_special_tokens=False).ids
        self.max_len = max_len

    def encode(self, records: list[dict]) -> list[Encoded]:
        """Prompt and response per record; a sample longer than max_len loses prompt tokens from the left
        (a response is kept whole up to max_len - 32 tokens, so that some prompt always remains)."""
        xs = self.tok.encode_batch([prompt_x(r) for r in records], add_special_tokens=False)
        ys = self.tok.encode_batch([r["output"] for r in records], add_special_tokens=False)
        out = []
        for x, y in zip(xs, ys):
            xi = x.ids + self.nl + [EOS_ID]
            yi = y.ids + [EOS_ID]
            if len(yi) > self.max_len - 32:
                yi = yi[:self.max_len - 32]
            cut = max(0, len(xi) + len(yi) - self.max_len)
            out.append(Encoded(xi[cut:], yi, cut))
        return out

    def prompts(self, records: list[dict]) -> list[list[int]]:
        return [e.x for e in self.encode(records)]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)
