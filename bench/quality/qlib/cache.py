"""Cached, resumable steps: every intermediate result lives under a directory named by a key of its inputs
(content hashes of data and model, settings), written atomically, so an interrupted study resumes where it
stopped and a changed input recomputes only what depends on it. Each step records its wall and CPU time."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import time
from pathlib import Path


def key_of(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path):
    return json.loads(path.read_text())


class Timer:
    """Wall time and CPU time (user + system) of this process and of the children it waited for."""

    def __enter__(self):
        self.w0 = time.time()
        self.c0 = _cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.time() - self.w0
        self.cpu = _cpu() - self.c0
        return False

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall, 1), "cpu_s": round(self.cpu, 1)}


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
