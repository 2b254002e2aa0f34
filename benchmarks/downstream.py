"""Downstream benchmark: does covergan augmentation make a CSI model better?

Protocol (see ``docs/benchmarks.md``, section "Downstream: CSI with covergan augmentation"):

1. **Split by work.** Works with two or more recordings: ``--heldout-works`` of them (30%)
   are held out for retrieval (unseen songs, the real CSI setting); works with a single
   recording are never trained on and join the retrieval collection as distractors.
2. **Long tail.** Of the remaining training works, ``--minority`` of them (half) become
   *minority songs*: they keep 1 or 2 recordings for training and one of their removed
   recordings is held out (the seen-minority accuracy test). The other works keep all
   their recordings.
3. **Conditions**, all from the same initial weights and batch order per seed:
   (a) ``none``: real windows only; (b) ``classic``: key, tempo and time-mask augmentation;
   (c) ``gan``: real + covergan samples for the songs under ``--target``
   (``Augmenter.plan``); (d) ``classic+gan``: both; and, for section 4, (c) and (d) with
   the synthetic samples filtered by a real-data classifier (``gan-filt``,
   ``classic+gan-filt``; :func:`covergan.filtering.filter_synthetic`); (e) ``versions``
   and ``classic+versions``: real + synthetic *versions* of the same songs' own recordings
   from the reference-conditioned :class:`covergan.versions.VersionGAN` (trained once per
   seed on the pairs of recordings of the training works), same plan as (c). With
   ``--synthetic-mode replace`` the planned samples are not extra items: a planned song's
   real item is swapped for one of them with probability ``--replace-p``, so every song keeps
   its share of the batches. Opt-in controls ``copies`` and ``classic+copies``: the planned
   items are crops of the song's own recordings (oversampling when added, a swap that brings
   no new information when swapped in); with them, the paired table also compares (c) and
   (e) to the control.
4. **Metrics**: MAP, P@10 and MR1 of retrieval over held-out works (+ distractors), full
   tracks; accuracy on the held-out recordings of seen minority songs; and the
   classification accuracy score (CAS): a CSI classifier trained only on synthetic samples
   of every training song, tested on those held-out real recordings, beside (a) trained on
   real data. For (e), the two collapse checks of the version model on the held-out works
   (which neither GAN saw; :func:`covergan.versions.check_versions` with the (b) model):
   distance of a synthetic version to its reference against real versions and other works,
   and how well a synthetic version retrieves its reference's work.

The GAN is trained once per seed on the training side (the dominant cost); tasks run in
``--jobs`` worker processes (one torch thread each) in dependency order. Each task's result is
cached in ``--workdir`` under a hash of everything it depends on, so changing only CSI-side
settings (ratio, weight, filter) reuses the trained GANs.

Usage::

    python benchmarks/downstream.py                       # full: 3 seeds, <= 45 min, 2 cores
    python benchmarks/downstream.py --quick               # same protocol, fewer steps, <= 5 min
    python benchmarks/downstream.py --data DIR            # a folder dataset root/<song>/<rec>
    python benchmarks/downstream.py --data toy300 --window 48 --csi-steps 3000 --version-augment 0.2
    python benchmarks/downstream.py --data data.pt --device cuda --jobs 14   # GPU; a saved dataset
    python benchmarks/downstream.py --out results.json --plot downstream.png
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from covergan.augment.classic import Compose, Transform, csi_augment
from covergan.balancing import Target
from covergan.cqt import random_crop
from covergan.csi import (
    CSINet,
    classification_accuracy,
    embed_dataset,
    retrieval_metrics,
    train_csi,
)
from covergan.data import CQTDataset, SongId
from covergan.filtering import filter_by_discriminator, filter_synthetic
from covergan.gan import GANConfig
from covergan.sampling import AugmentedDataset
from covergan.versions import (
    VersionAugment,
    VersionConfig,
    VersionGAN,
    check_versions,
    sample_versions,
)

#: Conditions in table order: name -> (classic augmentation, GAN samples, filter)
CONDITIONS: dict[str, tuple[bool, bool, str | None]] = {
    "none": (False, False, None),
    "classic": (True, False, None),
    "gan": (False, True, None),
    "classic+gan": (True, True, None),
    "gan-filt": (False, True, "classifier"),
    "classic+gan-filt": (True, True, "classifier"),
    "versions": (False, False, None),
    "classic+versions": (True, False, None),
    "copies": (False, False, None),
    "classic+copies": (True, False, None),
}
#: Conditions whose synthetic samples come from the version model, not the class GAN.
VERSION_CONDITIONS = ("versions", "classic+versions")
#: Controls: the planned items are crops of the song's own real recordings (oversampling).
COPY_CONDITIONS = ("copies", "classic+copies")
#: What a run measures unless ``--conditions`` says otherwise: the library's default (the
#: version model) with and without classic augmentation, its baselines, and the class GAN
#: (``classic+gan``, the filtered variants and the copies controls are opt-in).
DEFAULT_CONDITIONS = ("none", "classic", "versions", "classic+versions", "gan")
LABELS = {
    "none": "(a) none",
    "classic": "(b) classic",
    "gan": "(c) GAN",
    "classic+gan": "(d) classic + GAN",
    "gan-filt": "(c') GAN, filtered",
    "classic+gan-filt": "(d') classic + GAN, filtered",
    "versions": "(e) versions",
    "classic+versions": "(e+b) classic + versions",
    "copies": "(o) real copies",
    "classic+copies": "(o+b) classic + real copies",
}
#: Retrieval and seen-minority metrics of every condition.
METRICS = ("map", "p_at_10", "mr1", "acc_minority", "top5_minority")
#: The classification accuracy score pair.
CAS_METRICS = ("cas_synthetic", "cas_real", "cas_synthetic_top5", "cas_real_top5")
#: The version model's collapse checks (covergan.versions.VersionCheck fields).
CHECK_METRICS = (
    "distance_copy",
    "distance_version",
    "distance_synthetic",
    "distance_other_work",
    "distance_between_samples",
    "map_synthetic",
    "top1_synthetic",
    "map_real",
    "top1_real",
    "map_chance",
)

_DATA: CQTDataset | None = None  # the dataset of this (worker) process


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Every knob of the protocol (the JSON output stores them)."""

    data: str = "chorales"
    seeds: tuple[int, ...] = (0, 1, 2)
    window: int = 100
    heldout_works: float = 0.3
    minority: float = 0.5
    minority_keep: tuple[int, ...] = (1, 2)
    singles: str = "distractors"
    # GAN (covergan Augmenter)
    gan_steps: int = 800
    gan: tuple[tuple[str, Any], ...] = ()
    # synthetic samples
    target: str = "max"
    max_ratio: float | None = 4.0
    truncation: float | None = None
    synthetic_weight: float = 1.0
    synthetic_draws: int = 1
    synthetic_mode: str = "add"
    replace_p: float = 0.5
    filter_by: str = "classifier"
    filter_oversample: int = 3
    filter_top_k: int | None = 1
    filter_threshold: float | None = None
    cas_per_song: int = 16
    # version model (covergan.versions), condition (e)
    version_steps: int = 800
    versions: tuple[tuple[str, Any], ...] = ()
    version_truncation: float | None = None
    version_augment: float | None = None
    check_per_reference: int = 4
    # CSI model and training
    csi_steps: int = 300
    csi_batch: int = 32
    csi_lr: float = 2e-3
    csi_channels: tuple[int, ...] = (24, 48, 96, 192)
    equal_real: bool = False
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    # where the GANs, version models and CSI models train; evaluation runs on the CPU
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["gan"] = dict(self.gan)
        d["versions"] = dict(self.versions)
        return d

    def key(self, *fields: str, extra: Mapping[str, Any] | None = None) -> str:
        """Hash of the named fields (and ``extra``): the cache key of a task.

        Fields added after the first published run count only when they differ from their
        default, so older cached results stay valid. ``gan`` counts as the whole resolved
        ``GANConfig`` of the default preset and ``versions`` as the whole resolved
        ``VersionConfig`` (its window and bins are set from the data at training time), so a
        change of a library default invalidates the models trained under the old one.
        """
        d = self.as_dict()
        defaults = Settings().as_dict()
        payload = {f: d[f] for f in fields if f not in _LATE_FIELDS or d[f] != defaults[f]}
        if "gan" in payload:
            payload["gan"] = GANConfig.for_preset("default", **d["gan"]).to_dict()
        if "versions" in payload:
            payload["versions"] = VersionConfig(**d["versions"]).to_dict()
        payload.update(extra or {})
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


