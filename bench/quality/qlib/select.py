"""Subsets for the study. DELIFT's are chosen by `delift select` through its CLI (bin/delift.js, built by
`npm run build`); the random baselines by a seeded generator here. Each selection is cached under a key
of its inputs (data content, model hash, flags)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .cache import Timer, key_of, read_json, write_json
from .text import load_jsonl, sha256_file


class SelectError(RuntimeError):
    pass


@dataclass
class Selection:
    name: str
    ids: list[str]           # selected sample ids, in pick order
    info: dict               # timing, pairs, f(A), the command
    out: Path | None = None  # delift's output directory


def model_hash(bundle: Path) -> str:
    man = json.loads((bundle / "manifest.json").read_text())
    return key_of(man.get("sha256", {}))


def delift_select(root: Path, cache: Path, name: str, data: Path, bundle: Path, budget: str, flags: list[str],
                  extra_inputs: list[Path], threads: int, log, cached_only: bool = False) -> Selection | None:
    """Runs `delift select` once for these inputs (cached). extra_inputs: files named by flags (target,
    existing), whose content is part of the key."""
    key = key_of({"data": sha256_file(data), "model": model_hash(bundle), "budget": budget, "flags": flags,
                  "extra": [sha256_file(p) for p in extra_inputs], "threads": threads})
    out = cache / "selections" / f"{name}-{key}"
    meta = out.with_name(out.name + ".json")
    if meta.exists() and (out / "selected.jsonl").exists():
        return _read(name, out, meta)
    if cached_only:
        return None
    if out.exists():
        shutil.rmtree(out)  # a run interrupted before its metadata was written
    cmd = ["node", str(root / "bin" / "delift.js"), "select", "--data", str(data), "--model", str(bundle),
           "--budget", budget, "--out", str(out), "--store", str(cache / "tiles"), "--threads", str(threads),
           *flags]
    log(f"select {name}: {' '.join(_short(c, root) for c in cmd[1:])}")
    lines: list[str] = []
    with Timer() as t:
        # delift's progress (one line per finished tile when not on a terminal) goes to the study's log
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        last_tiles = None
        for line in proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            if line.startswith("tiles "):  # repeated while a tile runs: log when the count moves
                count = line.split("|")[0]
                if count == last_tiles:
                    continue
                last_tiles = count
            lines.append(line)
            log(f"  delift: {line}")
        proc.wait()
    if proc.returncode != 0:
        raise SelectError(f"delift select ({name}) failed with exit code {proc.returncode}:\n"
                          f"  {' '.join(cmd)}\n" + "\n".join(lines[-40:]))
    report = read_json(out / "report.json")
    info = {"name": name, "command": [_short(c, root) for c in cmd], **t.as_dict(), "stdout": [x for x in lines if not x.startswith("tiles ")][-8:],
            "report": _summary(report)}
    write_json(meta, info)
    log(f"  {name}: {info['report'].get('selected')} selected, f(A) = {info['report'].get('value')}, "
        f"{t.wall:.0f} s wall, {t.cpu:.0f} s CPU")
    return _read(name, out, meta)


def _short(c: str, root: Path) -> str:
    return c.replace(str(root) + "/", "")


def _read(name: str, out: Path, meta: Path) -> Selection:
    ids = [str(r["id"]) for r in load_jsonl(out / "selected.jsonl")]
    return Selection(name, ids, read_json(meta), out)


def _summary(report: dict) -> dict:
    res = report.get("result", {})
    kern = report.get("kernel", {})
    second = report.get("secondKernel") or {}
    timing = report.get("timings") or {}
    return {"selected": res.get("selected"), "value": res.get("value"), "valueOfAll": res.get("valueOfAll"),
            "ratioToLazy": res.get("ratioToLazy"), "nnz": kern.get("nnz"), "secondNnz": second.get("nnz"),
            "rawMin": kern.get("rawMin"), "rawMax": kern.get("rawMax"), "tilesComputed": kern.get("tilesComputed"),
            "tilesReused": kern.get("tilesReused"), "timing": timing}


def budget_count(n: int, fraction: float) -> int:
    """The study's k for a fraction of n samples, passed to delift as a count so random subsets match it."""
    return max(1, round(fraction * n))


def random_subset(records: list[dict], fraction: float, seed: int) -> Selection:
    k = budget_count(len(records), fraction)
    idx = sorted(random.Random(seed).sample(range(len(records)), k))
    return Selection(f"random-s{seed}", [str(records[i]["id"]) for i in idx], {"seed": seed, "k": k})


def check_node(root: Path) -> None:
    if not (root / "dist" / "cli").exists():
        sys.exit(f"{root}/dist is missing: run `npm run build` first (the study calls `node bin/delift.js select`)")
