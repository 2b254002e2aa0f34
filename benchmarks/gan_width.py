"""Generator width: quality and speed of ``g_width`` settings of the default preset.

Trains the default preset once per ``(g_width, seed)`` on the same chorale split and
the same number of steps, in one process, and prints per setting (mean and standard
deviation over seeds): training seconds, generation throughput (CQTs/s at batch 256),
the per-song and pooled Frechet distances (``"cqt-stats"``) as ratios to the
real-vs-real floor, and the memorisation ratio. This is the evidence behind the
default ``g_width`` (docs/benchmarks.md).

Usage::

    python benchmarks/gan_width.py                           # 16 vs 32, 3 seeds, 600 steps
    python benchmarks/gan_width.py --widths 8 16 --steps 50 --seeds 0   # smoke run
    python benchmarks/gan_width.py --generation-only   # CQTs/s per width, 1 and 2 threads
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from covergan.augmenter import Augmenter
from covergan.data import split_recordings
from covergan.gan import ConditionalDCGAN, GANConfig
from covergan.report import quality_report

WINDOW = 200


def generation_throughput(gan: ConditionalDCGAN, n: int = 1024, batch: int = 256) -> float:
    """CQTs per second of ``gan.generate`` at ``batch`` (after one warm-up batch)."""
    labels = torch.arange(n) % max(gan.n_classes, 1)
    gan.generate(labels[:batch], generator=0, batch_size=batch)
    t0 = time.perf_counter()
    gan.generate(labels, generator=0, batch_size=batch)
    return n / (time.perf_counter() - t0)


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3g} ± {sd:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 16])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600, help="GAN steps per model")
    parser.add_argument("--max-works", type=int, default=None, help="limit the chorale works")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers as JSON")
    parser.add_argument(
        "--generation-only",
        action="store_true",
        help="only time generation (84 x 200, 68 classes; speed does not depend on the weights)",
    )
    args = parser.parse_args()
    if args.generation_only:
        print(f"{platform.processor() or platform.machine()}; batch 256, best of 3")
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for width in args.widths:
                gan = ConditionalDCGAN(68, config=GANConfig(g_width=width), device="cpu", seed=0)
                best = max(generation_throughput(gan) for _ in range(3))
                print(f"g_width={width}, {threads} thread(s): {best:.0f} CQTs/s")
        return
    torch.set_num_threads(args.threads)

    from covergan.datasets import chorale_covers

    data = chorale_covers(max_works=args.max_works, seed=0, n_jobs=2, progress=False)
    train, heldout = split_recordings(data, holdout=1, min_recordings=3, seed=0)
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
        f"{len(train)} training and {len(heldout)} held-out recordings; {args.steps} steps"
    )
    rows: dict[int, list[dict[str, float]]] = {w: [] for w in args.widths}
    for seed in args.seeds:
        for width in args.widths:
            t0 = time.perf_counter()
            aug = Augmenter(
                model="gan",
                gan={"g_width": width},
                window=WINDOW,
                steps=args.steps,
                seed=seed,
                device="cpu",
                progress=False,
            ).fit(train)
            seconds = time.perf_counter() - t0
            out = Path(f"/tmp/covergan-width-bench/w{width}-s{seed}")
            report = quality_report(aug, train, heldout, out, seed=seed)
            assert aug.gan_ is not None  # model="gan" was fitted
            row = {
                "train_seconds": seconds,
                "generation_per_s": generation_throughput(aug.gan_),
                "per_song_ratio": report.per_song.ratio,
                "pooled_ratio": report.overall.distance / report.overall.floor,
                "memorization_ratio": (
                    report.memorization.ratio if report.memorization else float("nan")
                ),
                "parameters": sum(p.numel() for p in aug.gan_.generator.parameters()),
            }
            rows[width].append(row)
            print(
                f"g_width={width} seed={seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items())
            )

    keys = [
        "train_seconds",
        "generation_per_s",
        "per_song_ratio",
        "pooled_ratio",
        "memorization_ratio",
    ]
    print("\n| g_width | generator parameters | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 2) + "|")
    for width, runs in rows.items():
        cells = [_mean_sd([r[k] for r in runs]) for k in keys]
        print(f"| {width} | {runs[0]['parameters']:,.0f} | " + " | ".join(cells) + " |")
    base = args.widths[0]
    for width in args.widths[1:]:
        diffs = [
            b["per_song_ratio"] - a["per_song_ratio"]
            for a, b in zip(rows[base], rows[width], strict=True)
        ]
        speed = statistics.fmean(r["generation_per_s"] for r in rows[width]) / statistics.fmean(
            r["generation_per_s"] for r in rows[base]
        )
        print(
            f"g_width={width} vs {base}: generation {speed:.2f}x; per-song ratio difference "
            f"(paired by seed) {_mean_sd(diffs)}"
        )
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
