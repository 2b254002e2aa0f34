"""The thesis baseline against the default preset, on the Bach-chorale demo data.

Measured in one process on one machine, and printed as ratios:

1. training throughput (samples/s) of ``preset="thesis"`` and ``preset="default"``
   (target: default >= 10x the thesis);
2. quality after the same wall-clock budget for each (``--budget`` seconds, default 600):
   the per-song Frechet distance (``"cqt-stats"`` features, Ledoit-Wolf shrinkage) of
   each model's samples to held-out real recordings, next to the real-vs-real floor
   (training recordings vs the same held-out recordings; target: default within 2x);
3. generation throughput (CQTs/s at batch 256; target >= 400/s on CPU).

Both presets see the same training recordings, as 84 x 200 windows (the only size the
thesis architecture supports). Each model's steps are set from its measured throughput so
both train for about ``--budget`` seconds; the actual times are printed.

Usage::

    python benchmarks/gan.py                       # full run, ~25 minutes on 2 CPU cores
    python benchmarks/gan.py --budget 60 --quick   # smoke run
    python benchmarks/gan.py --figures docs/figures  # also write sample grids and curves
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from covergan.augmenter import Augmenter
from covergan.data import CQTDataset, split_recordings
from covergan.gan import ConditionalDCGAN, GANConfig
from covergan.report import quality_report

WINDOW = 200


def train_throughput(preset: str, train: CQTDataset, aug_template: Augmenter, steps: int) -> float:
    """Training samples per second of ``preset`` (after two warm-up steps)."""
    probe = Augmenter(
        model="gan",
        preset=preset,
        window=WINDOW,
        steps=2,
        seed=0,
        progress=False,
        device=aug_template.device,
    ).fit(train)
    gan = probe.gan_
    assert gan is not None  # model="gan" was fitted
    view = train.windows(WINDOW, crop="random", seed=1, transform=probe.normalizer_)
    t0 = time.perf_counter()
    gan.fit(view, steps=steps, progress=False)
    seconds = time.perf_counter() - t0
    return steps * gan.config.batch_size * gan.config.d_steps / seconds


def generation_throughput(gan: ConditionalDCGAN, n: int = 1024, batch: int = 256) -> float:
    labels = torch.arange(n) % max(gan.n_classes, 1)
    gan.generate(labels[:batch], generator=0, batch_size=batch)  # warm-up
    t0 = time.perf_counter()
    gan.generate(labels, generator=0, batch_size=batch)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds per preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="fewer probe steps (smoke test)")
    parser.add_argument("--max-works", type=int, default=None, help="limit the chorale works")
    parser.add_argument("--figures", type=Path, default=None, help="folder for report figures")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers as JSON")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from covergan.datasets import chorale_covers

    torch.manual_seed(args.seed)
    data = chorale_covers(max_works=args.max_works, seed=args.seed, n_jobs=2, progress=False)
    train, heldout = split_recordings(data, holdout=1, min_recordings=3, seed=args.seed)
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
        f"{len(train)} training and {len(heldout)} held-out recordings of {data.n_songs} works"
    )
    template = Augmenter(device="cpu")
    probe_steps = {"thesis": 3 if args.quick else 10, "default": 10 if args.quick else 40}
    rates = {p: train_throughput(p, train, template, probe_steps[p]) for p in ("thesis", "default")}
    print(
        f"\ntraining throughput (samples/s): thesis {rates['thesis']:.1f}, "
        f"default {rates['default']:.1f}"
        f"  -> {rates['default'] / rates['thesis']:.1f}x (target >= 10x)"
    )

    results: dict[str, Any] = {
        "rates": rates,
        "budget_s": args.budget,
        "machine": platform.processor(),
    }
    for preset in ("thesis", "default"):
        batch = GANConfig.for_preset(preset).batch_size
        steps = max(1, int(args.budget * rates[preset] / batch))
        if preset == "default":  # its steps // 5 autoencoder steps cost about as much as GAN ones
            steps = max(1, int(steps / 1.2))
        t0 = time.perf_counter()
        aug = Augmenter(
            model="gan",
            preset=preset,
            window=WINDOW,
            steps=steps,
            seed=args.seed,
            device="cpu",
            progress=True,
        ).fit(train)
        seconds = time.perf_counter() - t0
        out = (args.figures / preset) if args.figures else Path(f"/tmp/covergan-gan-bench/{preset}")
        report = quality_report(
            aug, train, heldout, out, seed=args.seed, title=f"{preset} preset after {seconds:.0f} s"
        )
        assert aug.gan_ is not None  # model="gan" was fitted
        gen = generation_throughput(aug.gan_)
        results[preset] = {
            "steps": steps,
            "train_seconds": seconds,
            "per_song_distance": report.per_song.mean_distance,
            "per_song_floor": report.per_song.mean_floor,
            "per_song_ratio": report.per_song.ratio,
            "pooled_distance": report.overall.distance,
            "pooled_floor": report.overall.floor,
            "memorization_ratio": report.memorization.ratio if report.memorization else None,
            "generation_per_s": gen,
            "report": str(report.markdown),
        }
        print(
            f"\n{preset}: {steps} steps in {seconds:.0f} s; per-song distance "
            f"{report.per_song.mean_distance:.3g} vs floor {report.per_song.mean_floor:.3g} "
            f"({report.per_song.ratio:.2f}x); generation {gen:.0f} CQTs/s"
        )

    t, d = results["thesis"], results["default"]
    print("\n| | thesis | default |")
    print("|---|---|---|")
    print(f"| training samples/s | {rates['thesis']:.1f} | {rates['default']:.1f} |")
    print(f"| steps in the budget | {t['steps']} | {d['steps']} |")
    print(
        f"| per-song distance (floor) | {t['per_song_distance']:.3g} ({t['per_song_floor']:.3g}) | "
        f"{d['per_song_distance']:.3g} ({d['per_song_floor']:.3g}) |"
    )
    print(f"| ratio to the floor | {t['per_song_ratio']:.2f} | {d['per_song_ratio']:.2f} |")
    print(
        f"| pooled distance (floor) | {t['pooled_distance']:.3g} ({t['pooled_floor']:.3g}) | "
        f"{d['pooled_distance']:.3g} ({d['pooled_floor']:.3g}) |"
    )
    print(f"| memorisation ratio | {t['memorization_ratio']:.2f} | {d['memorization_ratio']:.2f} |")
    print(
        f"| generation CQTs/s (batch 256) | {t['generation_per_s']:.0f} | "
        f"{d['generation_per_s']:.0f} |"
    )
    print(
        f"\ndefault vs thesis: {rates['default'] / rates['thesis']:.1f}x training throughput; "
        f"{t['per_song_distance'] / d['per_song_distance']:.1f}x smaller per-song distance"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
