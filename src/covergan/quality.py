"""A quality suite that hears music: identity, diversity, realism and memorisation of
synthetic CQT windows in a cover-song identification (CSI) embedding, each beside its
real-data floor, and the negative controls it must reject.

``"cqt-stats"`` features are per-bin statistics over time, blind to temporal order: frames
permuted in time, bins shuffled in time or a song's windows collapsed to one all score near
the real-vs-real floor there. A CSI embedding (:func:`train_embedding`) is trained to tell
songs apart by what they play; :func:`evaluate_quality` measures in it, and
:func:`negative_controls` shows what it rejects. Windows are model-space CQT tensors
``[n, 1, n_bins, W]`` (values in ``[-1, 1]``, see :class:`covergan.cqt.CQTNormalizer`).
``docs/metrics.md`` explains the numbers and gives measured values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

from covergan._checks import check_count, is_int
from covergan.augment.classic import SemitoneRoll
from covergan.csi.model import CSINet, EmbeddingFeatures
from covergan.csi.train import train_csi
from covergan.data import CQTDataset
from covergan.errors import ParameterError
from covergan.metrics import (
    FloorComparison,
    MemorizationReport,
    extract_features,
    frechet_with_floor,
)
from covergan.metrics import memorization_check as _memorization_check

__all__ = [
    "DEFAULT_EMBEDDING_STEPS",
    "DIVERSITY_MIN_RATIO",
    "IDENTITY_MIN_FLOOR_OVER_CHANCE",
    "IDENTITY_MIN_RATIO",
    "KEY_SEMITONES",
    "MEMORIZATION_MAX_COPY_FRACTION",
    "MEMORIZATION_MIN_RATIO",
    "MIN_WINDOWS_PER_SONG",
    "REALISM_MAX_RATIO",
    "Embed",
    "MetricResult",
    "QualitySuite",
    "embed_windows",
    "evaluate_quality",
    "matched_noise",
    "negative_controls",
    "permute_frames",
    "shuffle_bins",
    "train_embedding",
]

Float64Array: TypeAlias = npt.NDArray[np.float64]
Int64Array: TypeAlias = npt.NDArray[np.int64]
#: An embedding: ``Tensor [shape=(b, 1, H, W)] -> Tensor [shape=(b, d)]``.
Embed: TypeAlias = Callable[[torch.Tensor], torch.Tensor]
Seed: TypeAlias = "int | torch.Generator"

#: Optimiser steps of :func:`train_embedding` (batches of 32 windows).
DEFAULT_EMBEDDING_STEPS = 1000
#: Largest key change, in semitones, of :func:`train_embedding`'s ``augment="key"``.
KEY_SEMITONES = 6
#: Identity passes when ``rate / floor`` is at least this (the target of issue 18).
IDENTITY_MIN_RATIO = 0.8
#: Identity is informative only when its floor is at least this many times chance.
IDENTITY_MIN_FLOOR_OVER_CHANCE = 2.0
#: Diversity passes when ``spread / floor`` is at least this (the target of issue 18).
DIVERSITY_MIN_RATIO = 0.8
#: A song's mean pairwise cosine distance at or below this is float rounding of identical
#: windows, and counts as 0.
SPREAD_ROUNDING = 1e-9
#: Realism passes when ``frechet / floor`` is at most this.
REALISM_MAX_RATIO = 1.5
#: Memorisation passes when the median nearest-training distance over its floor is at
#: least this ...
MEMORIZATION_MIN_RATIO = 0.5
#: ... and at most this share of synthetic windows is nearer to the training set than every
#: held-out window.
MEMORIZATION_MAX_COPY_FRACTION = 0.1
#: Synthetic windows every evaluated song needs (a spread needs pairs).
MIN_WINDOWS_PER_SONG = 2


@dataclass(frozen=True)
class MetricResult:
    """One headline number beside its real-data floor.

    Attributes
    ----------
    name : str
    value, floor : float
        The number for the synthetic windows, and for real windows measured the same way.
    passed : bool
        Whether it meets :attr:`rule`, e.g. ``"ratio >= 0.8"``.
    rule : str
    informative : bool
        False when the floor shows the number cannot judge (identity with a floor near
        chance); :attr:`passed` is then False and :attr:`verdict` ``"n/a"``.
    """

    name: str
    value: float
    floor: float
    passed: bool
    rule: str
    informative: bool = True

    @property
    def ratio(self) -> float:
        """``value / floor``: 1 is "like real data"."""
        return _ratio(self.value, self.floor)

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"FAIL"`` or ``"n/a"``."""
        if not self.informative:
            return "n/a"
        return "pass" if self.passed else "FAIL"


