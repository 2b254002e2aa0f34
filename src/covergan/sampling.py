"""Class balancing: a per-song sampler, a disk-backed bank of synthetic CQTs, and a
dataset that mixes real and synthetic items.

The pieces plug into an unchanged PyTorch training loop::

    bank = SyntheticBank.build(augmenter, augmenter.plan("median"), "bank/", index=train.index)
    mixed = AugmentedDataset(train, bank)                 # items: (x, song_class, is_synthetic)
    loader = DataLoader(mixed, batch_size=32, sampler=ClassBalancedSampler(mixed))
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from covergan._checks import check_count, is_int, is_real
from covergan._io import header, temp_dir
from covergan.data import SongId, SongIndex, Transform
from covergan.errors import DatasetError, ParameterError

Space = Literal["features", "model"]

__all__ = [
    "AugmentedDataset",
    "ClassBalancedSampler",
    "SampleSource",
    "SyntheticBank",
]

logger = logging.getLogger(__name__)

_BANK_FORMAT = "covergan.bank"
_BANK_VERSION = 1


class SampleSource(Protocol):
    """Anything that draws synthetic CQTs per song (an ``Augmenter`` is one)."""

    def sample_many(
        self,
        counts: Mapping[SongId, int],
        *,
        space: Space = ...,
        seed: int | None = ...,
    ) -> dict[SongId, torch.Tensor]:
        """``{song: Tensor[n, 1, n_bins, n_frames]}`` for ``{song: n}``."""
        ...


# --------------------------------------------------------------------------------------
# Synthetic bank
# --------------------------------------------------------------------------------------


class SyntheticBank(Dataset[tuple[torch.Tensor, int]]):
    """Pre-generated synthetic CQTs stored on disk and read through a memory map.

    Items are ``(x, class_index)`` with ``x`` a float32 tensor ``[1, n_bins, n_frames]``
    and ``class_index`` in the numbering of ``index`` (the real training set's
    :class:`~covergan.data.SongIndex`), so bank items and real items share labels.
    Reading an item is a memory copy; :meth:`refresh` draws new samples between epochs.

    Build with :meth:`build`, reopen with :meth:`open`.

    Attributes
    ----------
    path : Path
        Folder holding ``samples.npy`` (``[N, 1, n_bins, n_frames]``), ``labels.npy``
        and ``bank.json``.
    labels : np.ndarray [shape=(N,), dtype=int64]
    song_ids : list of str or int
    index : SongIndex
    """

    def __init__(self, path: str | os.PathLike[str], *, transform: Transform | None = None) -> None:
        self.path = Path(path).expanduser()
        self.transform = transform
        self._load()

    def _load(self) -> None:
        meta_path = self.path / "bank.json"
        if not meta_path.is_file():
            kept = sorted(self.path.parent.glob(f".{self.path.name}.old-*/bank.json"))
            hint = (
                f"; a refresh stopped between its two renames left the previous bank at "
                f"{kept[-1].parent}: rename it to {self.path.name}"
                if kept and not self.path.exists()
                else ""
            )
            raise DatasetError(f"no synthetic bank at {self.path} (bank.json missing){hint}")
        try:
            raw = json.loads(meta_path.read_text())
            if not isinstance(raw, dict) or raw.get("format") != _BANK_FORMAT:
                raise DatasetError(f"{meta_path} is not a covergan synthetic bank")
            meta: dict[str, Any] = raw
            version = int(meta.get("format_version", meta.get("version", 0)))  # "version": old
            if version > _BANK_VERSION:
                raise DatasetError(
                    f"{meta_path} has bank format version {version}, newer than this "
                    f"covergan reads ({_BANK_VERSION}); upgrade covergan"
                )
            self.meta = meta
            self.index = SongIndex.from_dict(meta["index"])
            self.samples = np.load(self.path / meta["samples"], mmap_mode="r")
            self.labels = np.load(self.path / meta["labels"], allow_pickle=False)
        except (OSError, ValueError, KeyError, ParameterError) as error:
            raise DatasetError(f"cannot read synthetic bank {self.path}: {error}") from error
        if (
            self.samples.ndim != 4
            or self.labels.ndim != 1
            or len(self.samples) != len(self.labels)
            or not ((self.labels >= 0) & (self.labels < len(self.index))).all()
        ):
            raise DatasetError(f"synthetic bank {self.path} is inconsistent; rebuild it")
        self.seed = int(meta["seed"])
        self.space: Space = "model" if meta["space"] == "model" else "features"
        # songs in the order they are stored, so a refresh writes the same labels again
        classes, first, sizes = np.unique(self.labels, return_index=True, return_counts=True)
        order = np.argsort(first)
        self.counts: dict[SongId, int] = {
            self.index.ids[int(classes[k])]: int(sizes[k]) for k in order
        }

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, transform: Transform | None = None
    ) -> SyntheticBank:
        """Reopen a bank written by :meth:`build`.

        Raises
        ------
        DatasetError
            No bank at ``path``, a foreign or newer-format folder, or inconsistent files.
        """
        return cls(path, transform=transform)

    @classmethod
    def build(
        cls,
        source: SampleSource,
        counts: Mapping[SongId, int],
        path: str | os.PathLike[str],
        *,
        index: SongIndex,
        seed: int = 0,
        space: Space = "features",
        transform: Transform | None = None,
    ) -> SyntheticBank:
        """Generate ``counts[song]`` samples per song and store them under ``path``.

        Parameters
        ----------
        source : SampleSource
            Usually a fitted :class:`~covergan.Augmenter`.
        counts : mapping song id -> int
            Samples per song (e.g. ``augmenter.plan("median")``); zero counts are skipped.
        path : str or PathLike
            Folder for the bank (created; an existing bank there is replaced atomically).
        index : SongIndex
            The class numbering of the real dataset the bank is mixed with.
        seed : int
            Seed of the draw; :meth:`refresh` changes it.
        space : {"features", "model"}
            Stored in the extractor's feature format (default, like real features) or in
            the GAN's [-1, 1] model space.

        Raises
        ------
        ParameterError
            A count is negative or not an int, all counts are zero, or a song is not in
            ``index``; ``path`` is a file, a folder that is not a bank, or a bank holding
            other files too (a rebuild replaces the folder). Checked before the draw.
        """
        clean = _check_counts(counts, index)
        check_count("seed", seed, 0)
        target = Path(path).expanduser()
        _write_bank(source, clean, target, index=index, seed=seed, space=space)
        return cls(target, transform=transform).attach_source(source)

    def refresh(self, seed: int | None = None) -> None:
        """Replace every sample with a new draw (same counts), atomically.

        Parameters
        ----------
        seed : int, optional
            Seed of the new draw; default: the previous seed + 1.

        Notes
        -----
        Needs the ``source`` the bank was built from: :meth:`build` attaches it; after
        :meth:`open`, pass it once with :meth:`attach_source`. Items keep their order and
        labels, so datasets and samplers built on the bank stay valid.
        """
        source = getattr(self, "source", None)
        if source is None:
            raise ParameterError(
                "this bank has no sample source; call attach_source(augmenter) first"
            )
        new_seed = self.seed + 1 if seed is None else check_count("seed", seed, 0)
        _write_bank(
            source, self.counts, self.path, index=self.index, seed=new_seed, space=self.space
        )
        self._load()

    def attach_source(self, source: SampleSource) -> SyntheticBank:
        """Remember where new samples come from, for :meth:`refresh`; returns ``self``."""
        self.source = source
        return self

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(np.array(self.samples[i], dtype=np.float32))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])

    @property
    def song_ids(self) -> list[SongId]:
        """Song id of each item."""
        return self.index.decode(self.labels)

    def __repr__(self) -> str:
        return (
            f"SyntheticBank({len(self)} samples of {len(self.counts)} songs, "
            f"shape {tuple(self.samples.shape[1:])}, space={self.space!r}, seed={self.seed}, "
            f"path={str(self.path)!r})"
        )


def _check_counts(counts: Mapping[SongId, int], index: SongIndex) -> dict[SongId, int]:
    clean: dict[SongId, int] = {}
    for song, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ParameterError(f"count for song {song!r} must be a non-negative int, got {n!r}")
        if song not in index:
            raise ParameterError(f"song {song!r} is not in the real dataset's index")
        if n:
            clean[song] = int(n)
    if not clean:
        raise ParameterError("every count is zero: nothing to generate")
    return clean


_BANK_FILES = frozenset({"bank.json", "samples.npy", "labels.npy"})


def _write_bank(
    source: SampleSource,
    counts: Mapping[SongId, int],
    target: Path,
    *,
    index: SongIndex,
    seed: int,
    space: Space,
) -> None:
    _check_bank_target(target)  # before the draw, which may take long
    drawn = source.sample_many(counts, space=space, seed=seed)
    songs = list(counts)
    shapes = {tuple(drawn[s].shape[1:]) for s in songs}
    if len(shapes) != 1:
        raise ParameterError(f"samples of different shapes cannot share a bank: {shapes}")
    total = sum(counts.values())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_dir(target.parent, f".{target.name}.")
    try:
        data = np.lib.format.open_memmap(
            staging / "samples.npy", mode="w+", dtype=np.float32, shape=(total, *shapes.pop())
        )
        labels = np.empty(total, dtype=np.int64)
        at = 0
        for song in songs:
            block = drawn[song].detach().cpu().numpy()
            data[at : at + len(block)] = block
            labels[at : at + len(block)] = index.index(song)
            at += len(block)
        data.flush()
        del data
        np.save(staging / "labels.npy", labels)
        meta = {
            **header(_BANK_FORMAT, _BANK_VERSION),
            "samples": "samples.npy",
            "labels": "labels.npy",
            "seed": int(seed),
            "space": space,
            "index": index.to_dict(),
        }
        (staging / "bank.json").write_text(json.dumps(meta))
        _swap_dirs(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_bank_target(target: Path) -> None:
    """``target`` is free, empty or a bank holding nothing but a bank's files (a rebuild
    replaces the whole folder, so anything else in it would be lost)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ParameterError(f"{target} is a file; a synthetic bank is a folder")
    others = sorted(
        p.name for p in target.iterdir() if p.name not in _BANK_FILES and not p.name.startswith(".")
    )
    if others and (target / "bank.json").is_file():
        raise ParameterError(
            f"{target} holds files a synthetic bank does not write ({', '.join(others[:5])}); "
            "a rebuild replaces the folder, so move them or build the bank elsewhere"
        )
    if others:
        raise ParameterError(f"{target} exists and is not a synthetic bank; refusing to replace it")


