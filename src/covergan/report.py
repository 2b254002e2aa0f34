"""A quality report for a fitted :class:`~covergan.Augmenter`: numbers beside their floors,
figures, and a Markdown page tying them together.

Every synthetic-vs-real distance is printed beside the real-vs-real floor measured the
same way (held-out recordings of the same songs as the reference, equal sample sizes),
so "1.3x the floor" reads as "30 % farther from unseen real versions than the training
versions are".
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from covergan.data import CQTDataset, SongId
from covergan.errors import ParameterError
from covergan.metrics import (
    FloorComparison,
    MemorizationReport,
    PerSongReport,
    frechet_with_floor,
    memorization_check,
    per_song_frechet,
)

if TYPE_CHECKING:
    from covergan.augmenter import Augmenter

__all__ = ["QualityReport", "model_space_windows", "quality_report"]

logger = logging.getLogger(__name__)


@dataclass
class QualityReport:
    """What :func:`quality_report` measured and wrote.

    Attributes
    ----------
    per_song : PerSongReport
        Per-song Frechet distance (``"cqt-stats"`` features, Ledoit-Wolf shrinkage) of
        synthetic windows to held-out real windows, beside the training-vs-held-out floor.
    overall : FloorComparison
        The same for all songs pooled.
    memorization : MemorizationReport or None
        Nearest-training-sample distances of synthetic vs held-out real windows.
    markdown : Path
        The report page.
    figures : dict of str to Path
    """

    per_song: PerSongReport
    overall: FloorComparison
    memorization: MemorizationReport | None
    markdown: Path
    figures: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def model_space_windows(
    aug: Augmenter, dataset: CQTDataset, *, crops: int = 4, seed: int = 0
) -> tuple[torch.Tensor, list[SongId]]:
    """``crops`` seeded random windows of every recording, in the augmenter's model space.

    Returns
    -------
    windows : torch.Tensor [shape=(crops * len(dataset), 1, n_bins, window_)]
    song_ids : list of str or int
        The song of each window.
    """
    view = dataset.windows(aug.window_, crop="random", seed=seed, transform=aug.normalizer_)
    xs: list[torch.Tensor] = []
    songs: list[SongId] = []
    for epoch in range(crops):
        view.set_epoch(epoch)
        xs += [view[i][0] for i in range(len(view))]
        songs += list(view.song_ids)
    return torch.stack(xs), songs


def quality_report(
    aug: Augmenter,
    train: CQTDataset,
    heldout: CQTDataset,
    out_dir: str | os.PathLike[str],
    *,
    n_per_song: int = 16,
    crops: int = 4,
    grid_songs: int = 6,
    seed: int = 0,
    title: str = "covergan quality report",
    notes: Sequence[str] = (),
) -> QualityReport:
    """Measure a fitted augmenter against held-out recordings and write a report.

    Parameters
    ----------
    aug : Augmenter
        Fitted on ``train``.
    train : CQTDataset
        The recordings the augmenter was trained on.
    heldout : CQTDataset
        Other recordings of (some of) the same songs, never seen in training (see
        :func:`covergan.data.split_recordings`). Only its songs are evaluated.
    out_dir : str or PathLike
        Where ``report.md`` and ``figures/*.png`` go (created).
    n_per_song : int
        Synthetic windows drawn per evaluated song.
    crops : int
        Random windows cut from every real recording (real songs have few recordings).
    grid_songs : int
        Songs shown in the real-vs-synthetic grid (the rarest evaluated ones).
    seed : int
        Seeds crops, samples and the distance subsets.
    title : str
    notes : sequence of str
        Extra lines for the report's header (e.g. how the data was made).

    Returns
    -------
    QualityReport

    Raises
    ------
    ParameterError
        ``n_per_song`` or ``crops`` < 2, or ``heldout`` shares no song with the augmenter.
    NotFittedError
        ``aug`` is not fitted.
    """
    from covergan import plots

    t0 = time.perf_counter()
    if n_per_song < 2 or crops < 1:
        raise ParameterError(f"need n_per_song >= 2 and crops >= 1, got {n_per_song}, {crops}")
    songs = [s for s in heldout.index.ids if s in aug.songs_]
    if not songs:
        raise ParameterError("the held-out set shares no song with the augmenter")
    out = Path(out_dir).expanduser()
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    real, real_songs = model_space_windows(aug, train, crops=crops, seed=seed)
    held, held_songs = model_space_windows(aug, heldout, crops=crops, seed=seed + 1)
    fake_by_song = aug.sample_many({s: n_per_song for s in songs}, space="model", seed=seed)
    fake = torch.cat([fake_by_song[s] for s in songs])
    fake_songs = [s for s in songs for _ in range(n_per_song)]
    keep = [i for i, s in enumerate(real_songs) if s in fake_by_song]
    real_eval = real[keep]
    real_eval_songs = [real_songs[i] for i in keep]

    per_song = per_song_frechet(
        real_eval,
        real_eval_songs,
        fake,
        fake_songs,
        heldout=held,
        heldout_labels=held_songs,
        seed=seed,
    )
    overall = frechet_with_floor(real_eval, fake, heldout=held, shrinkage="ledoit-wolf", seed=seed)
    memo = memorization_check(fake, real, held)

    counts = aug.songs_.class_counts()
    rarest = sorted(songs, key=lambda s: (counts[s], str(s)))[:grid_songs]
    real_by_song = {s: real[[i for i, r in enumerate(real_songs) if r == s]] for s in rarest}
    sources = _comparison(aug, real_by_song, seed)
    paths = {
        "grid": fig_dir / "grid.png",
        "bin_statistics": fig_dir / "bin_statistics.png",
        "histograms": fig_dir / "histograms.png",
    }
    plots.plot_cqt_sources(sources, songs=rarest, path=paths["grid"])
    plots.plot_bin_statistics(
        held, fake, title="held-out real vs synthetic", path=paths["bin_statistics"]
    )
    plots.plot_value_histograms(held, fake, path=paths["histograms"])
    if aug.history_:
        paths["losses"] = fig_dir / "losses.png"
        plots.plot_losses(aug.history_, smooth=25, path=paths["losses"])

    markdown = out / "report.md"
    report = QualityReport(per_song, overall, memo, markdown, paths, time.perf_counter() - t0)
    markdown.write_text(_markdown(report, aug, train, heldout, title, notes, n_per_song, crops))
    return report


_LABELS = {"versions": "versions", "gan": "class GAN"}


def _comparison(
    aug: Augmenter, real_by_song: dict[SongId, torch.Tensor], seed: int, n: int = 3
) -> dict[str, dict[SongId, torch.Tensor]]:
    """Real windows of each song, beside what every fitted model and classic augmentation
    (a key roll of up to 6 semitones and a tempo change of 0.8-1.25, both always applied)
    make of the song, in model space."""
    from covergan.augment.classic import Compose, SemitoneRoll, TempoChange

    songs = list(real_by_song)
    sources: dict[str, dict[SongId, torch.Tensor]] = {"real": real_by_song}
    for name in aug.steps_done:
        label = _LABELS[name] + (" (default)" if name == aug.models[0] else "")
        sources[label] = aug.sample_many(
            {s: n for s in songs}, method=name, space="model", seed=seed
        )
    classic = Compose(
        [
            SemitoneRoll(6, bins_per_semitone=aug.config_.bins_per_semitone, p=1.0),
            TempoChange(0.8, 1.25, p=1.0),
        ],
        seed=seed,
    )
    sources["classic augmentation"] = {s: classic(real_by_song[s][:n]) for s in songs}
    return sources


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def _markdown(
    report: QualityReport,
    aug: Augmenter,
    train: CQTDataset,
    heldout: CQTDataset,
    title: str,
    notes: Sequence[str],
    n_per_song: int,
    crops: int,
) -> str:
    counts = np.asarray(list(train.class_counts().values()))
    lines: list[str] = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes]
    lines += [
        f"- training set: {len(train)} recordings of {train.n_songs} songs "
        f"({counts.min()}-{counts.max()} per song, median {np.median(counts):g}); held out: "
        f"{len(heldout)} recordings of {heldout.n_songs} songs",
        f"- models: {', '.join(f'{m} ({k} steps)' for m, k in aug.steps_done.items())}; "
        f"windows of {aug.config_.n_bins} x {aug.window_} frames, seed {aug.seed_}",
        f"- evaluation: {n_per_song} synthetic windows per song; {crops} random windows per real "
        "recording; `cqt-stats` features; Ledoit-Wolf shrinkage",
        "",
        "## How far synthetic samples are from unseen real versions",
        "",
        "Frechet distance to the held-out recordings' windows, beside the floor: the distance "
        "of the training recordings' windows to the same held-out windows, at equal sample "
        "sizes. A ratio near 1 means synthetic samples are as close to unseen versions as "
        "real training versions are.",
        "",
        "| | distance | floor | ratio |",
        "|---|---|---|---|",
        f"| all songs pooled | {_fmt(report.overall.distance)} | {_fmt(report.overall.floor)} | "
        f"{_fmt(report.overall.ratio)} |",
        f"| mean over songs ({len(report.per_song.rows)}) | "
        f"{_fmt(report.per_song.mean_distance)} | {_fmt(report.per_song.mean_floor)} | "
        f"{_fmt(report.per_song.ratio)} |",
        "",
    ]
    if report.memorization is not None:
        m = report.memorization
        lines += [
            "## Memorisation",
            "",
            "Median distance to the nearest training window: synthetic "
            f"{_fmt(m.median_synthetic)}, held-out real {_fmt(m.median_heldout)}; "
            f"ratio {_fmt(m.ratio)} (about 1 or more: no copying; much less than 1: "
            "copies of the training set). "
            f"{m.copy_fraction:.1%} of synthetic windows are closer to a training window than "
            "any held-out window is.",
            "",
        ]
    lines += ["## Per song", "", report.per_song.to_markdown(), "", "## Figures", ""]
    captions = {
        "grid": "The rarest evaluated songs at one colour scale: real (training) windows, each "
        "fitted model's samples, and classic augmentation of the real windows",
        "bin_statistics": "Per-bin mean and spread, held-out real vs synthetic",
        "histograms": "Value histograms per frequency band",
        "losses": "Training losses",
    }
    for name, path in report.figures.items():
        lines += [f"### {captions.get(name, name)}", "", f"![{name}](figures/{path.name})", ""]
    return "\n".join(lines)
