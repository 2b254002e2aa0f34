"""Memory and time of retrieval scoring in blocks against the full distance matrix.

Scores one collection of random unit embeddings (``--items`` recordings, works of 1 to 5
recordings) twice in the same process: the baseline builds the full ``N x N`` matrix
(``retrieval_metrics_from_distances(pairwise_distances(x))``), the library's
``retrieval_metrics`` computes ``block_size`` queries at a time. Prints seconds, peak traced
memory (``tracemalloc``: NumPy's allocations) and their ratios, and checks both give the same
MAP. ``covergan compare`` scores its rare-song gallery the same way
(``gallery_metrics_from_embeddings``).

Usage::

    python benchmarks/retrieval.py                   # 10,000 items
    python benchmarks/retrieval.py --items 30000 --skip-baseline
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from covergan.csi import RetrievalResult
from covergan.csi.retrieval import (
    BLOCK_SIZE,
    pairwise_distances,
    retrieval_metrics,
    retrieval_metrics_from_distances,
)


def measure(fn: Callable[[], RetrievalResult]) -> tuple[RetrievalResult, float, float]:
    """(result, seconds, peak traced MiB) of one call."""
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10_000, help="recordings N")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--block-size", type=int, default=BLOCK_SIZE)
    parser.add_argument("--skip-baseline", action="store_true", help="blocks only")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(args.items), rng.integers(1, 6, args.items))[: args.items]
    x = rng.standard_normal((args.items, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}")
    print(f"# N={args.items}, D={args.dim}, block_size={args.block_size}")
    blocks, t_b, m_b = measure(lambda: retrieval_metrics(x, labels, block_size=args.block_size))
    print(f"blocks:      {t_b:8.1f} s  peak {m_b:9.1f} MiB  MAP {blocks.map:.6f}")
    if args.skip_baseline:
        return
    full, t_f, m_f = measure(
        lambda: retrieval_metrics_from_distances(pairwise_distances(x), labels)
    )
    print(f"full matrix: {t_f:8.1f} s  peak {m_f:9.1f} MiB  MAP {full.map:.6f}")
    print(f"ratio blocks / full matrix: time {t_b / t_f:.2f}, peak memory {m_b / m_f:.3f}")
    assert np.isclose(blocks.map, full.map), "blocked and full scoring disagree"


if __name__ == "__main__":
    main()