def _swap_dirs(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target``; a previous bank there is removed only afterwards."""
    if target.exists():
        _check_bank_target(target)  # again: the folder may have changed during the draw
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


# --------------------------------------------------------------------------------------
# Real + synthetic dataset
# --------------------------------------------------------------------------------------


def _stored_shape(synthetic: Any) -> tuple[int, ...] | None:
    """The shape of a synthetic window as stored (a bank's ``samples``, in-memory ``xs``),
    read without calling a transform; None for other datasets."""
    stored = getattr(synthetic, "samples", getattr(synthetic, "xs", None))
    return None if stored is None else tuple(stored.shape[1:])


def _check_shapes(a: tuple[int, ...], b: tuple[int, ...] | None) -> None:
    """Real windows of shape ``a`` and synthetic ones of shape ``b`` (None: unknown) agree
    (a batch stacks them); a ParameterError that says how to make them agree otherwise."""
    if b is not None and a != b:
        raise ParameterError(
            f"the real windows are {a} and the synthetic ones {b}, so no batch can stack them: "
            "build the real dataset with the augmenter's window (window=aug.window_), or "
            "sample from an augmenter fitted on the real dataset's"
        )


class AugmentedDataset(Dataset[Any]):
    """Real items followed by synthetic ones, labelled in the real dataset's numbering.

    Items are ``(x, class_index, is_synthetic)`` (or ``(x, class_index)`` with
    ``return_flag=False``, for loops that unpack two values). Real items come from
    ``real[i]`` unchanged; synthetic item ``j`` is ``len(real) + j``.

    Parameters
    ----------
    real : Dataset
        Items ``(x, class_index)``; must expose ``labels`` (int array) and ``index``
        (``SongIndex``), as :class:`~covergan.data.CQTDataset` does.
    synthetic : Dataset
        Items ``(x, class_index)`` in the same numbering, with a ``labels`` array
        (a :class:`SyntheticBank` or an in-memory :class:`torch.utils.data.TensorDataset`
        wrapped by :meth:`from_tensors`).
    return_flag : bool
        Return the ``is_synthetic`` flag as a third element.

    Attributes
    ----------
    labels : np.ndarray [shape=(n_real + n_synthetic,), dtype=int64]
    is_synthetic : np.ndarray [shape=(n_real + n_synthetic,), dtype=bool]

    Raises
    ------
    ParameterError
        A part without ``labels``, a real dataset without a ``SongIndex``, a bank built for
        another index, synthetic labels outside the real classes, or (a real dataset of
        fixed-width windows) real and synthetic windows of different shapes.
    """

    def __init__(self, real: Any, synthetic: Any, *, return_flag: bool = True) -> None:
        for name, part in (("real", real), ("synthetic", synthetic)):
            if not hasattr(part, "labels"):
                raise ParameterError(f"the {name} dataset must have a 'labels' array")
        if not isinstance(getattr(real, "index", None), SongIndex):
            raise ParameterError(
                "the real dataset must have a SongIndex 'index' (use a CQTDataset)"
            )
        bank_index = getattr(synthetic, "index", None)
        if isinstance(bank_index, SongIndex) and bank_index.ids != real.index.ids:
            raise ParameterError(
                "the synthetic bank was built for another song index; build it with "
                "index=real_dataset.index"
            )
        self.real = real
        self.synthetic = synthetic
        self.return_flag = return_flag
        self.index: SongIndex = real.index
        real_labels = np.asarray(real.labels, dtype=np.int64)
        synth_labels = np.asarray(synthetic.labels, dtype=np.int64)
        if synth_labels.size and (synth_labels.min() < 0 or synth_labels.max() >= len(self.index)):
            raise ParameterError("synthetic labels fall outside the real dataset's classes")
        if synth_labels.size and isinstance(getattr(real, "window", None), int):
            _check_shapes((1, real.n_bins, real.window), _stored_shape(synthetic))
        self.labels = np.concatenate([real_labels, synth_labels])
        self.is_synthetic = np.concatenate(
            [np.zeros(len(real_labels), dtype=bool), np.ones(len(synth_labels), dtype=bool)]
        )
        self._n_real = len(real_labels)

    @classmethod
    def from_tensors(
        cls,
        real: Any,
        samples: Mapping[SongId, torch.Tensor],
        *,
        transform: Transform | None = None,
        return_flag: bool = True,
    ) -> AugmentedDataset:
        """Mix ``real`` with in-memory synthetic samples ``{song: Tensor[n, 1, H, W]}``."""
        songs = [s for s, x in samples.items() if len(x)]
        if not songs:
            return cls(
                real,
                _TensorItems(torch.empty(0), np.empty(0, np.int64), transform),
                return_flag=return_flag,
            )
        xs = torch.cat([samples[s].detach().cpu().float() for s in songs])
        labels = np.concatenate([np.full(len(samples[s]), real.index.index(s)) for s in songs])
        return cls(
            real, _TensorItems(xs, labels.astype(np.int64), transform), return_flag=return_flag
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Any:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i %= len(self)
        synthetic = i >= self._n_real
        x, y = (self.synthetic[i - self._n_real] if synthetic else self.real[i])[:2]
        return (x, int(y), synthetic) if self.return_flag else (x, int(y))

    def class_counts(self, *, synthetic: bool | None = None) -> dict[SongId, int]:
        """Items per song: all (``None``), only synthetic (``True``) or only real (``False``)."""
        mask = (
            np.ones(len(self), dtype=bool) if synthetic is None else self.is_synthetic == synthetic
        )
        counts = np.bincount(self.labels[mask], minlength=len(self.index))
        return {s: int(counts[c]) for c, s in enumerate(self.index.ids)}

    def __repr__(self) -> str:
        return (
            f"AugmentedDataset({self._n_real} real + {len(self) - self._n_real} synthetic items, "
            f"{len(self.index)} songs)"
        )


class _TensorItems(Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, xs: torch.Tensor, labels: np.ndarray, transform: Transform | None) -> None:
        self.xs, self.labels, self.transform = xs, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.xs[i]
        return (self.transform(x) if self.transform else x), int(self.labels[i])


# --------------------------------------------------------------------------------------
# Sampler
# --------------------------------------------------------------------------------------


class ClassBalancedSampler(Sampler[int]):
    """Draw items so that every song gets the same (or a chosen) share of each epoch.

    Each epoch is a list of ``num_samples`` dataset indices:

    1. *Songs*: song ``c`` gets ``round(num_samples * w_c)`` draws (largest remainders
       decide the rounding; ``w`` = ``weights`` normalised, equal by default;
       ``weights="real"`` keeps the data's own shares, each song's number of real items),
       and the draws are shuffled.
    2. *Items*: a song's draws walk through a fresh shuffle of its items and reshuffle
       when they run out, so an item repeats within an epoch only after every item of
       its song has been drawn (the duplicate policy). A song with one recording repeats
       that recording.
    3. *Synthetic top-up*: when the dataset has an ``is_synthetic`` flag (an
       :class:`AugmentedDataset`), each draw of a song picks a synthetic item with
       probability ``s / (r + s)`` for ``ratio=(r, s)``, or, by default
       (``ratio=None``), with the song's share of synthetic items (so its real and
       synthetic items are drawn alike). Only songs with synthetic items and fewer than
       ``top_up_below`` real recordings are topped up; the others draw real items only.

    Everything is drawn from ``torch.Generator().manual_seed(seed + epoch)``: the same
    on every rank, so with ``num_replicas > 1`` each rank takes the disjoint shard
    ``indices[rank::num_replicas]`` (the list is first padded by wrapping to a multiple
    of ``num_replicas``, as ``DistributedSampler`` does). Call :meth:`set_epoch` before
    each epoch.

    Parameters
    ----------
    data : Dataset with ``labels`` (and optionally ``is_synthetic``), or int labels
        [shape=(n_items,)].
    weights : mapping class index -> float, sequence of float [shape=(n_classes,)] or "real"
        Relative share of each song; default equal. ``"real"``: each song's number of real
        items, so the epoch keeps the data's song shares and the synthetic items only top up
        the draws of the rare songs (no rebalancing; see ``docs/augmenter.md``).
    num_samples : int, optional
        Draws per epoch over all ranks; default: the number of real items.
    ratio : (float, float), optional
        ``(real, synthetic)`` mix for topped-up songs; ``(1, 1)`` = half synthetic. Default:
        each song's own share of synthetic items.
    top_up_below : int, optional
        Only songs with fewer real recordings than this are topped up; default: every
        song that has synthetic items. Ignored without synthetic items.
    num_replicas, rank : int, optional
        Distributed world size and this rank; default from ``torch.distributed`` when it
        is initialised, else 1 and 0.
    seed : int

    Raises
    ------
    ParameterError
        Empty or negative labels, bad weights (negative, all zero, wrong length, a name
        other than ``"real"``), ``num_samples <= 0``, a bad ``ratio`` or ``rank``, or a
        weighted song with no item to draw.
    """

    def __init__(
        self,
        data: Any,
        *,
        weights: Mapping[int, float] | Sequence[float] | Literal["real"] | None = None,
        num_samples: int | None = None,
        ratio: tuple[float, float] | None = None,
        top_up_below: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        labels = np.asarray(getattr(data, "labels", data))
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ParameterError("ClassBalancedSampler needs a non-empty 1-D array of int labels")
        if labels.min() < 0:
            raise ParameterError("labels must be class indices >= 0")
        flags = getattr(data, "is_synthetic", None)
        synthetic = np.zeros(labels.size, dtype=bool) if flags is None else np.asarray(flags, bool)
        n_classes = int(labels.max()) + 1
        index = getattr(data, "index", None)
        if isinstance(index, SongIndex):
            n_classes = max(n_classes, len(index))

        self.real_items = [np.flatnonzero((labels == c) & ~synthetic) for c in range(n_classes)]
        self.synthetic_items = [np.flatnonzero((labels == c) & synthetic) for c in range(n_classes)]
        self.weights = _class_weights(weights, np.bincount(labels[~synthetic], minlength=n_classes))
        for c in np.flatnonzero(self.weights):
            if not (len(self.real_items[c]) or len(self.synthetic_items[c])):
                raise ParameterError(f"class {c} has weight {self.weights[c]:.3g} but no items")

        n_real = int((~synthetic).sum())
        self.num_samples = check_count(
            "num_samples", n_real if num_samples is None else num_samples, 1
        )
        pair = _numbers(ratio)
        if ratio is not None and (
            len(pair) != 2 or min(pair) < 0 or sum(pair) <= 0 or not np.all(np.isfinite(pair))
        ):
            raise ParameterError(f"ratio={ratio!r} must be two non-negative numbers, not both 0")
        if top_up_below is not None and (
            isinstance(top_up_below, bool) or not isinstance(top_up_below, (int, np.integer))
        ):
            raise ParameterError(f"top_up_below={top_up_below!r} must be an int or None")
        self.ratio = ratio
        self.top_up_below = top_up_below
        self.p_synthetic = np.zeros(n_classes)
        for k, (r, s) in enumerate(zip(self.real_items, self.synthetic_items, strict=True)):
            if not len(s) or (top_up_below is not None and len(r) >= top_up_below):
                continue
            if not len(r):
                self.p_synthetic[k] = 1.0
            elif ratio is None:
                self.p_synthetic[k] = len(s) / (len(r) + len(s))
            else:
                self.p_synthetic[k] = ratio[1] / (ratio[0] + ratio[1])

        if num_replicas is None:
            num_replicas = (
                dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            )
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ParameterError(f"rank={rank} must be in [0, num_replicas={num_replicas})")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.seed = check_count("seed", seed, 0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the draw of ``epoch`` (call before each epoch, on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.num_samples // self.num_replicas)

    def __iter__(self) -> Any:
        return iter(self.epoch_indices()[self.rank :: self.num_replicas].tolist())

    def epoch_indices(self) -> np.ndarray:
        """Indices of the whole epoch over all ranks, padded to a multiple of ``num_replicas``."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        counts = _apportion(self.weights, self.num_samples)
        songs = np.repeat(np.arange(len(counts)), counts)
        songs = songs[torch.randperm(len(songs), generator=g).numpy()]
        out = np.empty(len(songs), dtype=np.int64)
        use_synth = torch.rand(len(songs), generator=g, dtype=torch.float64).numpy()
        for c in np.flatnonzero(counts):
            at = np.flatnonzero(songs == c)
            synth = use_synth[at] < self.p_synthetic[c]
            out[at[~synth]] = _cycle(self.real_items[c], int((~synth).sum()), g)
            out[at[synth]] = _cycle(self.synthetic_items[c], int(synth.sum()), g)
        total = len(self) * self.num_replicas
        return np.resize(out, total) if total > len(out) else out  # wraps as often as needed


def _numbers(values: Any) -> list[float]:
    """``values`` (a tuple, list, array or tensor of numbers) as floats; ``[]`` for
    anything else, a string included."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        return []
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return []


def _class_weights(
    weights: Mapping[int, float] | Sequence[float] | Literal["real"] | None,
    real_counts: np.ndarray,
) -> np.ndarray:
    """Normalised per-class weights; ``real_counts`` [shape=(n_classes,)]: real items per class
    (the ``"real"`` weighting)."""
    n_classes = real_counts.size
    if isinstance(weights, str):
        if weights != "real":
            raise ParameterError(f"weights={weights!r}: the only named weighting is 'real'")
        w = real_counts.astype(np.float64)
    elif weights is None:
        w = np.ones(n_classes)
    elif isinstance(weights, Mapping):
        w = np.zeros(n_classes)
        for c, v in weights.items():
            if not is_int(c):
                raise ParameterError(
                    f"weights are keyed by class index (dataset.index.index(song_id)), got {c!r}"
                )
            if not is_real(v):
                raise ParameterError(f"weight {v!r} for class {c} must be a number")
            if not 0 <= int(c) < n_classes:
                raise ParameterError(f"weight given for class {c}, outside [0, {n_classes})")
            w[int(c)] = float(v)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n_classes,):
            raise ParameterError(f"weights has {w.size} entries for {n_classes} classes")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ParameterError("weights must be finite, non-negative and not all zero")
    return cast(np.ndarray, w / w.sum())


def _apportion(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` closest to ``weights * total`` (largest remainder)."""
    raw = weights * total
    counts: np.ndarray = np.floor(raw).astype(np.int64)
    short = total - int(counts.sum())
    if short:
        counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


def _cycle(items: np.ndarray, n: int, g: torch.Generator) -> np.ndarray:
    """``n`` items from repeated fresh shuffles of ``items``."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    rounds = -(-n // len(items))
    order = [items[torch.randperm(len(items), generator=g).numpy()] for _ in range(rounds)]
    return np.concatenate(order)[:n]
