"""Encodes texts with Python `tokenizers`, the ground truth delift's tokenizer must match.

Usage: python bench/tokenizer/python_encode.py TOKENIZER_JSON OUT_JSONL DATA.jsonl [DATA.jsonl ...]
Writes one {"text": ..., "ids": [...]} line per field (instruction, input, output) of every record,
plus a fixed list of hard non-ASCII and whitespace cases.
"""
import gzip
import json
import sys

from tokenizers import Tokenizer

HARD_CASES = [
    "café naïve résumé — “quoted” ‘single’ … ellipsis",
    "数学题：小明有 3 个苹果，吃了 1 个。",
    "日本語のテキスト、カタカナとひらがな。",
    "Emoji 🙂👍🏽 and flags 🇫🇷 with ZWJ 👩‍👩‍👧",
    "Combining marks: e\u0301 a\u0308 n\u0303",
    "RTL: שלום עולם and مرحبا بالعالم",
    "Tabs\tand\r\nCRLF and\u00a0nbsp and\u2009thin space",
    "  leading spaces and trailing   ",
    "\n\n\nQuery:\n",
    "Math: 48/2 = 24, 3.5% of $1,200.00 is $42; x² + y² = z²; ∑ ∫ √ ≤ ≥ ≠",
    "Ünïcödé ÀÉÎÕÜ ß ø å æ œ ł",
    "",
]


def records(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def main():
    tokenizer = Tokenizer.from_file(sys.argv[1])
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        def emit(text):
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            out.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")

        for text in HARD_CASES:
            emit(text)
        for path in sys.argv[3:]:
            for r in records(path):
                for field in ("instruction", "input", "output"):
                    if r.get(field):
                        emit(r[field])


if __name__ == "__main__":
    main()
