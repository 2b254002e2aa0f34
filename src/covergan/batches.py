"""Training batches: seeded, resumable, sharded over ranks, and drawn ahead by workers.

A Dataset is read in a per-epoch permutation seeded from ``(seed, stream, epoch)``, so any
global batch can be rebuilt from its index alone (a checkpoint keeps only the count of
batches seen) and, under ``torchrun``, every rank takes a disjoint share of each global
batch. A DataLoader is used as it is (its sampler, its workers).

:func:`prefetch` runs any such per-step draw (a class-GAN batch, a version model's pairs) in
DataLoader worker processes, ahead of the training step, in step order: since a draw depends
only on its step index, the batches are the ones one process would make, whatever the number
of workers. Reading windows from a memory-mapped store then overlaps the model's compute.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate, get_worker_info
from torch.utils.data.distributed import DistributedSampler

from covergan._checks import check_count
from covergan.distributed import _rank_world
from covergan.errors import CoverGANWarning, DatasetError, ParameterError
from covergan.training import derive_seed

__all__ = [
    "DatasetBatch",
    "batch_stream",
    "batches_per_epoch",
    "cycle",
    "dataset_batches",
    "prefetch",
]

T = TypeVar("T")


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
    workers: int = 0,
) -> Iterator[Any]:
    """Global batches ``start .. start + count - 1`` of ``data`` for this rank: a Dataset in
    seeded per-epoch order (resumable from ``start``; drawn by ``workers`` processes when > 0),
    a DataLoader cycled as it is."""
    if isinstance(data, DataLoader):
        return cycle(data)
    n_items = len(data)  # type: ignore[arg-type]
    rank, world = _rank_world()
    return dataset_batches(
        data, n_items, batch_size, seed, start, count, stream, rank, world, workers
    )


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
    workers: int = 0,
) -> Iterator[Any]:
    """Batches ``start .. start + count - 1`` of a seeded per-epoch permutation of ``dataset``
    (see :class:`DatasetBatch`), drawn by ``workers`` processes when > 0."""
    draw = DatasetBatch(dataset, n, batch_size, seed, stream, rank, world)
    return prefetch(draw, start, count, workers)


class DatasetBatch:
    """Global batch ``b`` of a dataset, this rank's share, as a function of ``b`` alone.

    Global batch ``b`` is batch ``b % per_epoch`` of epoch ``b // per_epoch``; each epoch's order
    is seeded by ``(seed, stream, epoch)`` and a dataset with ``set_epoch`` (random crops) is
    told the epoch before its items are read, in whichever process reads them. With ``world``
    ranks a global batch is ``world * batch_size`` consecutive items of the permutation and
    ``rank`` takes its ``rank``-th ``batch_size`` of them: the shards are disjoint.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        n: int,
        batch_size: int,
        seed: int,
        stream: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.dataset, self.n, self.batch_size = dataset, n, batch_size
        self.seed, self.stream, self.rank, self.world = seed, stream, rank, world
        self.per_epoch = n // (batch_size * world)
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def __call__(self, b: int) -> Any:
        e, i = divmod(b, self.per_epoch)
        if e != self._epoch:
            self._epoch = e
            gen = torch.Generator().manual_seed(derive_seed(self.seed, self.stream, e))
            self._order = torch.randperm(self.n, generator=gen)
            set_epoch = getattr(self.dataset, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(e)
        lo = (i * self.world + self.rank) * self.batch_size
        idx = self._order[lo : lo + self.batch_size].tolist()
        return default_collate([self.dataset[k] for k in idx])


def prefetch(draw: Callable[[int], T], start: int, count: int, workers: int = 0) -> Iterator[T]:
    """``draw(start), draw(start + 1), ..., draw(start + count - 1)``, in that order.

    With ``workers > 0`` the draws run ahead in that many DataLoader worker processes (two
    each in flight), worker ``k`` taking steps ``start + k, start + k + workers, ...``; the
    results are the same as in this process when ``draw`` depends only on its argument. On
    platforms that spawn rather than fork, ``draw`` must pickle.

    Raises
    ------
    ParameterError
        ``workers`` is not a non-negative integer.
    """
    check_count("workers", workers, 0)
    if workers == 0 or count <= 1:
        return (draw(step) for step in range(start, start + count))
    loader = DataLoader(
        _Draws(draw, start, count), batch_size=None, num_workers=min(workers, count)
    )
    return iter(loader)


class _Draws(IterableDataset[T], Generic[T]):
    """``draw(step)`` for this worker's share of ``range(start, start + count)``."""

    def __init__(self, draw: Callable[[int], T], start: int, count: int) -> None:
        self.draw, self.start, self.count = draw, start, count

    def __iter__(self) -> Iterator[T]:
        info = get_worker_info()
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        return (self.draw(step) for step in range(self.start + k, self.start + self.count, n))


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
