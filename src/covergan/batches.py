"""Training batches of the class GAN: seeded, resumable and sharded over ranks.

A Dataset is read in a per-epoch permutation seeded from ``(seed, stream, epoch)``, so any
global batch can be rebuilt from its index alone (a checkpoint keeps only the count of
batches seen) and, under ``torchrun``, every rank takes a disjoint share of each global
batch. A DataLoader is used as it is (its sampler, its workers).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torch.utils.data.distributed import DistributedSampler

from covergan.distributed import _rank_world
from covergan.errors import CoverGANWarning, DatasetError, ParameterError
from covergan.training import derive_seed

__all__ = ["batch_stream", "batches_per_epoch", "cycle", "dataset_batches"]


def batches_per_epoch(data: Dataset[Any] | DataLoader[Any], batch_size: int, world: int = 1) -> int:
    """Batches of ``batch_size`` per rank in one pass over ``data`` (a DataLoader's length).

    Raises
    ------
    ParameterError
        ``data`` is neither a sized Dataset nor a DataLoader.
    DatasetError
        Fewer items than one global batch (``batch_size * world``).

    Warns
    -----
    CoverGANWarning
        Several ranks and a DataLoader without a ``DistributedSampler``.
    """
    if isinstance(data, DataLoader):
        if world > 1 and not isinstance(data.sampler, DistributedSampler):
            warnings.warn(
                f"training on {world} ranks with a DataLoader whose sampler is "
                f"{type(data.sampler).__name__}, not a DistributedSampler: every rank sees "
                "the same batches; pass sampler=DistributedSampler(dataset) or the Dataset "
                "itself (fit then shards it)",
                CoverGANWarning,
                stacklevel=3,
            )
        return len(data)
    if not isinstance(data, Dataset):
        raise ParameterError(
            f"data must be a torch Dataset or DataLoader, got {type(data).__name__}"
        )
    try:
        n_items = len(data)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ParameterError("data must be a sized Dataset or a DataLoader") from exc
    if n_items < batch_size * world:
        ranks = f" x {world} ranks" if world > 1 else ""
        raise DatasetError(
            f"the dataset has {n_items} items, fewer than batch_size={batch_size}{ranks}; "
            "pass a smaller batch_size"
        )
    return n_items // (batch_size * world)


def batch_stream(
    data: Dataset[Any] | DataLoader[Any],
    batch_size: int,
    seed: int,
    start: int,
    count: int,
    stream: int,
) -> Iterator[Any]:
    """Global batches ``start .. start + count - 1`` of ``data`` for this rank: a Dataset in
    seeded per-epoch order (resumable from ``start``), a DataLoader cycled as it is."""
    if isinstance(data, DataLoader):
        return cycle(data)
    n_items = len(data)  # type: ignore[arg-type]
    rank, world = _rank_world()
    return dataset_batches(data, n_items, batch_size, seed, start, count, stream, rank, world)


def dataset_batches(
    dataset: Dataset[Any],
    n: int,
    batch_size: int,
    seed: int,
    start: int,
    count: int,
    stream: int = 0,
    rank: int = 0,
    world: int = 1,
) -> Iterator[Any]:
    """Batches ``start .. start + count - 1`` of a seeded per-epoch permutation of ``dataset``.

    Global batch ``b`` is batch ``b % per_epoch`` of epoch ``b // per_epoch``; each epoch's order
    is seeded by ``(seed, epoch)`` and a dataset with ``set_epoch`` (random crops) is told the
    epoch, so any batch can be reproduced from its index alone. Items are fetched in this
    process, so ``set_epoch`` always reaches the dataset that serves them. With ``world``
    ranks a global batch is ``world * batch_size`` consecutive items of the permutation and
    ``rank`` takes its ``rank``-th ``batch_size`` of them: the shards are disjoint.
    """
    per_epoch = n // (batch_size * world)
    set_epoch = getattr(dataset, "set_epoch", None)
    epoch = -1
    order = torch.empty(0, dtype=torch.long)
    for b in range(start, start + count):
        e, i = divmod(b, per_epoch)
        if e != epoch:
            epoch = e
            gen = torch.Generator().manual_seed(derive_seed(seed, stream, e))
            order = torch.randperm(n, generator=gen)
            if callable(set_epoch):
                set_epoch(e)
        lo = (i * world + rank) * batch_size
        idx = order[lo : lo + batch_size].tolist()
        yield default_collate([dataset[k] for k in idx])


def cycle(loader: DataLoader[Any]) -> Iterator[Any]:
    set_epoch = getattr(loader.sampler, "set_epoch", None)  # DistributedSampler's reshuffle
    epoch = 0
    while True:
        if callable(set_epoch):
            set_epoch(epoch)
        epoch += 1
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise DatasetError("the DataLoader yielded no batches")