QUICK = {
    "gan_steps": 100,
    "version_steps": 100,
    "csi_steps": 60,
    "csi_channels": (16, 32, 64, 128),
    "cas_per_song": 8,
}

_SPLIT_FIELDS = ("data", "heldout_works", "minority", "minority_keep", "singles", "window")
_CSI_FIELDS = ("csi_steps", "csi_batch", "csi_lr", "csi_channels", "device")
_GAN_FIELDS = ("gan_steps", "gan", "device")
_VERSION_FIELDS = ("version_steps", "versions", "device")
_VERSION_SAMPLE_FIELDS = ("version_truncation",)
_SYNTH_FIELDS = (
    "target", "max_ratio", "truncation", "synthetic_weight", "synthetic_draws",
    "synthetic_mode", "replace_p",
)  # fmt: skip
_LATE_FIELDS = frozenset(
    {
        "synthetic_draws", "version_truncation", "equal_real", "version_augment", "device",
        "synthetic_mode", "replace_p",
    }
)  # fmt: skip
#: How synthetic samples enter the CSI training set (``--synthetic-mode``).
SYNTHETIC_MODES = ("add", "replace")
_FILTER_FIELDS = ("filter_by", "filter_oversample", "filter_top_k", "filter_threshold")


# --------------------------------------------------------------------------------------
# Data and split
# --------------------------------------------------------------------------------------


#: Corpora the benchmark renders itself (``toy_covers`` arguments), built once per work folder.
GENERATED: dict[str, dict[str, Any]] = {
    "toy": {"n_songs": 40, "versions": 8, "seed": 0, "long_tail": True, "duration": 45.0},
    "toy300": {"n_songs": 300, "versions": 5, "seed": 0, "duration": 30.0},
}


def load_dataset(spec: str) -> CQTDataset:
    """The benchmark's dataset.

    Parameters
    ----------
    spec : str
        ``"chorales"`` (Bach chorale covers with singles, render seed 0, from the cache),
        ``"toy"`` (40 toy songs, long-tailed; needs a CQT extraction), ``"toy300"`` (300
        toy works of 5 versions, 30 s each: the corpus of docs/benchmarks.md, "A larger
        corpus"; about 4 minutes to render and extract; both in :data:`GENERATED`, see
        :func:`prepare_data`), a file written by :meth:`CQTDataset.save` (``.pt``: no audio
        stack needed, e.g. on a GPU machine) or a folder
        ``root/<song_id>/<recording>.{wav,flac,ogg,mp3,npy}``.

    Returns
    -------
    CQTDataset
    """
    if spec == "chorales":
        from covergan.datasets import chorale_covers

        return chorale_covers(include_singles=True, seed=0, progress=False, n_jobs=1)
    if spec in GENERATED:
        from covergan.datasets import toy_covers

        return toy_covers(**GENERATED[spec]).to_dataset()
    if Path(spec).is_file():
        return CQTDataset.load(spec)
    return CQTDataset.from_folder(spec, progress=False)


def prepare_data(spec: str, workdir: str | Path) -> str:
    """The dataset spec the workers load: a generated corpus is built once, into ``workdir``.

    A :data:`GENERATED` corpus (``"toy"``, ``"toy300"``) is rendered on the first run and
    saved as ``workdir/<spec>.pt`` (:meth:`CQTDataset.save`); later runs, and every worker
    process, read that file instead of rendering it again. Any other spec is returned unchanged.
    """
    if spec not in GENERATED:
        return spec
    path = Path(workdir) / f"{spec}.pt"
    if not path.is_file():
        _log(f"rendering the {spec} corpus once into {path}")
        load_dataset(spec).save(path)
    return str(path)


@dataclass
class Split:
    """One seed's split of the dataset."""

    train: CQTDataset
    retrieval: CQTDataset
    minority_test: CQTDataset
    minority_songs: list[SongId]
    summary: dict[str, Any] = field(default_factory=dict)


def make_split(data: CQTDataset, seed: int, s: Settings) -> Split:
    """Split by work, then make the training side long-tailed (see the module docstring).

    Raises
    ------
    ValueError
        Too few multi-recording works to hold some out and keep at least two for training.
    """
    counts = data.class_counts()
    multi = [song for song, c in counts.items() if c >= 2]
    singles = [song for song, c in counts.items() if c < 2]
    if len(multi) < 4:
        raise ValueError(f"need at least 4 works with 2+ recordings, found {len(multi)}")
    rng = np.random.default_rng([seed, 20240])
    perm = rng.permutation(len(multi))
    n_held = min(len(multi) - 2, max(2, round(s.heldout_works * len(multi))))
    held = {multi[i] for i in perm[:n_held]}
    train_songs = [multi[i] for i in sorted(perm[n_held:])]
    n_minority = round(s.minority * len(train_songs))
    minority = [train_songs[i] for i in sorted(rng.permutation(len(train_songs))[:n_minority])]
    items: dict[SongId, list[int]] = {}
    for i, song in enumerate(data.song_ids):
        items.setdefault(song, []).append(i)
    train_idx: list[int] = []
    test_idx: list[int] = []
    for song in train_songs:
        mine = items[song]
        if song in minority:
            order = rng.permutation(mine).tolist()
            keep = min(int(rng.choice(s.minority_keep)), len(mine) - 1)
            train_idx += order[:keep]
            test_idx.append(order[keep])
        else:
            train_idx += mine
    retr_idx = [i for song in held for i in items[song]]
    if s.singles == "distractors":
        retr_idx += [i for song in singles for i in items[song]]
    elif s.singles == "train":
        train_idx += [i for song in singles for i in items[song]]
    train = data.subset(sorted(train_idx))
    tc = np.asarray(list(train.class_counts().values()))
    summary = {
        "train_recordings": len(train),
        "train_songs": train.n_songs,
        "train_counts": np.bincount(tc).tolist(),
        "minority_songs": len(minority),
        "minority_test": len(test_idx),
        "heldout_works": len(held),
        "retrieval_items": len(retr_idx),
        "singles": len(singles),
    }
    return Split(
        train=train,
        retrieval=data.subset(sorted(retr_idx)),
        minority_test=data.subset(sorted(test_idx)),
        minority_songs=minority,
        summary=summary,
    )


