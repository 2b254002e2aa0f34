"""A quality report for a fitted :class:`~covergan.Augmenter`: numbers beside their floors,
figures, and a Markdown page tying them together.

The headline is the suite of :mod:`covergan.quality`, measured in a CSI embedding (the
reference model of :mod:`covergan.csi` trained on the training recordings while the report
runs, or one the caller passes): identity, diversity, realism and memorisation of every
fitted model's samples, each beside the same number for held-out real windows, and the same
suite for negative controls (scrambled music, matched noise, a collapsed set, copies) that a
trustworthy metric must reject. The ``cqt-stats`` Frechet distance stays as a cheap secondary
number; it summarises each bin over time, so it cannot hear melody, harmony or diversity.
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

from covergan._checks import check_count
from covergan.artefacts import MIN_REFERENCE_WINDOWS, ArtefactCheck, artefact_check, low_comb
from covergan.data import CQTDataset, SongId
from covergan.errors import DatasetError, NotFittedError, ParameterError
from covergan.metrics import (
    FloorComparison,
    MemorizationReport,
    PerSongReport,
    frechet_with_floor,
    memorization_check,
    per_song_frechet,
)
from covergan.quality import (
    DEFAULT_EMBEDDING_STEPS,
    Embed,
    QualitySuite,
    evaluate_quality,
    matched_noise,
    negative_controls,
    rows_of,
    shuffle_bins,
    train_embedding,
)
from covergan.synthesis.version_model import NO_REFERENCE_BANK

if TYPE_CHECKING:
    from covergan.augmenter import Augmenter

__all__ = [
    "MAX_REPORT_RECORDINGS",
    "MAX_REPORT_SONGS",
    "QualityReport",
    "check_reportable",
    "model_space_windows",
    "quality_report",
]

logger = logging.getLogger(__name__)


@dataclass
class QualityReport:
    """What :func:`quality_report` measured and wrote.

    Attributes
    ----------
    suites : dict of str to QualitySuite
        The headline suite of each fitted model's samples (``"versions"``, ``"gan"``), the
        augmenter's default model first.
    controls : dict of str to QualitySuite
        The same suite for the negative controls of :func:`~covergan.quality.negative_controls`.
    artefacts : dict of str to ArtefactCheck
        :func:`~covergan.artefacts.artefact_check` of every fitted model's samples and of
        its negative controls (``"control: ..."``); empty with fewer than 10 held-out windows.
    per_song : PerSongReport
        Secondary: per-song Frechet distance (``"cqt-stats"`` features, Ledoit-Wolf
        shrinkage) of the default model's windows to held-out real windows, beside the
        training-vs-held-out floor.
    overall : FloorComparison
        The same for all songs pooled.
    memorization : MemorizationReport or None
        Nearest-training-sample distances (CQT space) of the default model's windows vs
        held-out real windows.
    markdown : Path
        The report page.
    figures : dict of str to Path
    """

    suites: dict[str, QualitySuite]
    controls: dict[str, QualitySuite]
    artefacts: dict[str, ArtefactCheck]
    per_song: PerSongReport
    overall: FloorComparison
    memorization: MemorizationReport | None
    markdown: Path
    figures: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def default(self) -> QualitySuite:
        """The suite of the augmenter's default model."""
        return next(iter(self.suites.values()))


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
    n = len(view)  # a CQTDataset has at least one recording
    first = view[0][0]
    out = first.new_empty((crops * n, *first.shape))  # filled in place, no list beside it
    songs: list[SongId] = []
    for epoch in range(crops):
        view.set_epoch(epoch)
        for i in range(n):
            out[epoch * n + i] = view[i][0]
        songs += list(view.song_ids)
    return out, songs


MAX_REPORT_SONGS = 256
"""``quality_report``'s default cap on songs: it evaluates at most this many held-out songs
(a seeded subset when there are more) and takes real windows from at most this many training
songs (the evaluated ones first, then a seeded subset of the others as the identity test's
distractors), so its memory and time do not grow with the catalogue."""
MAX_REPORT_RECORDINGS = 16
"""Under a song cap, ``quality_report`` takes real windows from at most this many
recordings of each song (a seeded subset), so a song with hundreds of recordings does not
fill the memory either."""


