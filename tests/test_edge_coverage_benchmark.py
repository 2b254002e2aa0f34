"""benchmarks/edge_coverage.py: the zero-padded discriminators pass their edge bins less."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "edge_coverage.py"


def test_the_edge_bins_get_less_gradient_than_the_inner_ones() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--size", "48", "32", "--seeds", "2", "--batch", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines() if "initialised" in line]
    assert [r[1].strip() for r in rows] == [
        "pair, initialised",
        "pair, DiffAugment, initialised",
        "class, initialised",
    ]
    for row in rows:
        low, high = (list(map(float, cell.split())) for cell in row[2:4])
        assert len(low) == len(high) == 4
        # zero padding: the outermost bin gets well under an inner bin's share at both edges
        assert low[0] < 0.5 and high[-1] < 0.5 and low[0] < low[3]