def classic_augment(data: CQTDataset) -> Compose:
    """The classic CSI augmentation (key roll, tempo change, time mask), seeded by training."""
    bps = data.config.bins_per_semitone if data.config is not None else 1
    return csi_augment(bins_per_semitone=bps, silence=data.silence_value)


class EpochForwarding(Dataset[Any]):
    """An :class:`AugmentedDataset` whose ``set_epoch`` reaches the real part.

    ``AugmentedDataset`` has no ``set_epoch``, so ``train_csi`` cannot renew the real
    items' random crops each epoch: without this wrapper the real windows of (c)/(d) would be
    frozen at epoch 0 while (a)/(b) get new crops, a confound.
    """

    def __init__(self, inner: AugmentedDataset) -> None:
        self.inner = inner
        self.labels = inner.labels

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> Any:
        return self.inner[i]

    def set_epoch(self, epoch: int) -> None:
        """Forward to the real dataset."""
        real_set_epoch = getattr(self.inner.real, "set_epoch", None)
        if callable(real_set_epoch):
            real_set_epoch(epoch)


class FreshDraws(Dataset[Any]):
    """Real items plus synthetic ones, a different draw of the synthetic part each epoch.

    ``pool[song]`` holds ``draws`` times ``plan[song]`` samples (fewer after filtering); epoch
    ``e`` uses the ``e % draws``-th slice, so every epoch sees new synthetic windows while the
    number of synthetic items per song stays ``plan[song]``. Items are
    ``(x, label, is_synthetic)``.
    """

    def __init__(
        self,
        real: CQTDataset,
        pool: Mapping[SongId, torch.Tensor],
        plan: Mapping[SongId, int],
        draws: int,
    ) -> None:
        self.real, self.draws, self.epoch = real, draws, 0
        self.slices: list[torch.Tensor] = []
        labels: list[int] = []
        per_draw: list[list[torch.Tensor]] = [[] for _ in range(draws)]
        for song, xs in pool.items():
            m = len(xs)
            n = min(plan.get(song, 0), m)
            if n == 0:
                continue
            labels += [real.index.index(song)] * n
            for j in range(draws):
                per_draw[j].append(xs[(j * n + torch.arange(n)) % m])
        self.slices = [torch.cat(p) if p else torch.empty(0) for p in per_draw]
        self.n_real = len(real)
        self.labels = np.concatenate([real.labels, np.asarray(labels, dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, bool]:
        if i < self.n_real:
            x, y = self.real[i]
            return x, int(y), False
        return self.slices[self.epoch % self.draws][i - self.n_real], int(self.labels[i]), True

    def set_epoch(self, epoch: int) -> None:
        """New crops of the real items and the next synthetic draw."""
        self.epoch = int(epoch)
        self.real.set_epoch(epoch)


class ReplaceDraws(Dataset[Any]):
    """Real items only; a planned song's item is swapped, with probability ``p``, for one of
    that song's synthetic samples.

    The ``--synthetic-mode replace`` sampling: the dataset keeps the real items' number and
    song shares (the songs with many versions keep their weight in every batch, as in (a) and
    (b)), and a minority song's draws become a mix of its real windows and its synthetic
    ones. Whether item ``i`` is swapped in epoch ``e``, and for which sample, is drawn from
    ``(seed, e, i)``. Items are ``(x, label, is_synthetic)``.
    """

    def __init__(
        self, real: CQTDataset, pool: Mapping[SongId, torch.Tensor], p: float, seed: int
    ) -> None:
        self.real, self.p, self.seed, self.epoch = real, float(p), int(seed), 0
        self.labels = real.labels
        self.pool = {real.index.index(song): xs for song, xs in pool.items() if len(xs)}

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, bool]:
        x, y = self.real[i]
        xs = self.pool.get(int(y))
        if xs is not None:
            rng = np.random.default_rng((self.seed, self.epoch, int(i)))
            if rng.random() < self.p:
                return xs[int(rng.integers(len(xs)))], int(y), True
        return x, int(y), False

    def set_epoch(self, epoch: int) -> None:
        """New crops of the real items and new swaps."""
        self.epoch = int(epoch)
        self.real.set_epoch(epoch)


class TensorItems(Dataset[tuple[torch.Tensor, int]]):
    """``(x, label)`` items from a tensor, for the synthetic-only classifier."""

    def __init__(self, xs: torch.Tensor, labels: np.ndarray) -> None:
        self.xs, self.labels = xs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.xs[i], int(self.labels[i])


# --------------------------------------------------------------------------------------
# Tasks (each runs in a worker with one torch thread; results are JSON-able dicts)
# --------------------------------------------------------------------------------------


def _init_worker(spec: str, data: CQTDataset | None = None) -> None:
    global _DATA
    torch.set_num_threads(1)
    logging.getLogger("covergan").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="covergan")
    _DATA = data if data is not None else load_dataset(spec)


def _dataset() -> CQTDataset:
    if _DATA is None:
        raise RuntimeError("worker not initialised")
    return _DATA


def _gan_path(workdir: Path, seed: int, s: Settings, steps: int | None = None) -> Path:
    n = s.gan_steps if steps is None else steps
    return workdir / f"gan-s{seed}-{s.key(*_SPLIT_FIELDS, 'gan', 'device')}-n{n}.aug"


def _shorter_gan(workdir: Path, seed: int, s: Settings) -> tuple[Path, int] | None:
    """The longest-trained saved GAN of this seed and config with fewer steps, if any."""
    best: tuple[Path, int] | None = None
    for path in workdir.glob(_gan_path(workdir, seed, s, 0).name.replace("-n0.aug", "-n*.aug")):
        steps = int(path.stem.rsplit("-n", 1)[1])
        if steps < s.gan_steps and (best is None or steps > best[1]):
            best = (path, steps)
    return best


def _model_path(workdir: Path, seed: int, cond: str, s: Settings) -> Path:
    return workdir / f"csi-{cond}-s{seed}-{s.key(*_SPLIT_FIELDS, *_CSI_FIELDS)}.pt"


