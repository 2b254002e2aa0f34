"""Time and result of ``covergan compare`` on a built-in corpus or your data (issue 19).

A thin caller of :func:`covergan.compare.compare`: it loads the corpus, runs the comparison
into ``WORKDIR/<corpus>`` (resumable: run the same command again after an interruption), and
prints where the time went (version-model and class-GAN fits, CSI training, evaluation),
the wall time of this process, its peak resident memory, and the report. It runs every
condition by default, the class GAN's two included (issue 18); issue 19's target, on the
chorales 3 seeds x the four default conditions of ``covergan compare`` x 2 protocols within
30 minutes on 2 CPU cores, is ``--conditions none classic versions classic+versions``.

It replaces ``benchmarks/downstream.py`` (removed on 2026-12-04; the experiments of its
sections in docs/benchmarks.md run from commit ``674352d547`` of the repository).

Usage::

    python benchmarks/compare.py --data chorales --workdir /tmp/compare-bench
    python benchmarks/compare.py --data chorales --conditions none classic versions \\
        classic+versions --workdir /tmp/compare-bench         # issue 19's timing
    python benchmarks/compare.py --data toy --seeds 3 --workdir /tmp/compare-bench
    python benchmarks/compare.py --data toy300 --window 48 --csi-steps 3000 --seeds 5 \\
        --protocols unseen-works --workdir /tmp/compare-bench
    python benchmarks/compare.py --data toy --augmenter '{"versions": {"diversity_weight": 0.01}}'
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch
from quality import load  # the corpora of benchmarks/quality.py

from covergan.compare import CONDITIONS, PROTOCOLS, CompareSettings, compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default="chorales",
        help="chorales, toy, toy300, .pt, folder (default: %(default)s)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="(default: %(default)s)")
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=list(CONDITIONS),
        choices=CONDITIONS,
        help="(default: all)",
    )
    parser.add_argument(
        "--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS, help="(default: both)"
    )
    parser.add_argument("--window", type=int, default=None, help="CSI window (default: auto)")
    parser.add_argument("--csi-steps", type=int, default=None, help="(default: auto)")
    parser.add_argument(
        "--version-steps",
        type=int,
        default=CompareSettings.version_steps,
        help="(default: %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")
    parser.add_argument(
        "--augmenter",
        type=json.loads,
        default={},
        help='Augmenter arguments (JSON), e.g. \'{"versions": {"diversity_weight": 0.01}}\'',
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("compare-bench"), help="(default: %(default)s)"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, {threads} threads, torch {torch.__version__}")
    t0 = time.perf_counter()
    data = load(args.data, args.workdir)
    load_s = time.perf_counter() - t0
    settings = CompareSettings(
        window=args.window,
        csi_steps=args.csi_steps,
        version_steps=args.version_steps,
        augmenter=args.augmenter,
        device=args.device,
    )
    name = Path(args.data).stem
    result = compare(
        data,
        conditions=tuple(args.conditions),
        protocols=tuple(args.protocols),
        seeds=args.seeds,
        settings=settings,
        out=args.workdir / name,
        progress=False,
    )
    wall = time.perf_counter() - t0
    spent = result.timings()
    print(f"{name}: {data.n_songs} works, {len(data)} recordings; {len(result.rows)} runs")
    print(f"wall {wall / 60:.1f} min in this process (data {load_s:.0f} s); summed over runs:")
    for step, seconds in spent.items():
        print(f"  {step}: {seconds / 60:.1f} min")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")
    report = result.to_markdown()
    (args.workdir / f"{name}-report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
