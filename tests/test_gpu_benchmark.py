"""benchmarks/gpu.py runs where CUDA is, and says it has nothing to measure elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_it_exits_cleanly() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and "no CUDA device" in done.stdout, done.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_smoke_run_on_cuda() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("versions", "class"))]
    assert len(rows) == 18 and all(float(r.split()[-1]) > 0 for r in rows)
