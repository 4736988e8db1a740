"""Reads a kernel delift wrote (`--save-kernel`: OUT/kernel/kernel.bin + kernel.json, common/src/kernel/
kernel-files.ts) and evaluates facility location on it, as delift's selection does: values min-max scaled
over the stored entries, unstored entries 0, f(A) = sum over rows i of max over j in A of s[i][j]."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MAGIC = b"DELIFTK1"


def read_kernel(kernel_dir: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """The kernel as a dense [rows, cols] float64 array of raw utilities (NaN where not stored), row ids, col ids."""
    meta = json.loads((kernel_dir / "kernel.json").read_text())
    raw = (kernel_dir / "kernel.bin").read_bytes()
    if raw[:8] != MAGIC:
        raise ValueError(f"{kernel_dir}/kernel.bin: not a delift kernel")
    n_rows, n_cols, nnz = np.frombuffer(raw, dtype="<u4", count=3, offset=8)
    at = 24
    col_ptr = np.frombuffer(raw, dtype="<u4", count=n_cols + 1, offset=at)
    at += 4 * (n_cols + 1)
    row_idx = np.frombuffer(raw, dtype="<u4", count=nnz, offset=at)
    at += 4 * nnz
    values = np.frombuffer(raw, dtype="<f4", count=nnz, offset=at)
    dense = np.full((n_rows, n_cols), np.nan)
    cols = np.repeat(np.arange(n_cols), np.diff(col_ptr.astype(np.int64)))
    dense[row_idx, cols] = values
    return dense, [str(x) for x in meta["rowIds"]], [str(x) for x in meta["colIds"]]


def min_max_scaled(raw: np.ndarray) -> np.ndarray:
    stored = ~np.isnan(raw)
    lo, hi = np.nanmin(raw), np.nanmax(raw)
    s = np.zeros_like(raw)
    if hi > lo:
        s[stored] = (raw[stored] - lo) / (hi - lo)
    return s


def facility_location(scaled: np.ndarray, cols: list[int]) -> float:
    if not cols:
        return 0.0
    return float(scaled[:, cols].max(axis=1).sum())
