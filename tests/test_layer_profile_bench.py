"""bench/layer_profile.py: every part of a CNN batch gets a row, the plan's folded parts say so,
and at two threads the batch split across threads (as ``fit`` runs it) is timed too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nn.core import blas

ROOT = Path(__file__).resolve().parents[1]


def _profile(tmp_path: Path, threads: int) -> tuple[str, dict]:
    out = tmp_path / f"profile{threads}.json"
    done = subprocess.run(
        [
            sys.executable,
            "bench/layer_profile.py",
            "--batches",
            "3",
            "--warm-up",
            "1",
            "--threads",
            str(threads),
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return done.stdout, json.loads(out.read_text())


@pytest.mark.skipif(blas.get_threads() is None, reason="OpenBLAS's thread count is not readable")
def test_the_profile_names_every_part_and_times_the_split_batch_at_two_threads(tmp_path):
    text, figures = _profile(tmp_path, 2)
    parts = list(figures["parts"])
    assert parts[0] == "input (uint8 -> float32)" and parts[-1] == "optimizer step (Adam)"
    assert "forward  1 relu (in the pooling)" in parts
    assert "forward  0 conv2d (pool order)" in parts and "backward 2 maxpool (pool order)" in parts
    assert all(p["median_ms"] >= 0 for p in figures["parts"].values())
    assert figures["split_batch_median_ms"] > 0
    assert "median batch split across threads" in text


def test_at_one_thread_nothing_is_split(tmp_path):
    text, figures = _profile(tmp_path, 1)
    assert figures["split_batch_median_ms"] is None
    assert "split across threads" not in text
