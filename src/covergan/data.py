"""Song-labelled CQT datasets, the song-id index, and splits by work.

A *song* (a work, a clique) is what cover-song identification recognises; a
*recording* (a version, a cover) is one item. Datasets hold full tracks and cut
fixed-size windows on access; splits always keep every recording of a song on the
same side.
"""

from __future__ import annotations

import csv
import logging
import os
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from torch.utils.data import Dataset

from covergan._checks import check_count
from covergan._io import atomic_torch_save, check_header, header, read_checkpoint
from covergan.cqt import (
    _AUDIO_FALLBACK_SUFFIXES,
    CQTConfig,
    CQTExtractor,
    PadMode,
    center_crop_or_pad,
    random_crop,
)
from covergan.errors import (
    CheckpointError,
    CoverGANWarning,
    DatasetError,
    ParameterError,
    UnknownSongError,
)
from covergan.store import FeatureStore, StoredTracks, folder_config, is_store

__all__ = [
    "AUDIO_SUFFIXES",
    "CQTDataset",
    "SongId",
    "SongIndex",
    "split_by_song",
    "split_recordings",
]

#: The longest default window, in pooled frames (CQTNet's training crop).
MAX_AUTO_WINDOW = 200

logger = logging.getLogger(__name__)

SongId: TypeAlias = str | int
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
_FEATURE_SUFFIX = ".npy"
#: ``format`` and newest ``format_version`` of the files :meth:`CQTDataset.save` writes.
DATASET_FORMAT = "covergan.dataset"
DATASET_FORMAT_VERSION = 1
Crop = Literal["random", "center"]
Transform = Callable[[torch.Tensor], torch.Tensor]


def _check_song_id(song_id: object) -> SongId:
    if isinstance(song_id, np.integer):
        return int(song_id)
    if isinstance(song_id, np.str_):
        return str(song_id)
    if isinstance(song_id, bool) or not isinstance(song_id, (str, int)):
        raise ParameterError(
            f"song ids must be str or int, got {song_id!r} ({type(song_id).__name__})"
        )
    return song_id


