"""Artefacts of the version model's explicit key and tempo change, before any network.

A version is ``G(T_{k, r}(reference), z)``. This script measures ``T`` alone: training
windows of each split, transformed as a sample's reference is (key change, tempo change with
each ``tempo_interpolation``, both; the vacated bins of a key change filled from the octave
or keeping their own content, ``key_fill``), go through the quality report's artefact check
(:func:`covergan.artefacts.artefact_check`) against the held-out real windows' range, beside
the untransformed crops. It prints, per corpus, split and transform, the artefact ratio (1:
what real windows of other recordings score), the flagged bins and, for the four lowest bins,
the share of windows whose frame-to-frame change falls *below* every held-out window's (what a
smoothing transform raises). No training; seconds per split.

Usage::

    python benchmarks/transform_artefacts.py                    # chorales and toy, seeds 0 1 2
    python benchmarks/transform_artefacts.py --data toy --seeds 0
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from quality import load  # benchmarks/quality.py: the corpora, rendered once into the workdir

from covergan.artefacts import artefact_check, bin_statistics
from covergan.augmenter import NORMALIZER_TRACKS
from covergan.cqt import CQTNormalizer
from covergan.data import CQTDataset, split_recordings
from covergan.models.reference import KeyFill, TempoInterpolation, version_transform
from covergan.versions import VersionConfig

CROPS = 4  # random windows per recording, as in the quality report


def windows(data: CQTDataset, width: int, normalizer: CQTNormalizer, seed: int) -> torch.Tensor:
    """``CROPS`` random model-space windows ``(n, 1, n_bins, width)`` of every recording."""
    view = data.windows(width, crop="random", seed=seed, transform=normalizer)
    xs: list[torch.Tensor] = []
    for epoch in range(CROPS):
        view.set_epoch(epoch)
        xs += [view[i][0] for i in range(len(view))]
    return torch.stack(xs)


def run_split(data: CQTDataset, seed: int) -> list[tuple[str, float, list[int], np.ndarray]]:
    """(transform, artefact ratio, flagged bins, low-bin share below range) of one split."""
    train, held = split_recordings(data, holdout=1, min_recordings=3, seed=seed)
    config = train.config
    assert config is not None
    normalizer = CQTNormalizer.for_config(config).fit(
        train, max_tracks=NORMALIZER_TRACKS, seed=seed
    )
    width = train.default_window()
    version = VersionConfig(image_size=(train.n_bins, width))
    real = windows(train, width, normalizer, seed)
    heldout = windows(held, width, normalizer, seed + 1)
    src = windows(train, version.source_width, normalizer, seed)
    semis, rates = version.draw_changes(src.shape[0], torch.Generator().manual_seed(seed))
    still, same = torch.zeros_like(semis), torch.ones_like(rates)
    low = bin_statistics(heldout)[:, 2].min(axis=0)  # lowest frame-to-frame change per bin
    rows = []
    variants: list[tuple[str, torch.Tensor, torch.Tensor, TempoInterpolation, KeyFill]] = [
        ("crop only", still, same, "nearest", "octave"),
        ("key, octave fill", semis, same, "nearest", "octave"),
        ("key, keep fill", semis, same, "nearest", "keep"),
        ("tempo, linear", still, rates, "linear", "octave"),
        ("tempo, nearest", still, rates, "nearest", "octave"),
        ("key + tempo, linear, octave fill", semis, rates, "linear", "octave"),
        ("key + tempo, nearest, octave fill", semis, rates, "nearest", "octave"),
        ("key + tempo, nearest, keep fill", semis, rates, "nearest", "keep"),
    ]
    for name, k, r, mode, fill in variants:
        x = version_transform(src, k, r, width=width, fill=fill, interpolation=mode)
        check = artefact_check(heldout, x, floor=real)
        below = (bin_statistics(x)[:, 2, :4] < low[:4]).mean(axis=0)
        rows.append((name, check.ratio, check.bins, below))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=["chorales", "toy"], help="corpora")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="splits")
    parser.add_argument("--workdir", type=Path, default=Path("benchmark-quality"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.platform()}, torch {torch.__version__}")
    print("| corpus | seed | transform | artefact ratio | flagged bins | bins 0-3 below range |")
    print("|---|---|---|---|---|---|")
    for corpus in args.data:
        data = load(corpus, args.workdir)
        for seed in args.seeds:
            for name, ratio, bins, below in run_split(data, seed):
                flagged = ", ".join(map(str, bins)) or "none"
                shares = " ".join(f"{b:.2f}" for b in below)
                print(f"| {corpus} | {seed} | {name} | {ratio:.2f} | {flagged} | {shares} |")


if __name__ == "__main__":
    main()