@dataclass(frozen=True, eq=False)
class QualitySuite:
    """What :func:`evaluate_quality` measured.

    Attributes
    ----------
    identity, diversity, realism, memorization : MetricResult
        The headline numbers (thresholds: the module constants).
    frechet : FloorComparison
        The realism comparison in full (sample sizes included).
    memorization_report : MemorizationReport
        Nearest-training distances of every synthetic and held-out window.
    n_songs, n_synthetic : int
        Songs and synthetic windows evaluated.
    chance : float
        Identity rate of a guess, ``1 / (number of training songs)``.
    """

    identity: MetricResult
    diversity: MetricResult
    realism: MetricResult
    memorization: MetricResult
    frechet: FloorComparison
    memorization_report: MemorizationReport
    n_songs: int
    n_synthetic: int
    chance: float

    @property
    def metrics(self) -> tuple[MetricResult, ...]:
        """The four headline numbers, in table order."""
        return (self.identity, self.diversity, self.realism, self.memorization)

    @property
    def passed(self) -> bool:
        """Whether every informative headline number passes (an identity whose floor is near
        chance, ``"n/a"``, neither passes nor fails the suite)."""
        return all(m.passed for m in self.metrics if m.informative)

    @property
    def copy_fraction(self) -> float:
        """Share of synthetic windows nearer to the training set than every held-out one."""
        return self.memorization_report.copy_fraction

    def to_markdown(self, *, digits: int = 3) -> str:
        """A table ``metric | synthetic | real floor | ratio | verdict``."""
        lines = ["| metric | synthetic | real floor | ratio | verdict |", "|---|---|---|---|---|"]
        for m in self.metrics:
            lines.append(
                f"| {m.name} | {_fmt(m.value, digits)} | {_fmt(m.floor, digits)} | "
                f"{_fmt(m.ratio, digits)} | {m.verdict} ({m.rule}) |"
            )
        return "\n".join(lines)


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}g}" if np.isfinite(x) else "n/a"


def _ratio(num: float, den: float) -> float:
    if den > 0.0:
        return num / den
    return 1.0 if num == 0.0 else float("inf")


def train_embedding(
    train: CQTDataset,
    *,
    window: int,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    steps: int = DEFAULT_EMBEDDING_STEPS,
    seed: int = 0,
    progress: bool = False,
    device: str = "cpu",
    batch_size: int = 32,
    augment: Callable[[torch.Tensor], torch.Tensor] | Literal["key"] | None = "key",
    **model_overrides: Any,
) -> EmbeddingFeatures:
    """Train the reference CSI model on real training windows; return its embedding.

    A :class:`~covergan.csi.CSINet` with ``train.n_songs`` classes is trained by
    :func:`~covergan.csi.train_csi` as a song classifier on seeded random ``window``-frame
    crops of the training recordings (new crops every epoch); deterministic on the CPU.
    Measured on 2 CPU cores: the default 1000 steps took 26-31 s on 150 toy-cover recordings
    of 50 songs (84 x 60 windows) and 55 s on the chorale demo data (172 recordings of 68
    works, 84 x 116 windows). On the toy covers 300-600 steps reached much the same held-out
    identity (0.19-0.34 over seeds, chance 0.02) and 2000 no better; 1000 leaves room for
    larger sets.

    Parameters
    ----------
    train : CQTDataset
        Real training recordings of at least 2 songs.
    window : int
        Frames per window: the ``W`` of the windows the suite will embed.
    transform : callable, optional
        Crop ``[1, n_bins, window]`` -> model space, e.g. the fitted
        :class:`~covergan.cqt.CQTNormalizer`; None when the features are model space already.
    steps : int
        Optimiser steps.
    seed : int
        Seeds weights, crops, batch order, augmentation and dropout.
    progress, device, batch_size
        As in :class:`~covergan.csi.CSITrainConfig` (a progress bar, ``"cpu"``/``"cuda"``/
        ``"auto"``, windows per step).
    augment : "key", callable or None
        Batch augmentation in model space (see :func:`~covergan.csi.train_csi`).
        ``"key"``: :class:`~covergan.augment.classic.SemitoneRoll` by up to
        :data:`KEY_SEMITONES` semitones on 80 % of the windows (``bins_per_semitone`` from
        ``train.config``, else 1), the usual CSI recipe; on the toy covers it raised the
        held-out identity rate from 0.25 to 0.33 at 1000 steps.
    **model_overrides
        :class:`~covergan.csi.CSIConfig` fields other than ``n_classes`` and ``n_bins``,
        e.g. ``channels=(16, 32, 64)`` for a smaller model.

    Returns
    -------
    EmbeddingFeatures
        An ``nn.Module`` in eval mode, ``Tensor [shape=(n, 1, n_bins, W)] -> [shape=(n, D)]``
        with unit-norm rows, run without gradients.

    Raises
    ------
    ParameterError
        Fewer than 2 songs, an unknown ``augment``, or bad settings of the model or loop.
    """
    if train.n_songs < 2:
        raise ParameterError(
            f"train has {train.n_songs} song(s); a CSI embedding needs at least 2 to tell apart"
        )
    if augment == "key":
        per_semitone = train.config.bins_per_semitone if train.config is not None else 1
        augment = SemitoneRoll(KEY_SEMITONES, bins_per_semitone=per_semitone, p=0.8)
    elif augment is not None and not callable(augment):
        raise ParameterError(f"augment={augment!r} must be 'key', a callable or None")
    view = train.windows(window, crop="random", seed=seed, transform=transform)
    model = CSINet(n_classes=train.n_songs, n_bins=train.n_bins, seed=seed, **model_overrides)
    train_csi(
        model,
        view,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=progress,
        log_every=0,
        augment=augment,
    )
    return EmbeddingFeatures(model).eval()


