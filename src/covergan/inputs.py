"""Every dataset form :meth:`covergan.Augmenter.fit` accepts, turned into a
:class:`~covergan.data.CQTDataset`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from covergan.cqt import CQTExtractor
from covergan.data import CQTDataset, store_dataset
from covergan.errors import ParameterError
from covergan.store import FeatureStore

__all__ = ["DatasetLike", "as_dataset"]

#: What :func:`as_dataset` (and so :meth:`covergan.Augmenter.fit`) accepts.
DatasetLike = (
    "CQTDataset | CoverSet | FeatureStore | Iterable[tuple[np.ndarray, SongId]] | "
    "Mapping[SongId, Sequence[np.ndarray]] | str | os.PathLike[str]"
)


def as_dataset(
    dataset: Any,
    extractor: CQTExtractor | None = None,
    *,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> CQTDataset:
    """A :class:`~covergan.data.CQTDataset` of ``dataset``.

    Parameters
    ----------
    dataset : DatasetLike
        A ``CQTDataset`` (returned as it is); a :class:`~covergan.store.FeatureStore` (read
        lazily, with its own recipe); a :class:`~covergan.datasets.CoverSet`
        (audio, extracted with ``extractor``); a folder
        ``ROOT/<song_id>/<recording>.<npy|wav|flac|ogg|mp3>``; a mapping
        ``song_id -> [features, ...]``; or an iterable of ``(features, song_id)`` pairs.
        Features are ``[n_bins, n_frames]`` arrays in ``extractor``'s format.
    extractor : CQTExtractor, optional
        Extracts audio, and gives arrays their feature format; default ``CQTExtractor()``.
        A feature store brings its own recipe: an extractor given with one must match it.
    n_jobs, cache_dir, progress
        Extraction processes, feature cache and progress bars for folders.

    Returns
    -------
    CQTDataset

    Raises
    ------
    ParameterError
        Any other type, or an iterable that does not yield pairs (plus what
        :meth:`CQTDataset.from_arrays` and :meth:`CQTDataset.from_folder` raise).
    """
    from covergan.datasets.toy import CoverSet

    if isinstance(dataset, CQTDataset):
        return dataset
    if isinstance(dataset, FeatureStore):
        return store_dataset(dataset, extractor)
    if isinstance(dataset, (str, os.PathLike)):
        return CQTDataset.from_folder(
            dataset, extractor=extractor, n_jobs=n_jobs, cache_dir=cache_dir, progress=progress
        )
    extractor = extractor if extractor is not None else CQTExtractor()
    if isinstance(dataset, CoverSet):
        return dataset.to_dataset(extractor, progress=progress)
    config = extractor.config
    if isinstance(dataset, Mapping):
        feats = [x for song in dataset for x in dataset[song]]
        songs = [song for song in dataset for _ in dataset[song]]
        return CQTDataset.from_arrays(feats, songs, config=config)
    if isinstance(dataset, Iterable) and not isinstance(dataset, (bytes, np.ndarray)):
        pairs = list(dataset)
        if not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
            raise ParameterError("an iterable dataset must yield (features, song_id) pairs")
        return CQTDataset.from_arrays([p[0] for p in pairs], [p[1] for p in pairs], config=config)
    raise ParameterError(
        "dataset must be a CQTDataset, a FeatureStore, a CoverSet, an iterable of "
        "(features, song_id) "
        "pairs, a mapping song_id -> list of feature arrays, or a folder path; got "
        f"{type(dataset).__name__}"
    )
