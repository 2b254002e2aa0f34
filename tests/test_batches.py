"""Training batches drawn ahead in worker processes are the batches one process draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covergan.batches import DatasetBatch, dataset_batches, prefetch
from covergan.data import CQTDataset
from covergan.errors import ParameterError


class Square:
    """A draw that depends on its step alone (and shows which process made it)."""

    def __call__(self, step: int) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        return step * step, -1 if info is None else info.id


def test_prefetch_keeps_step_order_across_workers() -> None:
    alone = list(prefetch(Square(), 3, 7))
    ahead = list(prefetch(Square(), 3, 7, workers=2))
    assert [v for v, _ in ahead] == [v for v, _ in alone] == [s * s for s in range(3, 10)]
    assert {w for _, w in alone} == {-1} and {w for _, w in ahead} == {0, 1}
    with pytest.raises(ParameterError, match="workers"):
        prefetch(Square(), 0, 2, workers=-1)


def test_random_crops_are_the_same_in_workers() -> None:
    rng = np.random.default_rng(0)
    tracks = [rng.random((6, 30)).astype(np.float32) for _ in range(10)]
    data = CQTDataset(tracks, [k % 3 for k in range(10)], window=8, seed=4)
    # 10 items, batch 4: 2 batches an epoch, so 5 batches cross two epoch boundaries
    alone = list(dataset_batches(data, 10, 4, seed=1, start=1, count=5))
    ahead = list(dataset_batches(data, 10, 4, seed=1, start=1, count=5, workers=2))
    for (xa, ya), (xb, yb) in zip(alone, ahead, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(alone[0][0], alone[2][0])  # the next epoch crops anew
    one = DatasetBatch(data, 10, 4, seed=1)
    assert torch.equal(one(3)[0], alone[2][0])  # any batch from its index alone