def embed_windows(embed: Embed, x: torch.Tensor, *, batch_size: int = 64) -> Float64Array:
    """Embed model-space windows, checking what ``embed`` returns.

    Parameters
    ----------
    embed : nn.Module or callable
        ``Tensor [shape=(b, 1, H, W)] -> Tensor [shape=(b, d)]``. A module runs in eval mode
        on the device of its parameters, and gets its training mode back afterwards.
    x : torch.Tensor [shape=(n, 1, H, W)]
        Finite model-space windows.
    batch_size : int
        Windows per call, without gradients.

    Returns
    -------
    np.ndarray [shape=(n, d)], float64

    Raises
    ------
    ParameterError
        ``x`` is not a finite ``(n, 1, H, W)`` tensor, or ``embed`` returns anything but a
        finite ``(b, d)`` tensor for a batch of ``b`` (the message names what it got).
    """
    return extract_features(_windows(x, "x").float(), embed, batch_size=batch_size)


def evaluate_quality(
    embed: Embed,
    train: torch.Tensor,
    train_songs: Sequence[Hashable],
    heldout: torch.Tensor,
    heldout_songs: Sequence[Hashable],
    synthetic: torch.Tensor,
    synthetic_songs: Sequence[Hashable],
    *,
    seed: int = 0,
    batch_size: int = 64,
) -> QualitySuite:
    """Identity, diversity, realism and memorisation of synthetic windows, beside floors.

    The songs evaluated are those of the synthetic set; each needs training windows,
    held-out windows and :data:`MIN_WINDOWS_PER_SONG` synthetic windows. Embeddings are
    L2-normalised first (CSI retrieval compares cosines).

    - **identity**: share of windows whose most similar song centroid (renormalised mean
      of the song's training embeddings, over all training songs) is their own song; a
      nearest-window rule would credit any near-copy of one training window. Floor: the
      held-out windows' share; ``"n/a"`` below :data:`IDENTITY_MIN_FLOOR_OVER_CHANCE` x
      chance.
    - **diversity**: mean cosine distance over pairs of a song's synthetic windows; floor:
      over pairs (held-out, training window) of the song, always two recordings, so it
      measures how far apart real versions are however many crops a recording gave. Both
      are unbiased at any sample size (no subsets); each is averaged over songs.
    - **realism**: :func:`~covergan.metrics.frechet_with_floor` (held-out reference,
      training floor, equal-size seeded subsets, Ledoit-Wolf shrinkage).
    - **memorisation**: :func:`~covergan.metrics.memorization_check`: median nearest-
      training distance, synthetic over held-out, and the share of copies.

    Parameters
    ----------
    embed : nn.Module or callable
        ``Tensor [shape=(b, 1, H, W)] -> Tensor [shape=(b, d)]``, e.g. :func:`train_embedding`.
    train : torch.Tensor [shape=(n_t, 1, H, W)]
        Real windows of the recordings the generator and the embedding were trained on.
    train_songs : sequence of hashable [shape=(n_t,)]
    heldout : torch.Tensor [shape=(n_h, 1, H, W)]
        Real windows of other recordings of (some of) the same songs.
    heldout_songs : sequence of hashable [shape=(n_h,)]
    synthetic : torch.Tensor [shape=(n_s, 1, H, W)]
    synthetic_songs : sequence of hashable [shape=(n_s,)]
    seed : int
        Seeds the subsets of the realism comparison.
    batch_size : int
        Windows per call of ``embed``.

    Returns
    -------
    QualitySuite

    Raises
    ------
    ParameterError
        NaN/inf or badly shaped windows, label counts that differ from window counts, a
        synthetic song without training or held-out windows or with fewer than
        :data:`MIN_WINDOWS_PER_SONG` synthetic ones, or a bad ``embed`` output.
    """
    seed = check_count("seed", seed, 0)
    sets = {
        "train": _labelled(train, train_songs, "train"),
        "heldout": _labelled(heldout, heldout_songs, "heldout"),
        "synthetic": _labelled(synthetic, synthetic_songs, "synthetic"),
    }
    shapes = {name: tuple(x.shape[1:]) for name, (x, _) in sets.items()}
    if len(set(shapes.values())) > 1:
        raise ParameterError(f"windows differ in shape (1, H, W) between sets: {shapes}")
    _check_coverage({name: songs for name, (_, songs) in sets.items()})
    emb = {
        name: _unit(embed_windows(embed, x, batch_size=batch_size)) for name, (x, _) in sets.items()
    }
    return _suite(emb, {name: songs for name, (_, songs) in sets.items()}, seed)


