"""Unit tests of the study harness (not part of npm test):

  /tmp/pyenv/bin/python -m unittest bench/quality/test_quality.py

The metrics against hand-computed values; the packed forward against transformers' own forward on the
committed tiny model (packing must not change any sample's logits); batched left-padded generation against
one prompt at a time."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see run.py

import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from qlib.metrics import gsm8k_match, lcs_length, rouge_l, rouge_tokens  # noqa: E402


class Metrics(unittest.TestCase):
    def test_tokens(self):
        self.assertEqual(rouge_tokens("The Cat's hat, 3.5!"), ["the", "cat", "s", "hat", "3", "5"])

    def test_lcs(self):
        self.assertEqual(lcs_length(list("abcbdab"), list("bdcaba")), 4)
        self.assertEqual(lcs_length([], ["a"]), 0)

    def test_rouge_l(self):
        self.assertAlmostEqual(rouge_l("the cat sat on the mat", "the cat is on the mat"), 5 / 6)
        # precision 2/2, recall 2/4
        self.assertAlmostEqual(rouge_l("a b", "a x b y"), 2 * 1.0 * 0.5 / 1.5)
        self.assertEqual(rouge_l("", "anything"), 0.0)
        self.assertEqual(rouge_l("", ""), 0.0)
        self.assertEqual(rouge_l("Same text.", "same TEXT"), 1.0)

    def test_gsm8k(self):
        ref = "She makes 9 * 2 = $18 every day.\n#### 18"
        self.assertEqual(gsm8k_match("so 9 * 2 = 18\n#### 18", ref), (True, True))
        self.assertEqual(gsm8k_match("#### $18.", ref), (True, True))
        self.assertEqual(gsm8k_match("the answer is 18", ref), (False, True))
        self.assertEqual(gsm8k_match("#### 19", ref), (False, False))
        self.assertEqual(gsm8k_match("#### 1,800", "x\n#### 1800"), (True, True))
        self.assertEqual(gsm8k_match("nothing", "no answer marker"), (False, False))


class Model(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch
        from qlib.model import load_model
        from qlib.text import TextCodec
        torch.manual_seed(0)
        cls.torch = torch
        cls.model = load_model(str(ROOT / "models/tiny/checkpoint")).eval()
        cls.codec = TextCodec(ROOT / "models/tiny/tokenizer.json", 768)
        recs = [
            {"instruction": "Add the numbers.", "input": "2 and 3", "output": "2 + 3 = 5\n#### 5"},
            {"instruction": "Name a colour.", "output": "Blue."},
            {"instruction": "Summarize the following text.", "input": "The quick brown fox jumps over the lazy dog. " * 6,
             "output": "A fox jumps over a dog."},
        ]
        cls.recs = recs
        cls.enc = cls.codec.encode(recs)

    def hf_response_nll(self, e):
        torch = self.torch
        ids = torch.tensor([e.x + e.y])
        with torch.no_grad():
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0], -1)
        return -sum(float(logp[len(e.x) - 1 + t, tok]) for t, tok in enumerate(e.y))

    def test_packed_forward_matches_transformers(self):
        torch = self.torch
        from qlib.model import PackedForward, pack
        packed = pack(self.enc, [0, 1, 2], 1024)
        self.assertEqual(packed.ids.shape[0], 1)  # all three share one row
        with torch.no_grad():
            logits = PackedForward(self.model).logits(packed.ids, packed.pos, packed.seg)[0]
            at = 0
            for e in self.enc:
                ref = self.model(input_ids=torch.tensor([e.x + e.y])).logits[0]
                diff = (logits[at:at + e.length] - ref).abs().max().item()
                self.assertLess(diff, 1e-4)
                at += e.length

    def test_response_nll(self):
        from qlib.model import response_nll
        got = response_nll(self.model, self.enc, 1024)
        for e, (nll, n) in zip(self.enc, got):
            self.assertEqual(n, len(e.y))
            self.assertAlmostEqual(nll, self.hf_response_nll(e), delta=1e-3 * max(1.0, abs(nll)))

    def test_batched_generation_matches_single(self):
        from qlib.model import greedy_generate
        prompts = self.codec.prompts(self.recs)
        batched = greedy_generate(self.model, prompts, 24, batch=8)
        for p, b in zip(prompts, batched):
            self.assertEqual(greedy_generate(self.model, [p], 24, batch=1)[0], b)

    def test_generation_matches_transformers_generate(self):
        torch = self.torch
        from qlib.model import greedy_generate
        prompts = self.codec.prompts(self.recs)
        ours = greedy_generate(self.model, prompts, 24, batch=8)
        for p, o in zip(prompts, ours):
            g = self.model.generate(input_ids=torch.tensor([p]), max_new_tokens=24, do_sample=False, eos_token_id=0,
                                    pad_token_id=0)[0, len(p):].tolist()
            if 0 in g:
                g = g[:g.index(0)]
            self.assertEqual(o, g)

    def test_truncation_keeps_response(self):
        from qlib.text import TextCodec
        codec = TextCodec(ROOT / "models/tiny/tokenizer.json", 64)
        e = codec.encode([{"instruction": "word " * 200, "output": "short answer"}])[0]
        self.assertLessEqual(e.length, 64)
        self.assertGreater(e.truncated, 0)
        self.assertEqual(codec.decode(e.y), "short answer")


if __name__ == "__main__":
    unittest.main()