class SongIndex:
    """Map arbitrary song ids (str or int) to contiguous class indices ``0..n-1`` and back.

    Classes are numbered in order of first appearance, so an index built from the
    same labels in the same order is always the same.

    Parameters
    ----------
    labels : iterable of str or int
        One song id per recording (repeats allowed); their counts are kept for
        :meth:`class_counts`.

    Examples
    --------
    >>> idx = SongIndex(["a", "b", "a"])
    >>> idx.index("b"), idx.song_id(0), idx.class_counts()
    (1, 'a', {'a': 2, 'b': 1})
    """

    def __init__(self, labels: Iterable[SongId]) -> None:
        counts: Counter[SongId] = Counter()
        order: dict[SongId, int] = {}
        for label in labels:
            song = _check_song_id(label)
            if song not in order:
                order[song] = len(order)
            counts[song] += 1
        self._to_index = order
        self._ids: tuple[SongId, ...] = tuple(order)
        self._counts = dict(counts)

    @property
    def ids(self) -> tuple[SongId, ...]:
        """Song ids in class-index order."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[SongId]:
        return iter(self._ids)

    def __contains__(self, song_id: object) -> bool:
        return isinstance(song_id, Hashable) and song_id in self._to_index

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SongIndex)
            and self._ids == other._ids
            and self._counts == other._counts
        )

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self._ids[:5])
        more = ", ..." if len(self._ids) > 5 else ""
        return f"SongIndex({len(self)} songs: {head}{more})"

    def index(self, song_id: SongId) -> int:
        """Class index of ``song_id``.

        Raises
        ------
        UnknownSongError
            ``song_id`` is not in the index; the message suggests close ids.
        """
        try:
            return self._to_index[song_id]
        except (KeyError, TypeError):
            raise UnknownSongError(song_id, self._ids) from None

    def song_id(self, class_index: int) -> SongId:
        """Song id of class ``class_index``.

        Raises
        ------
        ParameterError
            ``class_index`` is outside ``[0, len(self))``.
        """
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)):
            raise ParameterError(f"class index must be an int, got {class_index!r}")
        if not 0 <= class_index < len(self._ids):
            raise ParameterError(f"class index {class_index} is outside [0, {len(self._ids)})")
        return self._ids[int(class_index)]

    def encode(self, song_ids: Iterable[SongId]) -> np.ndarray:
        """Class indices of many song ids, as an int64 array [shape=(n,)]."""
        return np.asarray([self.index(s) for s in song_ids], dtype=np.int64)

    def decode(self, class_indices: Iterable[int] | np.ndarray | torch.Tensor) -> list[SongId]:
        """Song ids of many class indices."""
        if isinstance(class_indices, torch.Tensor):
            class_indices = class_indices.tolist()
        return [self.song_id(int(i)) for i in np.asarray(class_indices).ravel()]

    def class_counts(self) -> dict[SongId, int]:
        """Recordings per song, in class-index order."""
        return {s: self._counts.get(s, 0) for s in self._ids}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints (``torch.load(weights_only=True)`` safe)."""
        return {"ids": list(self._ids), "counts": [self._counts.get(s, 0) for s in self._ids]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SongIndex:
        """Rebuild an index from :meth:`to_dict` output."""
        try:
            ids, counts = list(state["ids"]), [int(c) for c in state["counts"]]
        except (KeyError, TypeError, ValueError) as error:
            raise ParameterError(f"not a SongIndex state: {error!r}") from error
        if len(ids) != len(counts) or len(set(ids)) != len(ids):
            raise ParameterError("not a SongIndex state: ids and counts do not match")
        index = cls(ids)
        index._counts = dict(zip(index._ids, counts, strict=True))
        return index


class CQTDataset(Dataset[tuple[torch.Tensor, int]]):
    """A torch ``Dataset`` of song-labelled CQT features.

    Holds full tracks (``features[i]``: float32 ``[n_bins, n_frames]``) and, on
    access, returns ``(x, class_index)`` with ``x`` a float32 tensor
    ``[1, n_bins, window]`` (or the full track ``[1, n_bins, n_frames]`` when
    ``window`` is None), passed through ``transform`` if one is set.

    Window policy
    -------------
    ``crop="random"`` (training): a seeded random ``window``-frame crop; the offset
    of item ``i`` is drawn from ``numpy.random.default_rng((seed, epoch, i))``, so crops
    do not depend on worker count or access order, and :meth:`set_epoch` gives new
    crops each epoch. ``crop="center"`` (evaluation): the centre ``window`` frames.
    Tracks shorter than ``window`` are padded at the end with silence
    (``pad_mode="constant"``, CQTNet's policy) or tiled (``pad_mode="wrap"``).

    Build one with :meth:`from_arrays`, :meth:`from_folder` or :meth:`from_manifest`;
    use :meth:`windows` for a view with other window settings sharing the same arrays.

    Parameters
    ----------
    features : sequence of np.ndarray [shape=(n_bins, n_frames)]
        Full tracks, all with the same ``n_bins``.
    song_ids : sequence of str or int
        Song (work) of each track.
    names : sequence of str, optional
        A name per recording (file path for folder datasets).
    config : CQTConfig, optional
        The recipe the features were made with (checked against ``n_bins``; used
        for the silence value of padding and by consumers that invert features).
    window, crop, pad_mode, seed, transform
        Window settings (see above).

    Raises
    ------
    DatasetError
        No tracks.
    ParameterError
        Lengths differ, a track is not 2-D, bin counts differ or do not match
        ``config``, a value is NaN/inf, or a window setting is invalid.
    """

    def __init__(
        self,
        features: Sequence[np.ndarray],
        song_ids: Sequence[SongId],
        *,
        names: Sequence[str] | None = None,
        config: CQTConfig | None = None,
        window: int | None = None,
        crop: Crop = "random",
        pad_mode: PadMode = "constant",
        seed: int = 0,
        transform: Transform | None = None,
    ) -> None:
        if len(features) == 0:
            raise DatasetError("the dataset is empty: no tracks were given")
        if len(features) != len(song_ids):
            raise ParameterError(f"got {len(features)} feature arrays but {len(song_ids)} song ids")
        if names is not None and len(names) != len(features):
            raise ParameterError(f"got {len(features)} feature arrays but {len(names)} names")
        songs = [_check_song_id(s) for s in song_ids]
        self.features: TrackList | StoredTracks = _checked_tracks(features, config, songs)
        self.song_ids: list[SongId] = songs
        self.names: list[str] = (
            [str(n) for n in names]
            if names is not None
            else [f"item-{i}" for i in range(len(self))]
        )
        self.config = config
        self.index = SongIndex(self.song_ids)
        self.labels: np.ndarray = self.index.encode(self.song_ids)
        self._set_view(window, crop, pad_mode, seed, transform)
        self.epoch = 0
        #: Files that failed to load and were skipped (``on_error="skip"``), with why.
        self.failures: list[str] = []

    def _set_view(
        self,
        window: int | None,
        crop: str,
        pad_mode: str,
        seed: int,
        transform: Transform | None,
    ) -> None:
        _check_view(window, crop, pad_mode, transform)
        self.window = None if window is None else int(window)
        self.crop: Crop = crop  # type: ignore[assignment]
        self.pad_mode: PadMode = pad_mode  # type: ignore[assignment]
        self.seed = int(seed)
        self.transform = transform

    # -- constructors --------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        features: Sequence[np.ndarray],
        song_ids: Sequence[SongId],
        **kwargs: Any,
    ) -> CQTDataset:
        """Dataset from in-memory arrays (same arguments as the constructor)."""
        return cls(features, song_ids, **kwargs)

    @classmethod
    def from_folder(
        cls,
        root: str | os.PathLike[str],
        *,
        extractor: CQTExtractor | None = None,
        n_jobs: int = 1,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
        **kwargs: Any,
    ) -> CQTDataset:
        """Dataset from a folder laid out as ``root/<song_id>/<recording>.<ext>``.

        ``<ext>`` is one of ``wav, flac, ogg, mp3`` (extracted with ``extractor``,
        cached in ``cache_dir``) or ``npy`` (CQTNet-style precomputed features
        ``[n_bins, n_frames]``, loaded with no audio decoding at all). Song ids are
        the folder names; hidden files and other extensions are ignored.

        A folder that is a :class:`~covergan.store.FeatureStore` (``covergan extract``
        writes one) opens from its index in seconds whatever its size: the tracks are
        memory-mapped on access, and songs are the index's ids (``on_error="skip"`` leaves
        out indexed files that are missing or truncated).

        Parameters
        ----------
        root : str or PathLike
        extractor : CQTExtractor, optional
            Defaults to one with the recipe of ``root/cqt_config.json`` (which ``covergan
            extract`` and ``covergan sample`` write beside their features) when there is one,
            else ``CQTExtractor()``; its config is attached to the dataset. One given is used
            as it is in a plain folder (a store refuses another recipe than its own).
        n_jobs, cache_dir, progress, on_error
            Passed to :meth:`CQTExtractor.extract_many`. With ``on_error="skip"``
            failed files are left out (and listed in ``dataset.failures``).
        **kwargs
            Window settings for the constructor.

        Raises
        ------
        DatasetError
            ``root`` is missing or not a folder, it has no song folders (e.g. files
            directly under ``root``), a song folder has no usable file, nothing
            could be loaded, or its ``cqt_config.json`` is not a readable recipe
            (:class:`~covergan.store.StoreError`).
        ExtractionError
            A file failed to load and ``on_error="raise"``.
        """
        root_path = Path(root).expanduser()
        if not root_path.exists():
            raise DatasetError(f"dataset folder not found: {root_path}")
        if not root_path.is_dir():
            raise DatasetError(f"expected a dataset folder, got a file: {root_path}")
        if is_store(root_path):
            return _from_store(root_path, extractor, on_error, **kwargs)
        if extractor is None and (config := folder_config(root_path)) is not None:
            extractor = CQTExtractor(config)
        paths, songs = folder_sources(root_path)
        return _from_paths(
            cls,
            paths,
            songs,
            extractor=extractor,
            n_jobs=n_jobs,
            cache_dir=cache_dir,
            progress=progress,
            on_error=on_error,
            **kwargs,
        )

    @classmethod
    def from_manifest(
        cls,
        manifest: str | os.PathLike[str],
        *,
        extractor: CQTExtractor | None = None,
        n_jobs: int = 1,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
        **kwargs: Any,
    ) -> CQTDataset:
        """Dataset from a CSV manifest with a header row and columns ``path,song_id``.

        Relative paths are resolved against the manifest's folder; files may be audio
        or ``.npy`` features as in :meth:`from_folder`. Extra columns are ignored.

        Raises
        ------
        DatasetError
            The manifest is missing, lacks the ``path`` or ``song_id`` column, has an
            empty cell, or lists no files.
        ExtractionError
            A file failed to load and ``on_error="raise"``.
        """
        paths, songs = manifest_sources(manifest)
        return _from_paths(
            cls,
            paths,
            songs,
            extractor=extractor,
            n_jobs=n_jobs,
            cache_dir=cache_dir,
            progress=progress,
            on_error=on_error,
            **kwargs,
        )

    # -- torch Dataset -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if isinstance(i, (int, np.integer)) and -len(self) <= i < len(self):
            i = int(i) % len(self)
        else:
            raise IndexError(f"index {i!r} out of range for a dataset of {len(self)} items")
        x = self.features[i]
        if self.window is not None:
            pad_value = self.silence_value
            if self.crop == "random":
                rng = np.random.default_rng((self.seed, self.epoch, i))
                x = random_crop(
                    x, self.window, rng=rng, pad_mode=self.pad_mode, pad_value=pad_value
                )
            else:
                x = center_crop_or_pad(x, self.window, pad_mode=self.pad_mode, pad_value=pad_value)
        tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, int(self.labels[i])

    def set_epoch(self, epoch: int) -> None:
        """Draw new random crops: item ``i`` uses ``default_rng((seed, epoch, i))``."""
        self.epoch = int(epoch)

    # -- views and summaries -------------------------------------------------------------

    @property
    def n_bins(self) -> int:
        """Frequency bins per track."""
        return self.features.n_bins

    @property
    def stored(self) -> bool:
        """Whether the tracks are memory-mapped from a :class:`~covergan.store.FeatureStore`
        (read on access) rather than held in memory."""
        return isinstance(self.features, StoredTracks)

    @property
    def n_songs(self) -> int:
        """Number of distinct songs (classes)."""
        return len(self.index)

    @property
    def silence_value(self) -> float:
        """Feature value of silence, used for padding (0, or ``-top_db`` for dB features)."""
        return self.config.silence_value if self.config is not None else 0.0

    def class_counts(self) -> dict[SongId, int]:
        """Recordings per song, in class-index order."""
        return self.index.class_counts()

    def lengths(self) -> np.ndarray:
        """Frames per track, int64 [shape=(n_items,)] (a store's come from its index)."""
        return self.features.lengths()

    def silent(self) -> np.ndarray:
        """Which tracks are silent (every value the same), bool [shape=(n_items,)]; a store's
        come from its index, in-memory tracks are read."""
        return self.features.silent()

    def default_window(self) -> int:
        """The training window when none is given: the median track length, capped at
        :data:`MAX_AUTO_WINDOW` frames (CQTNet's training crop), rounded down to a multiple of
        4, at least 8."""
        median = int(np.median(self.lengths()))
        return max(8, min(MAX_AUTO_WINDOW, median) // 4 * 4)

    def windows(
        self,
        window: int | None,
        *,
        crop: Crop | None = None,
        pad_mode: PadMode | None = None,
        seed: int | None = None,
        transform: Transform | Literal["keep"] | None = "keep",
    ) -> CQTDataset:
        """A view with other window settings, sharing this dataset's arrays and labels.

        Arguments left as None (or ``transform="keep"``) keep this dataset's settings.
        """
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._set_view(
            window,
            crop if crop is not None else self.crop,
            pad_mode if pad_mode is not None else self.pad_mode,
            seed if seed is not None else self.seed,
            self.transform if transform == "keep" else transform,
        )
        return view

    def subset(self, indices: Sequence[int] | np.ndarray) -> CQTDataset:
        """A new dataset of the given items; class indices are renumbered contiguously.

        Raises
        ------
        DatasetError
            ``indices`` is empty.
        ParameterError
            An index is out of range.
        """
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64).ravel()]
        bad = [i for i in idx if not 0 <= i < len(self)]
        if bad:
            raise ParameterError(f"subset indices out of range [0, {len(self)}): {bad[:5]}")
        return type(self)(
            self.features.take(idx),
            [self.song_ids[i] for i in idx],
            names=[self.names[i] for i in idx],
            config=self.config,
            window=self.window,
            crop=self.crop,
            pad_mode=self.pad_mode,
            seed=self.seed,
            transform=self.transform,
        )

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the tracks, song ids, names and feature recipe to one file, atomically.

        Extract once and reuse the features elsewhere: :meth:`load` needs neither the audio
        nor librosa (a GPU machine without the audio stack, a later session). The window
        settings and ``transform`` are not stored; :meth:`load` returns full tracks, and
        :meth:`windows` sets a view again. The file is a torch file of tensors and plain
        containers (``torch.load(weights_only=True)`` safe).

        Parameters
        ----------
        path : str or PathLike
            Target file (``.pt`` by convention); missing folders are created. An existing
            file is replaced only once the new one is complete.

        Returns
        -------
        Path
            The file written.
        """
        state = {
            **header(DATASET_FORMAT, DATASET_FORMAT_VERSION),
            "features": [_writable_tensor(x) for x in self.features],
            "song_ids": list(self.song_ids),
            "names": list(self.names),
            "config": self.config.to_dict() if self.config is not None else None,
        }
        return atomic_torch_save(state, path, make_parents=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CQTDataset:
        """Read a dataset written by :meth:`save` (full tracks, default view settings).

        Returns
        -------
        CQTDataset
            Tracks float32 ``[n_bins, n_frames]`` in the saved order, with their song ids,
            names and :class:`~covergan.cqt.CQTConfig`.

        Raises
        ------
        CheckpointError
            Missing, truncated, corrupt or foreign file, objects other than tensors and
            plain containers, a newer ``format_version``, or fields of the wrong type.
        """
        source = Path(path).expanduser()
        features, song_ids, names, config = _saved_fields(source)
        try:
            return cls(
                [x.numpy() for x in features],
                song_ids,
                names=names,
                config=CQTConfig.from_dict(config) if config is not None else None,
            )
        except (ParameterError, DatasetError) as exc:
            raise CheckpointError(f"{source} holds an invalid dataset: {exc}") from exc

    def __repr__(self) -> str:
        counts = np.asarray(list(self.class_counts().values()))
        return (
            f"CQTDataset({len(self)} recordings of {self.n_songs} songs, "
            f"{counts.min()}-{counts.max()} per song, {self.n_bins} bins, window={self.window})"
        )


class TrackList(list[np.ndarray]):
    """In-memory tracks (float32 ``[n_bins, n_frames]``, checked) with the interface of a
    store's :class:`~covergan.store.StoredTracks`: ``n_bins``, ``lengths()``, ``silent()``,
    ``take()``."""

    @property
    def n_bins(self) -> int:
        return int(self[0].shape[0])

    def lengths(self) -> np.ndarray:
        return np.asarray([x.shape[1] for x in self], dtype=np.int64)

    def silent(self) -> np.ndarray:
        return np.asarray([float(np.ptp(x)) == 0.0 for x in self], dtype=bool)

    def take(self, indices: Sequence[int]) -> TrackList:
        return TrackList(self[int(i)] for i in indices)


def _checked_tracks(
    features: Sequence[Any], config: CQTConfig | None, song_ids: Sequence[SongId]
) -> TrackList | StoredTracks:
    """The dataset's tracks: a store's as they are (validated when written, nothing is read),
    others checked and made float32, all with one bin count (``config``'s when given); a
    message names the track by its position and song."""
    if isinstance(features, (StoredTracks, TrackList)):  # checked when written or first given
        if config is not None and features.n_bins != config.n_bins:
            what = "the store has" if isinstance(features, StoredTracks) else "the tracks have"
            raise ParameterError(
                f"{what} {features.n_bins} bins, the CQT config n_bins={config.n_bins}"
            )
        return features
    tracks = TrackList(
        _check_track(x, f"track {i} (song {song_ids[i]!r})", config.n_bins if config else None)
        for i, x in enumerate(features)
    )
    n_bins = {x.shape[0] for x in tracks}
    if len(n_bins) > 1:
        raise ParameterError(f"tracks have different bin counts: {sorted(n_bins)}")
    return tracks


def _check_view(window: object, crop: object, pad_mode: object, transform: object) -> None:
    """Window settings of a dataset view are valid."""
    check_count("window", window, 1, optional=True)
    if crop not in ("random", "center"):
        raise ParameterError(f"crop={crop!r} must be 'random' or 'center'")
    if pad_mode not in ("constant", "wrap"):
        raise ParameterError(f"pad_mode={pad_mode!r} must be 'constant' or 'wrap'")
    if transform is not None and not callable(transform):
        raise ParameterError("transform must be callable")


def _from_store(
    root: Path, extractor: CQTExtractor | None, on_error: Literal["raise", "skip"], **kwargs: Any
) -> CQTDataset:
    """:meth:`CQTDataset.from_folder` of a feature store: lazy, with the store's recipe."""
    return store_dataset(FeatureStore.open(root, on_error=on_error), extractor, **kwargs)


def store_dataset(store: FeatureStore, extractor: CQTExtractor | None, **kwargs: Any) -> CQTDataset:
    """``store.dataset(**kwargs)``, once ``extractor`` (when given) has the store's recipe."""
    if extractor is not None and store.config is not None and extractor.config != store.config:
        raise ParameterError(
            f"{store.root} is a feature store made with another recipe than the extractor's "
            f"({store.config} vs {extractor.config}); leave extractor= out to use its own"
        )
    return store.dataset(**kwargs)


def _from_paths(
    cls: type[CQTDataset],
    paths: list[Path],
    songs: list[SongId],
    *,
    extractor: CQTExtractor | None,
    n_jobs: int,
    cache_dir: str | os.PathLike[str] | None,
    progress: bool,
    on_error: Literal["raise", "skip"],
    **kwargs: Any,
) -> CQTDataset:
    """A ``cls`` of audio and ``.npy`` files (:meth:`CQTDataset.from_folder` and
    :meth:`~CQTDataset.from_manifest`); failed files raise or are listed in ``failures``."""
    extractor = extractor if extractor is not None else CQTExtractor()
    feats: list[np.ndarray | None] = [None] * len(paths)
    failures: list[str] = []
    audio = [i for i, p in enumerate(paths) if p.suffix.lower() != _FEATURE_SUFFIX]
    for i, p in enumerate(paths):
        if p.suffix.lower() == _FEATURE_SUFFIX:
            try:
                feats[i] = _load_npy(p, extractor.config.n_bins)
            except DatasetError as error:
                if on_error == "raise":
                    raise
                failures.append(str(error))
    if audio:
        result = extractor.extract_many(
            [paths[i] for i in audio],
            n_jobs=n_jobs,
            cache_dir=cache_dir,
            progress=progress,
            on_error=on_error,
        )
        for i, f in zip(audio, result.features, strict=True):
            feats[i] = f
        failures += [str(f) for f in result.failures]
    keep = [i for i, f in enumerate(feats) if f is not None]
    if not keep:
        raise DatasetError(f"no file could be loaded ({len(paths)} tried)")
    lost = sorted({songs[i] for i in range(len(paths))} - {songs[i] for i in keep}, key=str)
    if lost:
        warnings.warn(
            f"every file of {len(lost)} song(s) failed and they were left out: {lost[:10]}",
            CoverGANWarning,
            stacklevel=3,
        )
    dataset = cls(
        [feats[i] for i in keep],  # type: ignore[misc]
        [songs[i] for i in keep],
        names=[str(paths[i]) for i in keep],
        config=extractor.config,
        **kwargs,
    )
    dataset.failures = failures
    return dataset


def _saved_fields(source: Path) -> tuple[list[torch.Tensor], list[Any], list[Any], Any]:
    """Tracks, song ids, names and config dict of a :meth:`CQTDataset.save` file, checked."""
    state = check_header(
        read_checkpoint(source, "dataset"),
        DATASET_FORMAT,
        DATASET_FORMAT_VERSION,
        str(source),
        "dataset",
    )
    features, song_ids, names = state.get("features"), state.get("song_ids"), state.get("names")
    config = state.get("config")
    if not (
        isinstance(features, list)
        and all(isinstance(x, torch.Tensor) for x in features)
        and isinstance(song_ids, list)
        and isinstance(names, list)
        and (config is None or isinstance(config, dict))
    ):
        raise CheckpointError(f"{source} is a dataset file with missing or mistyped fields")
    return features, song_ids, names, config


def _writable_tensor(x: np.ndarray) -> torch.Tensor:
    """A float32 tensor of ``x``, sharing its memory when it is a writable float32 array (a
    memory-mapped store track is read into a copy)."""
    if x.dtype == np.float32 and x.flags.writeable and not isinstance(x, np.memmap):
        return torch.from_numpy(x)
    return torch.from_numpy(np.array(x, dtype=np.float32))


def folder_sources(root: Path) -> tuple[list[Path], list[SongId]]:
    """Files and song ids of a ``root/<song_id>/<recording>.<ext>`` folder (audio or ``.npy``).

    Raises
    ------
    DatasetError
        No song folders (e.g. files directly under ``root``), or a song folder with no usable
        file.
    """
    root_path = Path(root)
    song_dirs = sorted(p for p in root_path.iterdir() if p.is_dir() and not _hidden(p))
    if not song_dirs:
        loose = [p.name for p in root_path.iterdir() if p.is_file() and not _hidden(p)]
        hint = (
            f" (found {len(loose)} files directly in it, e.g. {loose[0]!r}; put each song's "
            "recordings in a sub-folder named after the song, or use from_manifest)"
            if loose
            else ""
        )
        raise DatasetError(
            f"unknown dataset layout in {root_path}: expected root/<song_id>/<recording>"
            f".{{{','.join(s[1:] for s in (*AUDIO_SUFFIXES, _FEATURE_SUFFIX))}}}{hint}"
        )
    paths: list[Path] = []
    songs: list[SongId] = []
    unread: Counter[str] = Counter()  # audio the scan leaves to librosa's fallback
    for song_dir in song_dirs:
        entries = [p for p in song_dir.iterdir() if p.is_file() and not _hidden(p)]
        files = sorted(p for p in entries if p.suffix.lower() in (*AUDIO_SUFFIXES, _FEATURE_SUFFIX))
        here = Counter(p.suffix.lower() for p in entries if p.suffix.lower() in _UNSCANNED_AUDIO)
        unread.update(here)
        if not files:
            raise DatasetError(
                f"song folder {song_dir} has no usable file (expected "
                f"{', '.join((*AUDIO_SUFFIXES, _FEATURE_SUFFIX))}){_unread_hint(here)}"
            )
        paths += files
        songs += [song_dir.name] * len(files)
    if unread:
        warnings.warn(
            f"{sum(unread.values())} audio files left out of {root_path}{_unread_hint(unread)}",
            CoverGANWarning,
            stacklevel=3,
        )
    return paths, songs


#: Audio that librosa can read only through its fallback (audioread, ffmpeg): folder scans
#: leave it out, and say so.
_UNSCANNED_AUDIO = tuple(sorted(_AUDIO_FALLBACK_SUFFIXES - set(AUDIO_SUFFIXES)))


def _unread_hint(unread: Counter[str]) -> str:
    if not unread:
        return ""
    kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(unread.items()))
    return (
        f"; {kinds} files are not scanned (they need librosa's audioread fallback): convert "
        "them, or list them in a manifest (from_manifest), which reads any path"
    )


