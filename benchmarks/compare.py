"""Time and result of ``covergan compare`` on a built-in corpus (issue 19's target: 3 seeds x
4 conditions x 2 protocols within 30 minutes on 2 CPU cores).

A thin caller of :func:`covergan.compare.compare`: it loads the corpus, runs the comparison
into ``WORKDIR/<corpus>`` (resumable: run the same command again after an interruption), and
prints where the time went (version-model fits, CSI training, evaluation), the wall time of
this process, its peak resident memory, and the report.

Usage::

    python benchmarks/compare.py --data chorales --workdir /tmp/compare-bench
    python benchmarks/compare.py --data toy --seeds 3 --workdir /tmp/compare-bench
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import torch
from quality import load  # the corpora of benchmarks/quality.py

from covergan.compare import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("chorales", "toy"), default="chorales")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("compare-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, {threads} threads, torch {torch.__version__}")
    t0 = time.perf_counter()
    data = load(args.data, args.workdir)
    load_s = time.perf_counter() - t0
    result = compare(data, seeds=args.seeds, out=args.workdir / args.data, progress=False)
    wall = time.perf_counter() - t0
    spent = result.timings()
    print(f"{args.data}: {data.n_songs} works, {len(data)} recordings; {len(result.rows)} runs")
    print(f"wall {wall / 60:.1f} min in this process (data {load_s:.0f} s); summed over runs:")
    for name, seconds in spent.items():
        print(f"  {name}: {seconds / 60:.1f} min")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")
    report = result.to_markdown()
    (args.workdir / f"{args.data}-report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