def task_gan(seed: int, s: Settings, workdir: str) -> dict[str, Any]:
    """Fit the Augmenter on one seed's training side and save it."""
    from covergan.augmenter import Augmenter

    split = make_split(_dataset(), seed, s)
    t0 = time.perf_counter()
    shorter = _shorter_gan(Path(workdir), seed, s)
    resumed_from = 0
    if shorter is not None:
        # Continue a shorter run: fit(resume=True) trains the steps still to do, exactly as
        # one longer run would, except that the autoencoder pretraining of the shorter run
        # was (n // 5 steps) shorter.
        path, resumed_from = shorter
        aug = Augmenter.load(path, device=s.device)
        aug.progress, aug.steps = False, s.gan_steps
        aug.fit(split.train, resume=True)
    else:
        aug = Augmenter(
            model="gan",
            steps=s.gan_steps,
            window=s.window,
            seed=seed,
            gan=dict(s.gan),
            device=s.device,
            progress=False,
        ).fit(split.train)
    seconds = time.perf_counter() - t0
    aug.save(_gan_path(Path(workdir), seed, s))
    hist = aug.history_
    tail = {k: float(np.mean(v[-50:])) for k, v in hist.items() if v}
    return {
        "seconds": seconds,
        "steps": s.gan_steps,
        "resumed_from": resumed_from,
        "final": tail,
        "split": split.summary,
    }


def _load_gan(path: Path) -> Any:
    from covergan.augmenter import Augmenter

    aug = Augmenter.load(path, device="cpu")
    aug.progress = False
    return aug


def _versions_path(workdir: Path, seed: int, s: Settings) -> Path:
    return workdir / f"versions-s{seed}-{s.key(*_SPLIT_FIELDS, *_VERSION_FIELDS)}.pt"


def task_versions(seed: int, s: Settings, workdir: str) -> dict[str, Any]:
    """Train the reference-conditioned version model on one seed's training works
    (``version_steps // 5`` style-autoencoder steps, then ``version_steps`` GAN steps)."""
    from covergan.cqt import CQTNormalizer

    split = make_split(_dataset(), seed, s)
    train = split.train
    cfg = train.config
    norm = (CQTNormalizer.for_config(cfg) if cfg is not None else CQTNormalizer()).fit(train)
    config = VersionConfig(
        image_size=(train.n_bins, s.window),
        bins_per_semitone=cfg.bins_per_semitone if cfg is not None else 1,
        **dict(s.versions),
    )
    windows = train.windows(s.window, crop="random", seed=seed, transform=norm)
    multi = sum(c for c in train.class_counts().values() if c >= 2)
    model = VersionGAN(config, device=s.device, seed=seed)
    batch = min(config.batch_size, max(2, multi))
    t0 = time.perf_counter()
    if s.version_steps // 5:  # as Augmenter.fit_versions: style-autoencoder initialisation
        model.pretrain_autoencoder(
            windows, steps=s.version_steps // 5, batch_size=batch, progress=False
        )
    model.fit(windows, steps=s.version_steps, batch_size=batch, progress=False)
    seconds = time.perf_counter() - t0
    state = {"versions": model.state_dict(), "normalizer": norm.state_dict()}
    torch.save(state, _versions_path(Path(workdir), seed, s))
    tail = {k: float(np.mean(v[-50:])) for k, v in model.history.items() if v}
    return {
        "seconds": seconds,
        "steps": s.version_steps,
        "pair_recordings": multi,
        "final": tail,
        "split": split.summary,
    }


def _load_versions(path: Path) -> tuple[Any, Any]:
    from covergan.cqt import CQTNormalizer

    state = torch.load(path, map_location="cpu", weights_only=True)
    model = VersionGAN.from_state_dict(state["versions"], device="cpu", source=str(path))
    return model, CQTNormalizer.from_state_dict(state["normalizer"])


def _version_sampler(
    workdir: Path, seed: int, s: Settings, data: CQTDataset
) -> Callable[..., torch.Tensor]:
    """``sample_like(features, n, seed=...)`` of this seed's version model."""

    model, norm = _load_versions(_versions_path(workdir, seed, s))

    def sample_like(
        features: Any, n: int, *, seed: int = 0, truncation: float | None = None
    ) -> torch.Tensor:
        return sample_versions(
            model, norm, features, n, seed=seed, silence=data.silence_value, truncation=truncation
        )

    return sample_like


def _planned_recordings(split: Split, s: Settings) -> dict[SongId, tuple[int, list[int]]]:
    """``{song: (planned items, its recordings' indices in split.train)}`` for the songs that
    the plan of (c) (``--target``, ``--max-ratio``) gives items."""
    from covergan.balancing import plan_counts

    plan = plan_counts(split.train.class_counts(), _target(s.target), s.max_ratio)
    items: dict[SongId, list[int]] = {}
    for i, song in enumerate(split.train.song_ids):
        items.setdefault(song, []).append(i)
    return {song: (n, items[song]) for song, n in plan.items() if n}