def _suite(
    emb: dict[str, Float64Array], labels: dict[str, list[Hashable]], seed: int
) -> QualitySuite:
    dims = {name: e.shape[1] for name, e in emb.items()}
    if len(set(dims.values())) > 1:
        raise ParameterError(f"embed returned different dimensions for the sets: {dims}")
    codes: dict[Hashable, int] = {}
    song: dict[str, Int64Array] = {
        name: np.asarray([codes.setdefault(s, len(codes)) for s in v], dtype=np.int64)
        for name, v in labels.items()
    }
    keys = np.unique(song["synthetic"])
    held_mask = np.isin(song["heldout"], keys)
    train_keys = np.unique(song["train"])
    chance = 1.0 / len(train_keys)

    centroids = _unit(np.stack([emb["train"][song["train"] == k].mean(0) for k in train_keys]))
    rate = _identity_rate(emb["synthetic"], song["synthetic"], centroids, train_keys)
    floor = _identity_rate(
        emb["heldout"][held_mask], song["heldout"][held_mask], centroids, train_keys
    )
    identity = _result("identity", rate, floor, low=IDENTITY_MIN_RATIO)
    if floor < IDENTITY_MIN_FLOOR_OVER_CHANCE * chance:
        rule = f"floor < {IDENTITY_MIN_FLOOR_OVER_CHANCE:g} x chance: embedding too weak"
        identity = MetricResult("identity", rate, floor, False, rule, informative=False)

    spread, real_spread = [], []
    for k in keys:
        fs = emb["synthetic"][song["synthetic"] == k]
        n = fs.shape[0]
        pairs = float((n * n - (fs @ fs.T).sum()) / (n * (n - 1)))
        spread.append(pairs if pairs > SPREAD_ROUNDING else 0.0)  # identical: 0, not 1e-16
        fh, ft = emb["heldout"][song["heldout"] == k], emb["train"][song["train"] == k]
        real_spread.append(float(1.0 - (fh @ ft.T).mean()))
    diversity = _result(
        "diversity", float(np.mean(spread)), float(np.mean(real_spread)), low=DIVERSITY_MIN_RATIO
    )

    frechet = frechet_with_floor(
        emb["train"][np.isin(song["train"], keys)],
        emb["synthetic"],
        heldout=emb["heldout"][held_mask],
        shrinkage="ledoit-wolf",
        seed=seed,
    )
    realism = _result("realism", frechet.distance, frechet.floor, high=REALISM_MAX_RATIO)

    memo = _memorization_check(emb["synthetic"], emb["train"], emb["heldout"][held_mask])
    memorization = MetricResult(
        "memorisation",
        memo.median_synthetic,
        memo.median_heldout,
        memo.ratio >= MEMORIZATION_MIN_RATIO
        and memo.copy_fraction <= MEMORIZATION_MAX_COPY_FRACTION,
        f"ratio >= {MEMORIZATION_MIN_RATIO:g}, copies <= {MEMORIZATION_MAX_COPY_FRACTION:g}",
    )
    n_synthetic = int(emb["synthetic"].shape[0])
    metrics = (identity, diversity, realism, memorization)
    return QualitySuite(*metrics, frechet, memo, len(keys), n_synthetic, chance)


