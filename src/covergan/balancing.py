"""Class balancing with a fitted augmenter: how many samples each song needs, and the
balanced dataset (:meth:`covergan.Augmenter.plan` and :meth:`~covergan.Augmenter.balance`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from covergan._checks import is_real
from covergan.data import CQTDataset, SongId
from covergan.errors import DatasetError, ParameterError
from covergan.sampling import AugmentedDataset, SyntheticBank
from covergan.synthesis.base import Space
from covergan.training import derive_seed
from covergan.versions import min_reference_frames

if TYPE_CHECKING:
    from covergan.augmenter_sampling import AugmenterSampling

__all__ = ["Target", "balance", "plan_counts"]

Target = Literal["max", "median"] | int


def plan_counts(
    counts: Mapping[SongId, int], target: Target, max_ratio: float | None
) -> dict[SongId, int]:
    """Synthetic samples each song needs to reach ``target`` recordings.

    Parameters
    ----------
    counts : mapping song id -> int
        Real recordings per song.
    target : "max", "median" or int
        Recordings per song to reach: the largest count, the median count (rounded up), or
        a number.
    max_ratio : float, optional
        At most ``floor(max_ratio * n_real)`` synthetic samples per song.

    Returns
    -------
    dict song id -> int
        Every song of ``counts``, in its order; 0 for songs at or above target.

    Raises
    ------
    ParameterError
        An unknown target, a negative int target, or ``max_ratio < 0``.
    """
    values = np.asarray(list(counts.values()))
    if target == "max":
        goal = int(values.max())
    elif target == "median":
        goal = int(np.ceil(np.median(values)))
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool) and target >= 0:
        goal = int(target)
    else:
        raise ParameterError(f"target={target!r} must be 'max', 'median' or an int >= 0")
    if max_ratio is not None and not (
        is_real(max_ratio) and np.isfinite(max_ratio) and max_ratio >= 0
    ):
        raise ParameterError(f"max_ratio={max_ratio!r} must be a number >= 0")
    plan: dict[SongId, int] = {}
    for song, n_real in counts.items():
        need = max(0, goal - n_real)
        if max_ratio is not None:
            need = min(need, int(np.floor(max_ratio * n_real)))
        plan[song] = need
    return plan


def balance(
    aug: AugmenterSampling,
    dataset: CQTDataset,
    *,
    method: str,
    target: Target = "median",
    max_ratio: float | None = None,
    seed: int | None = None,
    bank_dir: str | os.PathLike[str] | None = None,
    return_flag: bool = True,
) -> AugmentedDataset:
    """``dataset`` plus ``aug``'s samples for its songs below ``target`` (the work of
    :meth:`covergan.Augmenter.balance`, which documents the arguments and errors)."""
    if not isinstance(dataset, CQTDataset):
        raise ParameterError(f"balance needs a CQTDataset, got {type(dataset).__name__}")
    n_bins, window = aug.config_.n_bins, aug.window_
    if dataset.n_bins != n_bins:
        raise ParameterError(f"the dataset has {dataset.n_bins} bins, the augmenter makes {n_bins}")
    if dataset.window is None:
        dataset = dataset.windows(window, crop="random")
    elif dataset.window != window:
        raise ParameterError(
            f"the dataset's window is {dataset.window} frames but synthetic samples are "
            f"{window}; use dataset.windows({window}) or refit with window={dataset.window}"
        )
    counts = plan_counts(dataset.class_counts(), target, max_ratio)
    needed = {s: n for s, n in counts.items() if n > 0}
    if not needed:
        return AugmentedDataset.from_tensors(dataset, {}, return_flag=return_flag)
    if bank_dir is not None:
        bank = SyntheticBank.build(
            _MethodSource(aug, method),
            needed,
            bank_dir,
            index=dataset.index,
            seed=seed or 0,
            transform=dataset.transform,
        )
        return AugmentedDataset(dataset, bank, return_flag=return_flag)
    if method == "versions":
        samples = _versions_of_recordings(aug, dataset, needed, seed)
    else:
        samples = aug.sample_many(needed, method=method, seed=seed)
    return AugmentedDataset.from_tensors(
        dataset, samples, transform=dataset.transform, return_flag=return_flag
    )


def _versions_of_recordings(
    aug: AugmenterSampling, dataset: CQTDataset, counts: Mapping[SongId, int], seed: int | None
) -> dict[SongId, torch.Tensor]:
    """``counts[song]`` versions of each song, spread evenly over its recordings in
    ``dataset`` that are long enough to be references (so songs the augmenter never saw can
    be balanced too); a DatasetError, before any sampling, for a song with none."""
    min_frames = min_reference_frames(aug.window_)
    lengths = dataset.lengths()
    items: dict[SongId, list[int]] = {}
    for i, song in enumerate(dataset.song_ids):
        items.setdefault(song, []).append(i)
    for song in counts:
        longest = int(lengths[items[song]].max())
        if longest < min_frames:
            raise DatasetError(
                f"song {song!r} needs synthetic versions but every recording of it is shorter "
                f"than {min_frames} frames (the longest has {longest}), a quarter of the "
                f"{aug.window_}-frame window, so it has no reference to make them of: leave it "
                "out of the dataset, or balance it with method='gan'"
            )
    out: dict[SongId, torch.Tensor] = {}
    for song, n in counts.items():
        recordings = [i for i in items[song] if lengths[i] >= min_frames]
        share = [n // len(recordings) + (k < n % len(recordings)) for k in range(len(recordings))]
        parts = [
            aug.sample_like(
                dataset.features[i], c, seed=None if seed is None else derive_seed(seed, i)
            )
            for i, c in zip(recordings, share, strict=True)
            if c > 0
        ]
        out[song] = torch.cat(parts)
    return out


class _MethodSource:
    """An augmenter's :meth:`~covergan.Augmenter.sample_many` with a fixed ``method`` (for
    :class:`~covergan.sampling.SyntheticBank`)."""

    def __init__(self, aug: AugmenterSampling, method: str) -> None:
        self.aug, self.method = aug, method

    def sample_many(
        self, counts: Mapping[SongId, int], *, space: Space = "features", seed: int | None = None
    ) -> dict[SongId, torch.Tensor]:
        return self.aug.sample_many(counts, method=self.method, space=space, seed=seed)