def _version_samples(
    sample_like: Callable[..., torch.Tensor], split: Split, seed: int, s: Settings
) -> tuple[dict[SongId, torch.Tensor], dict[str, Any]]:
    """Synthetic versions for the songs under target, spread over each song's recordings."""
    planned = _planned_recordings(split, s)
    info: dict[str, Any] = {"planned": sum(n for n, _ in planned.values()), "songs": len(planned)}
    out: dict[SongId, torch.Tensor] = {}
    for song, (n, recs) in planned.items():
        total = n * s.synthetic_draws
        share = [total // len(recs) + (k < total % len(recs)) for k in range(len(recs))]
        out[song] = torch.cat(
            [
                sample_like(
                    split.train.features[i],
                    c,
                    seed=seed * 100_003 + i,
                    truncation=s.version_truncation,
                )
                for i, c in zip(recs, share, strict=True)
                if c
            ]
        )
    info["kept"] = info["planned"] * s.synthetic_draws
    return out, info


def _real_copies(
    split: Split, seed: int, s: Settings
) -> tuple[dict[SongId, torch.Tensor], dict[str, Any]]:
    """The oversampling control: as many items as the plan of (c) gives each song, each a
    random crop of one of the song's own recordings (taken in turn)."""
    train = split.train
    planned = _planned_recordings(split, s)
    rng = np.random.default_rng((seed, 7))
    out: dict[SongId, torch.Tensor] = {}
    for song, (n, recs) in planned.items():
        crops = [
            random_crop(train.features[recs[k % len(recs)]], s.window, rng=rng,
                        pad_value=train.silence_value)
            for k in range(n)
        ]  # fmt: skip
        out[song] = torch.from_numpy(np.stack(crops))[:, None].float()
    n_items = sum(n for n, _ in planned.values())
    return out, {"planned": n_items, "songs": len(planned), "kept": n_items}


def task_check(seed: int, s: Settings, workdir: str) -> dict[str, Any]:
    """The version model's collapse checks on the held-out works, with the (b) CSI model."""

    wd = Path(workdir)
    data = _dataset()
    split = make_split(data, seed, s)
    csi = CSINet.load(_model_path(wd, seed, "classic", s))
    sample_like = _version_sampler(wd, seed, s, data)
    t0 = time.perf_counter()
    check = check_versions(
        functools.partial(sample_like, truncation=s.version_truncation),
        split.retrieval,
        csi,
        n=s.check_per_reference,
        seed=seed,
    )
    return {**check.as_dict(), "seconds": time.perf_counter() - t0}


def _new_model(split: Split, seed: int, s: Settings) -> CSINet:
    return CSINet(
        n_classes=split.train.n_songs,
        n_bins=split.train.n_bins,
        channels=s.csi_channels,
        seed=seed,
    )


def _train_eval(
    model: CSINet,
    data: Dataset[Any],
    split: Split,
    seed: int,
    s: Settings,
    *,
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
    steps: int,
) -> dict[str, Any]:
    hist = train_csi(
        model,
        data,
        steps=steps,
        batch_size=s.csi_batch,
        lr=s.csi_lr,
        synthetic_weight=s.synthetic_weight,
        seed=seed,
        device=s.device,
        augment=augment,
        progress=False,
        log_every=0,
    )
    model.cpu()  # evaluation (and the saved model) on the CPU, whatever trained it
    t0 = time.perf_counter()
    emb = embed_dataset(model, split.retrieval)
    labels = split.retrieval.song_ids
    retr = retrieval_metrics(emb, labels)
    counts = split.retrieval.class_counts()
    works = [i for i, song in enumerate(labels) if counts[song] >= 2]
    retr_works = retrieval_metrics(emb[works], [labels[i] for i in works])
    acc = classification_accuracy(model, split.minority_test, index=split.train.index)
    top5 = top_k_accuracy(model, split.minority_test, split.train, k=5)
    return {
        "top5_minority": top5,
        "map": retr.map,
        "p_at_10": retr.p_at_10,
        "mr1": retr.mr1,
        "n_queries": retr.n_queries,
        "map_no_distractors": retr_works.map,
        "acc_minority": acc,
        "train_seconds": hist.seconds,
        "eval_seconds": time.perf_counter() - t0,
        "final_loss": hist.final_loss(),
    }


def top_k_accuracy(model: CSINet, test: CQTDataset, train: CQTDataset, *, k: int = 5) -> float:
    """Share of ``test`` tracks (full length) whose song is among the model's ``k`` best."""
    hits = 0
    model.eval()
    with torch.no_grad():
        for x, song in zip(test.features, test.song_ids, strict=True):
            logits = model(torch.from_numpy(x)[None, None])[0]
            c = train.index.index(song)
            hits += int(int((logits > logits[c]).sum()) < k)
    return hits / len(test)


def _synthetic(
    aug: Any, split: Split, seed: int, s: Settings, cond: str, workdir: Path
) -> tuple[dict[SongId, torch.Tensor], dict[str, Any]]:
    plan = {song: n for song, n in aug.plan(_target(s.target), max_ratio=s.max_ratio).items() if n}
    info: dict[str, Any] = {"planned": int(sum(plan.values())), "songs": len(plan)}
    if not plan:
        return {}, info
    filt = CONDITIONS[cond][2]
    k = s.synthetic_draws
    if filt is None:
        samples = aug.sample_many(
            {song: n * k for song, n in plan.items()}, seed=seed, truncation=s.truncation
        )
        info["kept"] = info["planned"] * k
        return samples, info
    want = {song: n * k for song, n in plan.items()}
    drawn = aug.sample_many(
        {song: n * s.filter_oversample for song, n in want.items()},
        seed=seed,
        truncation=s.truncation,
    )
    if s.filter_by == "discriminator":
        result = filter_by_discriminator(
            drawn, aug, keep_fraction=1.0 / s.filter_oversample, max_per_song=want
        )
    else:
        # the real-data model of the same augmentation setting is the filter
        ref = "classic" if CONDITIONS[cond][0] else "none"
        ref_model = CSINet.load(_model_path(workdir, seed, ref, s))
        result = filter_synthetic(
            drawn,
            ref_model,
            index=split.train.index,
            top_k=s.filter_top_k,
            threshold=s.filter_threshold,
            max_per_song=want,
        )
    info["kept"] = result.n_kept
    info["acceptance"] = result.acceptance
    return result.samples, info


def _target(target: str) -> Target:
    if str(target).isdigit():
        return int(target)
    if target not in ("max", "median"):
        raise ValueError(f"target must be 'max', 'median' or an integer, got {target!r}")
    return cast(Target, target)


def _with_synthetic(
    real: CQTDataset,
    samples: Mapping[SongId, torch.Tensor],
    plan: Mapping[SongId, int],
    seed: int,
    s: Settings,
) -> Dataset[Any]:
    """The CSI training set of a synthetic condition (``--synthetic-mode``,
    ``--synthetic-draws``); ``plan``: synthetic items per song and epoch in ``add`` mode."""
    if s.synthetic_mode == "replace":  # a song's whole pool is its synthetic choice
        return ReplaceDraws(real, samples, s.replace_p, seed)
    if s.synthetic_draws > 1:
        return FreshDraws(real, samples, plan, s.synthetic_draws)
    return EpochForwarding(AugmentedDataset.from_tensors(real, samples))


def task_csi(seed: int, cond: str, s: Settings, workdir: str) -> dict[str, Any]:
    """Train and evaluate the CSI model under one condition."""
    wd = Path(workdir)
    data = _dataset()
    split = make_split(data, seed, s)
    classic, use_gan, _ = CONDITIONS[cond]
    real = split.train.windows(s.window, crop="random", seed=seed)
    augment: Transform[Any] | None = classic_augment(data) if classic else None
    info: dict[str, Any] = {}
    train_data: Dataset[Any] = real
    if cond in VERSION_CONDITIONS and s.version_augment is not None:
        # versions as a transform of every training window (no synthetic items)
        model_v, norm = _load_versions(_versions_path(wd, seed, s))
        versions = VersionAugment(
            model_v,
            norm,
            p=s.version_augment,
            silence=data.silence_value,
            truncation=s.version_truncation,
        )
        augment = versions if augment is None else Compose([versions, augment])
        info = {"version_augment": s.version_augment}
    elif cond in VERSION_CONDITIONS:
        sample_like = _version_sampler(wd, seed, s, data)
        samples, info = _version_samples(sample_like, split, seed, s)
        plan = {song: len(x) // s.synthetic_draws for song, x in samples.items()}
        train_data = _with_synthetic(real, samples, plan, seed, s)
    elif cond in COPY_CONDITIONS:
        samples, info = _real_copies(split, seed, s)
        plan = {song: len(x) for song, x in samples.items()}
        train_data = _with_synthetic(real, samples, plan, seed, s)
    elif use_gan:
        aug = _load_gan(_gan_path(wd, seed, s))
        samples, info = _synthetic(aug, split, seed, s, cond, wd)
        plan = aug.plan(_target(s.target), max_ratio=s.max_ratio)
        train_data = _with_synthetic(real, samples, plan, seed, s)
    model = _new_model(split, seed, s)
    steps = s.csi_steps
    if s.equal_real:  # as many real windows as the real-only conditions see, on average
        steps = round(s.csi_steps * len(train_data) / len(real))  # type: ignore[arg-type]
    out = _train_eval(model, train_data, split, seed, s, augment=augment, steps=steps)
    out["synthetic"] = info
    out["steps"] = steps
    if cond in ("none", "classic"):
        model.save(_model_path(wd, seed, cond, s))
    return out


def task_cas(seed: int, s: Settings, workdir: str) -> dict[str, Any]:
    """Classification accuracy score: train on synthetic samples only, test on real."""

    split = make_split(_dataset(), seed, s)
    aug = _load_gan(_gan_path(Path(workdir), seed, s))
    songs = list(split.train.index.ids)
    drawn = aug.sample_many(
        {song: s.cas_per_song for song in songs}, seed=seed + 1000, truncation=s.truncation
    )
    xs = torch.cat([drawn[song] for song in songs])
    labels = np.repeat(np.arange(len(songs)), s.cas_per_song)
    model = _new_model(split, seed, s)
    hist = train_csi(
        model,
        TensorItems(xs, labels),
        steps=s.csi_steps,
        batch_size=s.csi_batch,
        lr=s.csi_lr,
        seed=seed,
        device=s.device,
        progress=False,
        log_every=0,
    )
    model.cpu()
    acc = classification_accuracy(model, split.minority_test, index=split.train.index)
    train_acc = classification_accuracy(model, split.train, index=split.train.index)
    return {
        "cas_synthetic": acc,
        "cas_synthetic_top5": top_k_accuracy(model, split.minority_test, split.train, k=5),
        "cas_synthetic_on_train_real": train_acc,
        "train_seconds": hist.seconds,
    }


# --------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------


@dataclass
class Task:
    """A unit of work with its dependencies and cache key."""

    name: str
    seed: int
    fn: Callable[..., dict[str, Any]]
    args: tuple[Any, ...]
    key: str
    deps: tuple[str, ...] = ()


def build_tasks(s: Settings, workdir: str) -> list[Task]:
    """Every task of the protocol, GANs first (they are the long ones)."""
    tasks: list[Task] = []
    conds = [c for c in s.conditions if c in CONDITIONS]
    need_gan = any(CONDITIONS[c][1] for c in conds) or s.cas_per_song > 0
    need_versions = any(c in VERSION_CONDITIONS for c in conds)
    split_csi = (*_SPLIT_FIELDS, *_CSI_FIELDS)
    for seed in s.seeds:
        if need_gan:
            key = s.key(*_SPLIT_FIELDS, *_GAN_FIELDS, extra={"seed": seed, "task": "gan"})
            tasks.append(Task(f"fit/{seed}", seed, task_gan, (seed, s, workdir), key))
    for seed in s.seeds:
        if need_versions:
            key = s.key(*_SPLIT_FIELDS, *_VERSION_FIELDS, extra={"seed": seed, "task": "vfit"})
            tasks.append(Task(f"vfit/{seed}", seed, task_versions, (seed, s, workdir), key))
    for seed in s.seeds:
        for cond in conds:
            classic, use_gan, filt = CONDITIONS[cond]
            fields: tuple[str, ...] = split_csi
            deps: list[str] = []
            if use_gan:
                fields += (*_GAN_FIELDS, *_SYNTH_FIELDS)
                deps.append(f"fit/{seed}")
            if cond in VERSION_CONDITIONS:
                fields += (*_VERSION_FIELDS, *_SYNTH_FIELDS, *_VERSION_SAMPLE_FIELDS)
                fields += ("version_augment",)
                deps.append(f"vfit/{seed}")
            if cond in COPY_CONDITIONS:
                fields += _SYNTH_FIELDS
            if use_gan or cond in VERSION_CONDITIONS or cond in COPY_CONDITIONS:
                fields += ("equal_real",)
            if filt is not None:
                fields += _FILTER_FIELDS
                if s.filter_by == "classifier":
                    deps.append(f"{'classic' if classic else 'none'}/{seed}")
            key = s.key(*fields, extra={"seed": seed, "task": cond})
            tasks.append(
                Task(f"{cond}/{seed}", seed, task_csi, (seed, cond, s, workdir), key, tuple(deps))
            )
        if s.cas_per_song > 0:
            key = s.key(
                *split_csi, *_GAN_FIELDS, "truncation", "cas_per_song",
                extra={"seed": seed, "task": "cas"},
            )  # fmt: skip
            tasks.append(
                Task(f"cas/{seed}", seed, task_cas, (seed, s, workdir), key, (f"fit/{seed}",))
            )
        if need_versions and "classic" in conds:
            key = s.key(
                *split_csi, *_VERSION_FIELDS, *_VERSION_SAMPLE_FIELDS, "check_per_reference",
                extra={"seed": seed, "task": "vcheck"},
            )  # fmt: skip
            check_deps = (f"vfit/{seed}", f"classic/{seed}")
            tasks.append(
                Task(f"vcheck/{seed}", seed, task_check, (seed, s, workdir), key, check_deps)
            )
    names = {t.name for t in tasks}
    for t in tasks:  # filters on a condition that is not run still need its model
        missing = [d for d in t.deps if d not in names]
        if missing:
            raise ValueError(f"task {t.name} needs {missing}; add those conditions")
    return tasks


def run_tasks(
    tasks: Sequence[Task], *, jobs: int, spec: str, workdir: str, data: CQTDataset | None = None
) -> dict[str, dict[str, Any]]:
    """Run tasks in dependency order, reusing cached results; returns name -> result."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    pending = list(tasks)

    def cached(t: Task) -> dict[str, Any] | None:
        path = wd / f"result-{t.name.replace('/', '-')}-{t.key}.json"
        if not path.is_file():
            return None
        # a model or GAN file the result implies must still exist
        got: dict[str, Any] = json.loads(path.read_text())
        return got

    def store(t: Task, result: dict[str, Any]) -> None:
        path = wd / f"result-{t.name.replace('/', '-')}-{t.key}.json"
        path.write_text(json.dumps(result, default=float))

    for t in list(pending):
        hit = cached(t)
        if hit is not None:
            results[t.name] = {**hit, "cached": True}
            pending.remove(t)
    if pending:
        _log(f"{len(pending)} tasks to run ({len(tasks) - len(pending)} cached), {jobs} jobs")
    t_start = time.perf_counter()

    def ready() -> Iterator[Task]:
        for t in pending:
            if all(d in results for d in t.deps):
                yield t

    if jobs <= 1:
        global _DATA
        threads = torch.get_num_threads()
        level = logging.getLogger("covergan").level
        try:
            with warnings.catch_warnings():
                _init_worker(spec, data)
                while pending:
                    nxt = next(ready(), None)
                    if nxt is None:
                        names = [p.name for p in pending]
                        raise RuntimeError(f"unresolvable dependencies: {names}")
                    pending.remove(nxt)
                    t0 = time.perf_counter()
                    res = nxt.fn(*nxt.args)
                    res["wall"] = time.perf_counter() - t0
                    results[nxt.name] = res
                    store(nxt, res)
                    _log(f"  {nxt.name:<24} {res['wall']:6.1f} s  {_brief(res)}")
        finally:  # leave the calling process as it was
            torch.set_num_threads(threads)
            logging.getLogger("covergan").setLevel(level)
            _DATA = None
        return results

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_init_worker, initargs=(spec,)
    ) as ex:
        running: dict[Future[dict[str, Any]], tuple[Task, float]] = {}
        while pending or running:
            for t in list(ready()):
                if len(running) >= jobs:
                    break
                pending.remove(t)
                running[ex.submit(t.fn, *t.args)] = (t, time.perf_counter())
            if not running:
                raise RuntimeError(f"unresolvable dependencies: {[p.name for p in pending]}")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                t, t0 = running.pop(fut)
                res = fut.result()
                res["wall"] = time.perf_counter() - t0
                results[t.name] = res
                store(t, res)
                el = time.perf_counter() - t_start
                _log(f"  [{el / 60:5.1f} min] {t.name:<24} {res['wall']:6.1f} s  {_brief(res)}")
    return results


def _brief(res: Mapping[str, Any]) -> str:
    if "map" in res:
        return f"MAP {res['map']:.3f} acc {res['acc_minority']:.3f}"
    if "cas_synthetic" in res:
        return f"CAS {res['cas_synthetic']:.3f}"
    if "map_synthetic" in res:
        return (
            f"distance copy/version/synthetic/other {res['distance_copy']:.3f}/"
            f"{res['distance_version']:.3f}/{res['distance_synthetic']:.3f}/"
            f"{res['distance_other_work']:.3f}, MAP synthetic {res['map_synthetic']:.3f}"
        )
    return f"GAN {res.get('steps')} steps"


def _log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------
# Summary, table, plot
# --------------------------------------------------------------------------------------


def summarise(s: Settings, results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and std (ddof=1) over seeds of every metric and condition, plus paired diffs."""
    out: dict[str, Any] = {"conditions": {}, "cas": {}, "paired": {}, "versions_check": {}}
    for cond in s.conditions:
        rows = [results[f"{cond}/{seed}"] for seed in s.seeds if f"{cond}/{seed}" in results]
        out["conditions"][cond] = {
            m: _stats([r.get(m, float("nan")) for r in rows]) for m in METRICS
        }
    if s.cas_per_song > 0 and "none" in s.conditions:
        nan = float("nan")
        cas = [results[f"cas/{seed}"] for seed in s.seeds]
        real = [results[f"none/{seed}"] for seed in s.seeds]
        out["cas"] = {
            "cas_synthetic": _stats([r["cas_synthetic"] for r in cas]),
            "cas_real": _stats([r["acc_minority"] for r in real]),
            "cas_synthetic_top5": _stats([r.get("cas_synthetic_top5", nan) for r in cas]),
            "cas_real_top5": _stats([r.get("top5_minority", nan) for r in real]),
        }
    pairs = [("gan", "none"), ("classic+gan", "classic"), ("gan-filt", "gan")]
    pairs += [("classic+gan-filt", "classic+gan"), ("classic+gan-filt", "classic")]
    pairs += [("versions", "none"), ("classic+versions", "classic")]
    pairs += [("copies", "none"), ("classic+copies", "classic")]
    for synthetic in ("gan", "versions"):  # against the control: same plan, no new information
        pairs += [(synthetic, "copies"), (f"classic+{synthetic}", "classic+copies")]
    checks = [results[f"vcheck/{seed}"] for seed in s.seeds if f"vcheck/{seed}" in results]
    if checks:
        out["versions_check"] = {m: _stats([r[m] for r in checks]) for m in CHECK_METRICS}
    for a, b in pairs:
        if a in s.conditions and b in s.conditions:
            out["paired"][f"{a} - {b}"] = {
                m: _stats(
                    [
                        results[f"{a}/{seed}"].get(m, float("nan"))
                        - results[f"{b}/{seed}"].get(m, float("nan"))
                        for seed in s.seeds
                    ]
                )
                for m in METRICS
            }
    return out


def _stats(values: Sequence[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    std = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "std": std, "values": v.tolist()}


def _pm(st: Mapping[str, Any], digits: int = 3) -> str:
    return f"{st['mean']:.{digits}f} ± {st['std']:.{digits}f}"


def table(s: Settings, summary: Mapping[str, Any]) -> str:
    """Markdown table: mean ± std over seeds."""
    head = "| condition | MAP | P@10 | MR1 | acc. seen minority | top-5 seen minority |"
    lines = [head, "|---|---|---|---|---|---|"]
    for cond in s.conditions:
        row = summary["conditions"][cond]
        cells = [_pm(row[m]) for m in ("map", "p_at_10")]
        cells.append(_pm(row["mr1"], 2))
        cells += [_pm(row["acc_minority"]), _pm(row["top5_minority"])]
        lines.append(f"| {LABELS[cond]} | " + " | ".join(cells) + " |")
    if summary.get("cas"):
        c = summary["cas"]
        lines += [
            "",
            "| classifier, tested on held-out real recordings of minority songs | top-1 | top-5 |",
            "|---|---|---|",
            f"| trained on synthetic samples only (CAS) | {_pm(c['cas_synthetic'])} "
            f"| {_pm(c['cas_synthetic_top5'])} |",
            f"| trained on real data, (a) | {_pm(c['cas_real'])} | {_pm(c['cas_real_top5'])} |",
        ]
    if summary.get("versions_check"):
        v = summary["versions_check"]
        lines += [
            "",
            "| version model on held-out works, (b) embedding | copy | real version "
            "| synthetic version | other work |",
            "|---|---|---|---|---|",
            f"| cosine distance to the reference | {_pm(v['distance_copy'])} "
            f"| {_pm(v['distance_version'])} | {_pm(v['distance_synthetic'])} "
            f"| {_pm(v['distance_other_work'])} |",
            f"| MAP of the reference's work (chance {v['map_chance']['mean']:.3f}) "
            f"| {_pm(v['map_real'])} | | {_pm(v['map_synthetic'])} | |",
            f"| top-1 | {_pm(v['top1_real'])} | | {_pm(v['top1_synthetic'])} | |",
            f"| between two synthetic versions of one reference "
            f"| | | {_pm(v['distance_between_samples'])} | |",
        ]
    if summary.get("paired"):
        lines += [
            "",
            "| paired difference (same seed) | ΔMAP | Δacc. seen minority |",
            "|---|---|---|",
        ]
        for name, row in summary["paired"].items():
            lines.append(
                f"| {name} | {row['map']['mean']:+.3f} ± {row['map']['std']:.3f} "
                f"| {row['acc_minority']['mean']:+.3f} ± {row['acc_minority']['std']:.3f} |"
            )
    return "\n".join(lines)


def plot(s: Settings, summary: Mapping[str, Any], path: str) -> None:
    """Bars (mean ± std, seeds as dots) per metric and condition, and the CAS pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"map": "MAP", "p_at_10": "P@10", "mr1": "MR1 (lower is better)"}
    names["acc_minority"] = "accuracy, seen minority"
    names["top5_minority"] = "top-5 accuracy, seen minority"
    panels = [*METRICS, "cas"] if summary.get("cas") else list(METRICS)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(np.atleast_1d(axes), panels, strict=True):
        if metric == "cas":
            rows = [("synthetic\nonly", summary["cas"]["cas_synthetic"])]
            rows.append(("real (a)", summary["cas"]["cas_real"]))
            title = "CAS vs real-trained"
        else:
            rows = [
                (LABELS[c].split(" ")[0], summary["conditions"][c][metric]) for c in s.conditions
            ]
            title = names[metric]
        for i, (_label, st) in enumerate(rows):
            ax.bar(
                i, st["mean"], yerr=st["std"], color=colors[i % len(colors)], capsize=3, alpha=0.8
            )
            ax.scatter([i] * len(st["values"]), st["values"], color="k", s=8, zorder=3)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r[0] for r in rows], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    data = Path(s.data).stem if s.data.endswith(".pt") else s.data  # a saved dataset: its name
    fig.suptitle(
        f"CSI on {data}, {s.csi_steps} CSI steps: mean ± std over seeds {list(s.seeds)} "
        "(dots: seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> dict[str, Any]:
    """CPU model, cores, load, versions (for the docs)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def run(
    s: Settings,
    *,
    jobs: int = 1,
    workdir: str | None = None,
    data: CQTDataset | None = None,
) -> dict[str, Any]:
    """Run the protocol; returns ``{"settings", "machine", "results", "summary", ...}``.

    Parameters
    ----------
    s : Settings
    jobs : int
        Worker processes (1: in this process; then ``data`` may be an in-memory dataset).
    workdir : str, optional
        Where GANs, models and cached task results go (default: a fresh temp folder).
    data : CQTDataset, optional
        Use this dataset instead of loading ``s.data`` (``jobs=1`` only).
    """
    if data is not None and jobs > 1:
        raise ValueError("an in-memory dataset needs jobs=1")
    wd = workdir or tempfile.mkdtemp(prefix="covergan-downstream-")
    before = machine()
    t0 = time.perf_counter()
    tasks = build_tasks(s, wd)
    spec = s.data if data is not None else prepare_data(s.data, wd)
    results = run_tasks(tasks, jobs=jobs, spec=spec, workdir=wd, data=data)
    wall = time.perf_counter() - t0
    summary = summarise(s, results)
    after = machine()
    return {
        "settings": s.as_dict(),
        "machine": {**before, "load_average_end": after["load_average"], "jobs": jobs},
        "wall_seconds": wall,
        "task_seconds": float(sum(r.get("wall", 0.0) for r in results.values())),
        "results": results,
        "summary": summary,
        "table": table(s, summary),
        "workdir": wd,
    }


def _parse_gan(text: str) -> tuple[tuple[str, Any], ...]:
    if not text:
        return ()
    d = json.loads(text)
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError("--gan must be a JSON object of GANConfig overrides")
    return tuple(sorted(d.items()))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        default="chorales",
        help="'chorales', 'toy', 'toy300', a saved dataset or a folder",
    )
    p.add_argument("--device", help="where models train: 'cpu' (default), 'cuda', 'cuda:1', 'auto'")
    p.add_argument("--quick", action="store_true", help="same protocol, fewer steps (<= 5 min)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--workdir", default=None, help="cache of GANs, models and task results")
    p.add_argument("--out", default=None, help="JSON of every raw number")
    p.add_argument("--plot", default=None, help="PNG figure")
    p.add_argument(
        "--conditions",
        nargs="+",
        default=list(DEFAULT_CONDITIONS),
        choices=list(CONDITIONS),
        help="default: all but the oversampling controls 'copies' and 'classic+copies'",
    )
    p.add_argument("--gan-steps", type=int)
    p.add_argument("--gan", type=_parse_gan, default=(), help="GANConfig overrides, JSON")
    p.add_argument("--version-steps", type=int, help="steps of the version model, (e)")
    p.add_argument("--versions", type=_parse_gan, default=(), help="VersionConfig overrides, JSON")
    p.add_argument(
        "--version-truncation", type=float, help="style-latent truncation of (e)'s samples"
    )
    p.add_argument(
        "--version-augment",
        type=float,
        metavar="P",
        help="(e): replace each training window with probability P by a synthetic version of "
        "itself (covergan.versions.VersionAugment) instead of adding planned synthetic items",
    )
    p.add_argument("--csi-steps", type=int)
    p.add_argument(
        "--equal-real",
        action="store_true",
        default=None,
        help="train conditions with synthetic samples for proportionally more steps, so every "
        "condition sees as many real windows (default: equal steps)",
    )
    p.add_argument("--window", type=int)
    p.add_argument("--target", help="'max', 'median' or an int (Augmenter.plan)")
    p.add_argument("--max-ratio", type=float)
    p.add_argument("--truncation", type=float)
    p.add_argument("--synthetic-weight", type=float)
    p.add_argument("--synthetic-draws", type=int, help="fresh synthetic draw per epoch, cycling")
    p.add_argument(
        "--synthetic-mode",
        choices=SYNTHETIC_MODES,
        help="'add' (default): the planned synthetic samples are extra training items; "
        "'replace': a planned song's real item is swapped for one of its synthetic samples "
        "with probability --replace-p, so the songs' shares of the data stay as they are",
    )
    p.add_argument("--replace-p", type=float, help="swap probability of --synthetic-mode replace")
    p.add_argument("--filter-by", choices=["classifier", "discriminator"])
    p.add_argument("--filter-oversample", type=int)
    p.add_argument("--filter-top-k", type=int)
    p.add_argument("--filter-threshold", type=float)
    p.add_argument("--cas-per-song", type=int)
    p.add_argument(
        "--singles",
        choices=["distractors", "train", "drop"],
        help="works with one recording: retrieval distractors (default), training classes, unused",
    )
    args = p.parse_args(argv)

    over: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in (
        "gan_steps", "version_steps", "csi_steps", "window", "target", "max_ratio", "truncation",
        "synthetic_weight", "synthetic_draws", "filter_by", "filter_oversample", "filter_top_k",
        "filter_threshold", "cas_per_song", "singles", "version_truncation", "equal_real",
        "version_augment", "device", "synthetic_mode", "replace_p",
    ):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            over[name] = value
    if args.replace_p is not None and not 0.0 <= args.replace_p <= 1.0:
        p.error(f"--replace-p {args.replace_p} must be in [0, 1]")
    if args.max_ratio is not None and args.max_ratio <= 0:
        over["max_ratio"] = None
    s = Settings(
        data=args.data,
        seeds=tuple(args.seeds),
        gan=args.gan,
        versions=args.versions,
        conditions=tuple(args.conditions),
        **over,
    )
    workdir = args.workdir or str(
        Path(tempfile.gettempdir())
        / ("covergan-downstream-quick" if args.quick else "covergan-downstream")
    )
    _log(f"downstream benchmark: {s.as_dict()}")
    out = run(s, jobs=args.jobs, workdir=workdir)
    out["quick"] = bool(args.quick)
    split = out["results"].get(f"fit/{s.seeds[0]}", {}).get("split")
    if split:
        _log(f"split of seed {s.seeds[0]}: {split}")
    _log(f"\n{out['table']}\n")
    m = out["machine"]
    _log(
        f"wall {out['wall_seconds'] / 60:.1f} min ({out['task_seconds'] / 60:.1f} task-min), "
        f"{m['cpu']}, {m['cores']} cores, jobs={m['jobs']}, load {m['load_average']} -> "
        f"{m['load_average_end']}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    if args.plot:
        plot(s, out["summary"], args.plot)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