def _paired_rows(songs: Sequence[Hashable], rows: Iterable[int]) -> list[int]:
    """``rows`` in order, those of a song with fewer than :data:`MIN_WINDOWS_PER_SONG` of
    them repeated until it has that many: a stand-in set needs pairs of every song (one
    held-out recording cropped once still gets its scrambles, two of them)."""
    rows = list(rows)
    counts = Counter(songs[i] for i in rows)
    return [i for i in rows for _ in range(-(-MIN_WINDOWS_PER_SONG // counts[songs[i]]))]


def rows_of(x: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """``x[rows]``; ``x`` itself, not a copy, when ``rows`` are all of its rows in order
    (windows are the report's largest arrays)."""
    return x if list(rows) == list(range(x.shape[0])) else x[list(rows)]


def _labelled(
    x: torch.Tensor, songs: Sequence[Hashable], name: str
) -> tuple[torch.Tensor, list[Hashable]]:
    t = _windows(x, name)
    labels = list(songs)
    if len(labels) != t.shape[0]:
        raise ParameterError(
            f"{name} has {t.shape[0]} windows but {name}_songs has {len(labels)} labels"
        )
    return t, labels


def _check_coverage(labels: dict[str, list[Hashable]]) -> None:
    """Every synthetic song has training and held-out windows, and synthetic pairs."""
    counts = {name: Counter(v) for name, v in labels.items()}
    for name, need, why in (
        ("train", 1, "identity and diversity compare with the song's training windows"),
        ("heldout", 1, "every floor is measured on the song's held-out windows"),
        ("synthetic", MIN_WINDOWS_PER_SONG, "a within-song spread needs pairs"),
    ):
        few = {s: counts[name][s] for s in counts["synthetic"] if counts[name][s] < need}
        if few:
            shown = dict(list(few.items())[:5])
            raise ParameterError(
                f"{len(few)} synthetic song(s) have fewer than {need} {name} window(s) "
                f"(song: count, first 5: {shown!r}); {why}"
            )


def _windows(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ParameterError(f"{name} must be a torch.Tensor (n, 1, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 1 or min(x.shape) < 1:
        raise ParameterError(
            f"{name} must be model-space windows (n, 1, H, W) with n >= 1, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ParameterError(f"{name} must be a floating-point tensor, got {x.dtype}")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise ParameterError(
            f"{name} contains NaN or inf values ({int(bad.sum())} of {x.numel()} entries)"
        )
    return x.detach()


def _unit(z: Float64Array) -> Float64Array:
    out: Float64Array = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return out


def _identity_rate(
    z: Float64Array, songs: Int64Array, centroids: Float64Array, keys: Int64Array
) -> float:
    """Share of rows whose most similar centroid (cosine) is their own song's."""
    return float(np.mean(keys[np.argmax(z @ centroids.T, axis=1)] == songs))


def _result(
    name: str, value: float, floor: float, *, low: float | None = None, high: float | None = None
) -> MetricResult:
    ratio = _ratio(value, floor)
    ok = (low is None or ratio >= low) and (high is None or ratio <= high)
    rule = f"ratio >= {low:g}" if low is not None else f"ratio <= {high:g}"
    return MetricResult(name, float(value), float(floor), bool(ok), rule)


def _generator(seed: Seed) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if not is_int(seed) or seed < 0:
        raise ParameterError(f"seed={seed!r} must be a non-negative int or a torch.Generator")
    return torch.Generator().manual_seed(int(seed))


def permute_frames(x: torch.Tensor, seed: Seed = 0) -> torch.Tensor:
    """Permute each window's frames in time, with one permutation for all its bins.

    Every frame's spectrum (chords, timbre, loudness) survives; their order (melody,
    rhythm, progressions) does not. ``x`` : torch.Tensor [shape=(n, 1, H, W)] in, the same
    shape out; ``seed`` : int or torch.Generator.
    """
    t, gen = _windows(x, "x"), _generator(seed)
    order = torch.argsort(torch.rand(t.shape[0], 1, 1, t.shape[3], generator=gen), dim=-1)
    return torch.gather(t, -1, order.to(t.device).expand_as(t))


def shuffle_bins(x: torch.Tensor, seed: Seed = 0) -> torch.Tensor:
    """Shuffle every bin's time series on its own (per window and bin).

    Each bin keeps its values (so every statistic of their distribution); the spectra of
    frames are destroyed as well as their order. ``x`` : torch.Tensor [shape=(n, 1, H, W)]
    in, the same shape out; ``seed`` : int or torch.Generator.
    """
    t, gen = _windows(x, "x"), _generator(seed)
    order = torch.argsort(torch.rand(tuple(t.shape), generator=gen), dim=-1)
    return torch.gather(t, -1, order.to(t.device))


def matched_noise(x: torch.Tensor, seed: Seed = 0) -> torch.Tensor:
    """Gaussian noise with each bin's mean and standard deviation over ``x``, clipped.

    ``x`` : torch.Tensor [shape=(n, 1, H, W)], real model-space windows (statistics per bin
    over all windows and frames); returns independent values of the same shape, clipped to
    ``[-1, 1]``; ``seed`` : int or torch.Generator.
    """
    t, gen = _windows(x, "x"), _generator(seed)
    mean = t.mean(dim=(0, 1, 3), keepdim=True)
    std = t.std(dim=(0, 1, 3), keepdim=True) if t.shape[0] * t.shape[3] > 1 else 0 * mean
    noise = torch.randn(tuple(t.shape), generator=gen, dtype=t.dtype).to(t.device)
    return (mean + std * noise).clamp(-1.0, 1.0)


def negative_controls(
    embed: Embed,
    train: torch.Tensor,
    train_songs: Sequence[Hashable],
    heldout: torch.Tensor,
    heldout_songs: Sequence[Hashable],
    *,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, QualitySuite]:
    """The suite for stand-ins a good metric must reject, in place of synthetic windows.

    - ``"permuted frames"``, ``"shuffled bins"``, ``"matched noise"``:
      :func:`permute_frames`, :func:`shuffle_bins`, :func:`matched_noise` of the held-out
      windows (seeded), labelled by their songs; identity and realism must reject them;
    - ``"collapsed"``: each song's first held-out window, repeated as often as the song has
      held-out windows; diversity must reject it;
    - ``"copies"``: the training windows of the held-out songs; memorisation must flag them.

    Parameters
    ----------
    embed, train, train_songs, heldout, heldout_songs, seed, batch_size
        As in :func:`evaluate_quality`. Every held-out song is evaluated, so each needs
        training windows; a song with a single held-out (or training) window has it twice
        in the stand-ins made from those windows, as a spread needs pairs.

    Returns
    -------
    dict of str to QualitySuite
        In the order above.
    """
    t, t_songs = _labelled(train, train_songs, "train")
    h, h_songs = _labelled(heldout, heldout_songs, "heldout")
    first = {s: i for i, s in reversed(list(enumerate(h_songs)))}
    rows = _paired_rows(h_songs, range(len(h_songs)))
    hp, hp_songs = rows_of(h, rows), [h_songs[i] for i in rows]
    keep = _paired_rows(t_songs, (i for i, s in enumerate(t_songs) if s in first))
    controls = {
        "permuted frames": (permute_frames(hp, seed), hp_songs),
        "shuffled bins": (shuffle_bins(hp, seed), hp_songs),
        "matched noise": (matched_noise(hp, seed), hp_songs),
        "collapsed": (h[[first[s] for s in hp_songs]], hp_songs),
        "copies": (rows_of(t, keep), [t_songs[i] for i in keep]),
    }
    for _, songs in controls.values():
        _check_coverage({"train": t_songs, "heldout": h_songs, "synthetic": songs})
    real = {
        "train": _unit(embed_windows(embed, t, batch_size=batch_size)),
        "heldout": _unit(embed_windows(embed, h, batch_size=batch_size)),
    }
    return {
        name: _suite(
            {**real, "synthetic": _unit(embed_windows(embed, x, batch_size=batch_size))},
            {"train": t_songs, "heldout": h_songs, "synthetic": songs},
            seed,
        )
        for name, (x, songs) in controls.items()
    }