def quality_report(
    aug: Augmenter,
    train: CQTDataset,
    heldout: CQTDataset,
    out_dir: str | os.PathLike[str],
    *,
    embed: Embed | None = None,
    embedding_steps: int = DEFAULT_EMBEDDING_STEPS,
    n_per_song: int = 16,
    crops: int = 4,
    grid_songs: int = 6,
    max_songs: int | None = MAX_REPORT_SONGS,
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
    embed : nn.Module or callable, optional
        The CSI embedding of the suite, ``Tensor [shape=(b, 1, n_bins, window_)] -> Tensor
        [shape=(b, d)]`` on model-space windows. Default: the reference CSI model trained
        on ``train`` for ``embedding_steps`` steps (:func:`~covergan.quality.train_embedding`).
    embedding_steps : int
        Steps of that training.
    n_per_song : int
        Synthetic windows drawn per evaluated song.
    crops : int
        Random windows cut from every real recording (real songs have few recordings).
    grid_songs : int
        Songs shown in the real-vs-synthetic grid (the rarest evaluated ones).
    max_songs : int or None
        Songs evaluated at most, and songs whose training recordings give real windows at
        most (:data:`MAX_REPORT_SONGS`; ``None``: all songs and all recordings). Over the
        cap, a seeded subset of the held-out songs is evaluated, and the identity test
        chooses among those songs and a seeded subset of the other training songs that fills
        the cap (its chance level is one over the songs chosen among). Under any cap, real
        windows come from at most :data:`MAX_REPORT_RECORDINGS` recordings of a song (a
        seeded subset). The embedding still trains on all of ``train``.
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
        ``n_per_song`` < 2, ``crops`` < 1, ``max_songs`` < 1, ``heldout`` shares no song
        with the augmenter, ``out_dir`` (or its ``figures``) is a file, or ``embed`` returns
        something other than a finite ``(b, d)`` tensor (nothing is written then).
    NotFittedError
        ``aug`` is not fitted, or its version model has no reference bank (a file of
        augmenter format 2; refit it): :func:`check_reportable`.
    DatasetError
        None of the held-out songs has reference windows (held-out songs without them, whose
        training recordings are all shorter than a quarter window, are left out with a
        warning when others have them).

    All but the ``embed`` check are raised before any training or sampling.
    """

    t0 = time.perf_counter()
    out, max_songs = _check_report_args(aug, heldout, out_dir, n_per_song, crops, max_songs)
    fig_dir = out / "figures"  # created once every number is in (nothing half-written)
    shared = [s for s in heldout.index.ids if s in aug.songs_]
    songs = _songs_with_references(aug, shared)
    n_known = len(songs)
    songs, real_set, held_set = _evaluated_songs(train, heldout, songs, max_songs, seed)
    real, real_songs = model_space_windows(aug, real_set, crops=crops, seed=seed)
    held, held_songs = model_space_windows(aug, held_set, crops=crops, seed=seed + 1)
    if embed is None:
        logger.info("training the report's CSI embedding for %d steps", embedding_steps)
        embed = train_embedding(
            train,
            window=aug.window_,
            transform=aug.normalizer_,
            steps=embedding_steps,
            seed=seed,
            progress=aug.progress,
        )
    fakes: dict[str, dict[SongId, torch.Tensor]] = {}
    suites: dict[str, QualitySuite] = {}
    fake_songs = [s for s in songs for _ in range(n_per_song)]
    for name in aug.steps_done:
        fakes[name] = aug.sample_many(
            {s: n_per_song for s in songs}, method=name, space="model", seed=seed
        )
        fake_all = torch.cat([fakes[name][s] for s in songs])
        suites[name] = evaluate_quality(
            embed, real, real_songs, held, held_songs, fake_all, fake_songs, seed=seed
        )
    controls = negative_controls(embed, real, real_songs, held, held_songs, seed=seed)
    artefacts = _artefacts(fakes, songs, real, real_songs, held, seed)

    fake_by_song = next(iter(fakes.values()))  # the default model's (models are in order)
    fake = torch.cat([fake_by_song[s] for s in songs])
    keep = [i for i, s in enumerate(real_songs) if s in fake_by_song]
    real_eval = rows_of(real, keep)
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

    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = _figures(aug, fig_dir, songs, real, real_songs, held, fake, fakes, grid_songs, seed)

    markdown = out / "report.md"
    report = QualityReport(
        suites,
        controls,
        artefacts,
        per_song,
        overall,
        memo,
        markdown,
        paths,
        time.perf_counter() - t0,
    )
    evaluation = f"{n_per_song} synthetic windows per held-out song"
    if len(songs) < n_known or real_set is not train or held_set is not heldout:
        evaluation += (
            f" of {len(songs)} of {n_known} held-out songs (a seeded subset, max_songs="
            f"{max_songs}; real windows of {len(real_set)} training recordings of "
            f"{real_set.n_songs} songs, at most {MAX_REPORT_RECORDINGS} per song)"
        )
    if n_known < len(shared):
        evaluation += (
            "; held-out songs left out for want of reference windows (every training "
            f"recording shorter than a quarter window): {len(shared) - n_known}"
        )
    markdown.write_text(_markdown(report, aug, train, heldout, title, notes, evaluation, crops))
    return report


def check_reportable(aug: Augmenter) -> None:
    """Raise, before any work, what :func:`quality_report` would raise about ``aug`` itself.

    Raises
    ------
    NotFittedError
        ``aug`` is not fitted, or its version model has no reference bank (a file of
        augmenter format 2, or one saved from it: refit it), so it cannot sample by song.
    """
    if not aug.steps_done:
        raise NotFittedError("this Augmenter is not fitted yet; call fit(dataset) or load one")
    if "versions" in aug.steps_done and aug.references_ is None:
        raise NotFittedError(NO_REFERENCE_BANK)


def _check_report_args(
    aug: Augmenter,
    heldout: CQTDataset,
    out_dir: str | os.PathLike[str],
    n_per_song: int,
    crops: int,
    max_songs: int | None,
) -> tuple[Path, int | None]:
    """:func:`quality_report`'s checks of its arguments: the report folder and ``max_songs``."""
    if n_per_song < 2 or crops < 1:
        raise ParameterError(f"need n_per_song >= 2 and crops >= 1, got {n_per_song}, {crops}")
    max_songs = check_count("max_songs", max_songs, 1, optional=True)
    if not any(s in aug.songs_ for s in heldout.index.ids):
        raise ParameterError("the held-out set shares no song with the augmenter")
    out = Path(out_dir).expanduser()
    for path in (out, out / "figures"):
        if path.exists() and not path.is_dir():
            raise ParameterError(f"{path} exists and is not a folder: the report needs one there")
    check_reportable(aug)
    return out, max_songs


def _songs_with_references(aug: Augmenter, songs: list[SongId]) -> list[SongId]:
    """``songs`` less those the version model (when fitted) has no reference windows of."""
    bank = aug.references_
    if "versions" not in aug.steps_done or bank is None:  # no bank: check_reportable refused
        return songs
    kept = [s for s in songs if s in bank]
    if not kept:
        raise DatasetError(
            f"none of the {len(songs)} held-out songs has reference windows (every training "
            "recording of each is shorter than a quarter window): the version model cannot "
            "sample them; see covergan.references"
        )
    if len(kept) < len(songs):
        missing = [s for s in songs if s not in bank]
        logger.warning(
            "held-out songs with no reference windows (every training recording shorter than "
            "a quarter window), not evaluated: %d of %d: %s",
            len(missing),
            len(songs),
            missing[:10],
        )
    return kept


def _evaluated_songs(
    train: CQTDataset,
    heldout: CQTDataset,
    songs: Sequence[SongId],
    max_songs: int | None,
    seed: int,
) -> tuple[list[SongId], CQTDataset, CQTDataset]:
    """The songs :func:`quality_report` evaluates and the recordings its real windows come
    from, under a cap of ``max_songs`` songs and :data:`MAX_REPORT_RECORDINGS` recordings
    per song (see there).

    Returns
    -------
    songs : list of str or int
        At most ``max_songs`` of ``songs``, in their order.
    train : CQTDataset
        Recordings of the evaluated songs and of the distractor songs (``train`` itself when
        that is all of it).
    heldout : CQTDataset
        Recordings of the evaluated songs (``heldout`` itself when that is all of it).
    """
    kept = list(songs)
    if max_songs is None:
        return kept, train, heldout
    rng = np.random.default_rng(seed)
    if len(kept) > max_songs:
        kept = [kept[i] for i in sorted(rng.choice(len(kept), max_songs, replace=False))]
    chosen = set(kept)
    others = [s for s in train.index.ids if s not in chosen]
    room = max(0, max_songs - len(chosen))
    if len(others) > room:
        others = [others[i] for i in sorted(rng.choice(len(others), room, replace=False))]
    held_songs = chosen if len(kept) < len(songs) else set(heldout.index.ids)
    return kept, _capped(train, chosen | set(others), rng), _capped(heldout, held_songs, rng)


def _capped(data: CQTDataset, songs: set[SongId], rng: np.random.Generator) -> CQTDataset:
    """The recordings of ``songs``, at most :data:`MAX_REPORT_RECORDINGS` of each (a seeded
    subset), in ``data``'s order; ``data`` itself when that is all of it."""
    by_song: dict[SongId, list[int]] = {}
    for i, song in enumerate(data.song_ids):
        if song in songs:
            by_song.setdefault(song, []).append(i)
    picks: list[int] = []
    for items in by_song.values():
        if len(items) > MAX_REPORT_RECORDINGS:
            items = [int(i) for i in rng.choice(items, MAX_REPORT_RECORDINGS, replace=False)]
        picks += items
    return data if len(picks) == len(data) else data.subset(sorted(picks))


def _figures(
    aug: Augmenter,
    fig_dir: Path,
    songs: list[SongId],
    real: torch.Tensor,
    real_songs: list[SongId],
    held: torch.Tensor,
    fake: torch.Tensor,
    fakes: dict[str, dict[SongId, torch.Tensor]],
    grid_songs: int,
    seed: int,
) -> dict[str, Path]:
    """The report's figures: the grid of the rarest songs (real, every model, classic
    augmentation), per-bin statistics and value histograms of held-out real against the
    default model's windows, and the training losses."""
    from covergan import plots

    counts = aug.songs_.class_counts()
    rarest = sorted(songs, key=lambda s: (counts[s], str(s)))[:grid_songs]
    real_by_song = {
        s: _distinct(real[[i for i, r in enumerate(real_songs) if r == s]]) for s in rarest
    }
    sources = _comparison(aug, real_by_song, fakes, seed)
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
    return paths


def _distinct(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x [shape=(n, ...)]`` without repeats, in order: every crop of a recording
    shorter than the window is the same padded window, which the grid shows once."""
    keep: list[int] = []
    for i in range(x.shape[0]):
        if not any(torch.equal(x[i], x[j]) for j in keep):
            keep.append(i)
    return x[keep]


def _label(name: str) -> str:
    """How the report names a synthesis model (its registry label)."""
    from covergan.synthesis import REGISTRY

    return REGISTRY[name].label if name in REGISTRY else name


def _artefacts(
    fakes: dict[str, dict[SongId, torch.Tensor]],
    songs: list[SongId],
    real: torch.Tensor,
    real_songs: list[SongId],
    held: torch.Tensor,
    seed: int,
) -> dict[str, ArtefactCheck]:
    """The artefact check of each model and of its controls, against the held-out range."""
    if held.shape[0] < MIN_REFERENCE_WINDOWS:
        return {}
    evaluated = set(songs)
    floor = rows_of(real, [i for i, s in enumerate(real_songs) if s in evaluated])
    checks = {
        name: artefact_check(held, torch.cat([by_song[s] for s in songs]), floor=floor)
        for name, by_song in fakes.items()
    }
    controls = {
        "comb in the 4 lowest bins": low_comb(held),
        "matched noise": matched_noise(held, seed),
        "shuffled bins": shuffle_bins(held, seed),
    }
    for name, x in controls.items():
        checks[f"control: {name}"] = artefact_check(held, x, floor=floor)
    return checks


def _comparison(
    aug: Augmenter,
    real_by_song: dict[SongId, torch.Tensor],
    fakes: dict[str, dict[SongId, torch.Tensor]],
    seed: int,
    n: int = 3,
) -> dict[str, dict[SongId, torch.Tensor]]:
    """Real windows of each song, beside every fitted model's samples and classic
    augmentation (a key roll of up to 6 semitones and a tempo change of 0.8-1.25, both
    always applied) of the real windows, in model space."""
    from covergan.augment.classic import Compose, SemitoneRoll, TempoChange

    songs = list(real_by_song)
    sources: dict[str, dict[SongId, torch.Tensor]] = {"real": real_by_song}
    for name, by_song in fakes.items():
        label = _label(name) + (" (default)" if name == aug.models[0] else "")
        sources[label] = {s: by_song[s][:n] for s in songs}
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


def _artefact_lines(report: QualityReport) -> list[str]:
    lines = [
        "## Spectral artefacts",
        "",
        "Per window and bin: the level, spread and flicker (mean frame-to-frame change) over "
        "time; a cell is out of range when no held-out real window has such a value. Rate: the "
        "share of out-of-range cells, beside the training windows' rate (the floor). A bin "
        "stands out when it is out of range in over a quarter of the windows and three times "
        "as often as in real ones; any such bin fails the check (covergan.artefacts). Each is "
        "named with the statistic and side it most often leaves the range on (under: below "
        "every held-out window; flicker under is a blur of the frame-to-frame detail, flicker "
        "over a comb or a flicker) and the largest share of windows that do so.",
        "",
    ]
    if not report.artefacts:
        return [*lines, "Too few held-out windows to set the ranges (need 10).", ""]
    lines += [
        "| | rate | floor | ratio | bins that stand out, and how | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, check in report.artefacts.items():
        label = name if name.startswith("control:") else _label(name)
        lines.append(
            f"| {label} | {check.rate:.3f} | {check.floor:.3f} | {_fmt(check.ratio)} | "
            f"{check.describe() or 'none'} | {'pass' if check.passed else 'FAIL'} |"
        )
    return [*lines, ""]


def _suite_table(report: QualityReport) -> str:
    """One row per model and negative control: each metric's ratio to its floor."""
    first = report.default
    head = ["| | " + " | ".join(m.name for m in first.metrics) + " | copies | verdict |"]
    head.append("|---|" + "---|" * (len(first.metrics) + 2))
    floors = " | ".join(_fmt(m.floor) for m in first.metrics)
    rows = [f"| held-out real (the floor) | {floors} | | |"]
    named = [(_label(n), s) for n, s in report.suites.items()]
    named += [(f"control: {n}", s) for n, s in report.controls.items()]
    for label, suite in named:
        cells = " | ".join(
            "n/a" if not m.informative else f"{_fmt(m.ratio)}x" + ("" if m.passed else " (fail)")
            for m in suite.metrics
        )
        verdict = "pass" if suite.passed else "FAIL"
        rows.append(f"| {label} | {cells} | {suite.copy_fraction:.0%} | {verdict} |")
    return "\n".join(head + rows)


def _markdown(
    report: QualityReport,
    aug: Augmenter,
    train: CQTDataset,
    heldout: CQTDataset,
    title: str,
    notes: Sequence[str],
    evaluation: str,
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
        f"- evaluation: {evaluation}; {crops} random "
        "windows per real recording; the suite in a CSI embedding (covergan.quality), "
        "`cqt-stats` features for the secondary numbers",
        "",
        "## Quality in a CSI embedding",
        "",
        "Each number is measured for the synthetic windows and for real windows of the same "
        "songs (the floor); the ratio is synthetic / floor. "
        "*identity*: share of windows whose nearest song (centroid of its training windows) "
        "is their own (floor: the held-out windows' share). *diversity*: mean pairwise "
        "distance of a song's synthetic windows (floor: mean distance between a held-out and "
        "a training window of the song, two recordings). *realism*: Frechet distance to the "
        "held-out windows (floor: the training windows'). "
        "*memorisation*: median distance to the nearest training window, and the share of "
        "windows closer to the training set than any held-out window (copies). The negative "
        "controls below must fail: if one passes, do not trust the suite on this data.",
        "",
        _suite_table(report),
        "",
        "Per model, in full:",
        "",
    ]
    for name, suite in report.suites.items():
        lines += [f"### {_label(name)}", "", suite.to_markdown(), ""]
    lines += _artefact_lines(report)
    lines += [
        "## Secondary: `cqt-stats` Frechet distance (blind to temporal order)",
        "",
        f"Of the default model ({_label(aug.models[0])}). `cqt-stats` summarises each bin "
        "over time, so windows with their frames permuted score close to real ones: read it "
        "for spectral envelope and level, not for music. Distance to the held-out recordings' "
        "windows, beside the floor: the distance of the training recordings' windows to the "
        "same held-out windows, at equal sample sizes.",
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
            "### Memorisation in CQT space",
            "",
            "Median distance to the nearest training window: synthetic "
            f"{_fmt(m.median_synthetic)}, held-out real {_fmt(m.median_heldout)}; "
            f"ratio {_fmt(m.ratio)} (about 1 or more: no copying; much less than 1: "
            "copies of the training set). "
            f"{m.copy_fraction:.1%} of synthetic windows are closer to a training window than "
            "any held-out window is.",
            "",
        ]
    lines += ["### Per song", "", report.per_song.to_markdown(), "", "## Figures", ""]
    captions = {
        "grid": "The rarest evaluated songs at one colour scale: real (training) windows, each "
        "fitted model's samples, and classic augmentation of the real windows",
        "bin_statistics": "Per-bin mean and spread, held-out real vs the default model",
        "histograms": "Value histograms per frequency band, held-out real vs the default model",
        "losses": "Training losses",
    }
    for name, path in report.figures.items():
        lines += [f"### {captions.get(name, name)}", "", f"![{name}](figures/{path.name})", ""]
    return "\n".join(lines)