def manifest_sources(manifest: str | os.PathLike[str]) -> tuple[list[Path], list[SongId]]:
    """Files and song ids of a CSV manifest ``path,song_id`` (relative paths resolved against
    its folder).

    Raises
    ------
    DatasetError
        The manifest is missing, lacks a column, has an empty cell, or lists no files.
    """
    manifest_path = Path(manifest).expanduser()
    if not manifest_path.is_file():
        raise DatasetError(f"manifest not found: {manifest_path}")
    with open(manifest_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "song_id"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(
                f"manifest {manifest_path} lacks column(s) {sorted(missing)}; "
                f"its header is {reader.fieldnames}"
            )
        rows = list(reader)
    if not rows:
        raise DatasetError(f"manifest {manifest_path} lists no files")
    paths: list[Path] = []
    songs: list[SongId] = []
    for line, row in enumerate(rows, start=2):
        path, song = (row.get("path") or "").strip(), (row.get("song_id") or "").strip()
        if not path or not song:
            raise DatasetError(f"{manifest_path}, line {line}: empty path or song_id")
        p = Path(path).expanduser()
        paths.append(p if p.is_absolute() else manifest_path.parent / p)
        songs.append(song)
    return paths, songs


def _hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _check_track(x: object, what: str, n_bins: int | None) -> np.ndarray:
    """``x`` as checked float32 features ``[n_bins, n_frames]``; ``what`` names it in errors."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ParameterError(f"{what}: expected features [n_bins, n_frames], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ParameterError(f"{what}: features must be real numbers, got dtype {arr.dtype}")
    if n_bins is not None and arr.shape[0] != n_bins:
        raise ParameterError(
            f"{what}: {arr.shape[0]} bins, but the CQT config has n_bins={n_bins} "
            f"(features must be [n_bins, n_frames]; transpose [n_frames, n_bins] arrays)"
        )
    if arr.shape[1] == 0:
        raise ParameterError(f"{what}: has 0 frames")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{what}: features contain NaN or inf")
    return arr


def _load_npy(path: Path, n_bins: int) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DatasetError(f"cannot read feature file {path}: {error}") from error
    try:
        return _check_track(arr, str(path), n_bins)
    except ParameterError as error:
        raise DatasetError(str(error)) from error


def split_by_song(
    dataset: CQTDataset,
    test_size: float | int = 0.2,
    *,
    seed: int = 0,
) -> tuple[CQTDataset, CQTDataset]:
    """Split a dataset by song: every recording of a song lands on the same side.

    Parameters
    ----------
    dataset : CQTDataset
    test_size : float or int
        Fraction of songs (``0 < test_size < 1``) or number of songs (int) held out.
    seed : int
        Which songs are held out.

    Returns
    -------
    train, test : CQTDataset
        Disjoint in songs; class indices are renumbered within each.

    Raises
    ------
    DatasetError
        Fewer than two songs, or the split would leave a side empty.
    ParameterError
        ``test_size`` out of range.
    """
    songs = list(dataset.index.ids)
    if len(songs) < 2:
        raise DatasetError(f"cannot split {len(songs)} song(s) by song; need at least 2")
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise ParameterError(f"test_size={test_size} must be in (0, 1) as a fraction")
        n_test = max(1, round(test_size * len(songs)))
    elif isinstance(test_size, int) and not isinstance(test_size, bool):
        n_test = test_size
    else:
        raise ParameterError(f"test_size={test_size!r} must be a float fraction or an int count")
    if not 0 < n_test < len(songs):
        raise DatasetError(
            f"test_size={test_size} gives {n_test} of {len(songs)} songs: both sides need one"
        )
    rng = np.random.default_rng(seed)
    test_classes = set(rng.permutation(len(songs))[:n_test].tolist())
    is_test = np.isin(dataset.labels, list(test_classes))
    return dataset.subset(np.flatnonzero(~is_test)), dataset.subset(np.flatnonzero(is_test))


def split_recordings(
    dataset: CQTDataset,
    *,
    holdout: int = 1,
    min_recordings: int = 2,
    seed: int = 0,
) -> tuple[CQTDataset, CQTDataset]:
    """Hold out recordings of songs that stay in training (the "seen song" setting).

    For every song with at least ``min_recordings`` recordings, ``holdout`` random
    recordings go to the test side; all other recordings stay in training. Use
    :func:`split_by_song` for unseen-song evaluation.

    Returns
    -------
    train, test : CQTDataset
        The test side's songs are all in the training side; both share the
        training side's song order only through song ids (class indices are
        renumbered within each).

    Raises
    ------
    DatasetError
        No song has enough recordings to hold any out.
    ParameterError
        ``holdout < 1`` or ``min_recordings <= holdout``.
    """
    if holdout < 1 or min_recordings <= holdout:
        raise ParameterError(
            f"need holdout >= 1 and min_recordings > holdout, got holdout={holdout}, "
            f"min_recordings={min_recordings}"
        )
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for c in range(dataset.n_songs):
        items = np.flatnonzero(dataset.labels == c)
        if len(items) >= min_recordings:
            test += rng.choice(items, size=holdout, replace=False).tolist()
    if not test:
        raise DatasetError(f"no song has {min_recordings} or more recordings to hold out")
    train = np.setdiff1d(np.arange(len(dataset)), test)
    return dataset.subset(train), dataset.subset(sorted(test))
