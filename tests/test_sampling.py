from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from covergan.data import CQTDataset, SongId
from covergan.errors import DatasetError, ParameterError
from covergan.sampling import AugmentedDataset, ClassBalancedSampler, SyntheticBank


class FakeSource:
    """Deterministic stand-in for a fitted Augmenter: sample value = song number + seed."""

    def __init__(self, shape: tuple[int, int] = (6, 8)) -> None:
        self.shape = shape
        self.calls = 0

    def sample_many(
        self, counts: Mapping[SongId, int], *, space: str = "features", seed: int | None = None
    ) -> dict[SongId, torch.Tensor]:
        self.calls += 1
        base = 0 if seed is None else seed
        return {
            s: torch.full(
                (n, 1, *self.shape),
                float(base) + 100 * int(str(s)[-1]) if str(s)[-1].isdigit() else float(base),
            )
            for s, n in counts.items()
        }


@pytest.fixture
def real() -> CQTDataset:
    rng = np.random.default_rng(0)
    songs = ["s0"] * 6 + ["s1"] * 3 + ["s2"] * 1 + ["s3"] * 2
    return CQTDataset.from_arrays(
        [rng.random((6, 8), dtype=np.float32) for _ in songs], songs, window=8, crop="center"
    )


# -- SyntheticBank -----------------------------------------------------------------------


def test_bank_build_read_and_reopen(real: CQTDataset, tmp_path: Path) -> None:
    bank = SyntheticBank.build(
        FakeSource(), {"s2": 3, "s3": 2, "s1": 0}, tmp_path / "bank", index=real.index, seed=7
    )
    assert len(bank) == 5
    assert bank.counts == {"s2": 3, "s3": 2}
    x, y = bank[0]
    assert x.shape == (1, 6, 8) and x.dtype == torch.float32 and y == real.index.index("s2")
    assert float(x[0, 0, 0]) == 207.0
    assert isinstance(bank.samples, np.memmap)
    again = SyntheticBank.open(tmp_path / "bank")
    np.testing.assert_array_equal(again.labels, bank.labels)
    assert again.song_ids == ["s2", "s2", "s2", "s3", "s3"]
    assert "5 samples of 2 songs" in repr(again)


def test_bank_refresh_draws_new_samples_atomically(real: CQTDataset, tmp_path: Path) -> None:
    source = FakeSource()
    bank = SyntheticBank.build(
        source, {"s3": 1, "s2": 2}, tmp_path / "bank", index=real.index, seed=1
    )
    labels = bank.labels.copy()
    bank.refresh()  # build attached the source
    np.testing.assert_array_equal(bank.labels, labels)  # same order, same labels
    bank.refresh(seed=2)
    assert bank.seed == 2 and float(bank[1][0][0, 0, 0]) == 202.0
    bank.refresh(seed=1)
    bank.refresh()
    assert bank.seed == 2 and float(bank[1][0][0, 0, 0]) == 202.0
    bank.refresh(seed=10)
    assert float(bank[1][0][0, 0, 0]) == 210.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]


def test_refresh_without_source(real: CQTDataset, tmp_path: Path) -> None:
    SyntheticBank.build(FakeSource(), {"s2": 2}, tmp_path / "bank", index=real.index)
    with pytest.raises(ParameterError, match="attach_source"):
        SyntheticBank.open(tmp_path / "bank").refresh()


def test_failed_build_keeps_the_previous_bank(real: CQTDataset, tmp_path: Path) -> None:
    SyntheticBank.build(FakeSource(), {"s2": 2}, tmp_path / "bank", index=real.index, seed=1)

    class Broken(FakeSource):
        def sample_many(self, counts, *, space="features", seed=None):  # type: ignore[no-untyped-def]
            out = super().sample_many(counts, space=space, seed=seed)
            out["s3"] = torch.zeros(1, 1, 2, 2)  # inconsistent shape
            return out

    with pytest.raises(ParameterError, match="different shapes"):
        SyntheticBank.build(Broken(), {"s2": 2, "s3": 1}, tmp_path / "bank", index=real.index)
    assert float(SyntheticBank.open(tmp_path / "bank")[0][0][0, 0, 0]) == 201.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ({"s2": -1}, "non-negative"),
        ({"s9": 1}, "not in the real"),
        ({"s2": 0}, "every count is zero"),
        ({"s2": 1.5}, "non-negative int"),
    ],
)
def test_bank_rejects_bad_counts(
    real: CQTDataset, tmp_path: Path, counts: dict[SongId, int], match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        SyntheticBank.build(FakeSource(), counts, tmp_path / "bank", index=real.index)


def test_bank_will_not_replace_a_foreign_folder(real: CQTDataset, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ParameterError, match="not a synthetic bank"):
        SyntheticBank.build(FakeSource(), {"s2": 1}, tmp_path / "mine", index=real.index)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    source = FakeSource()
    bank = SyntheticBank.build(source, {"s2": 1}, tmp_path / "bank", index=real.index)
    (bank.path / "notes.txt").write_text("mine")  # a rebuild would replace the whole folder
    with pytest.raises(ParameterError, match="seed=-1"):
        SyntheticBank.build(source, {"s2": 1}, bank.path, index=real.index, seed=-1)
    with pytest.raises(ParameterError, match="seed=1.5"):
        bank.refresh(seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"files a synthetic bank does not write \(notes"):
        SyntheticBank.build(source, {"s2": 2}, bank.path, index=real.index)
    assert (bank.path / "notes.txt").read_text() == "mine" and source.calls == 1  # no draw
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="is a file; a synthetic bank is a folder"):
        SyntheticBank.build(source, {"s2": 1}, tmp_path / "file", index=real.index)


def test_open_errors(real: CQTDataset, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="bank.json missing"):
        SyntheticBank.open(tmp_path)
    bank = SyntheticBank.build(FakeSource(), {"s2": 1}, tmp_path / "b", index=real.index)
    meta = json.loads((bank.path / "bank.json").read_text())
    assert meta["format_version"] == 1 and "covergan_version" in meta
    (bank.path / "bank.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(DatasetError, match="format version 99, newer"):
        SyntheticBank.open(bank.path)
    legacy = {k: v for k, v in meta.items() if k not in ("format_version", "covergan_version")}
    (bank.path / "bank.json").write_text(json.dumps({**legacy, "version": 99}))  # older writers
    with pytest.raises(DatasetError, match="format version 99, newer"):
        SyntheticBank.open(bank.path)
    (bank.path / "bank.json").write_text(json.dumps({**legacy, "version": 1}))
    assert len(SyntheticBank.open(bank.path)) == len(bank)
    (bank.path / "bank.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(DatasetError, match="not a covergan synthetic bank"):
        SyntheticBank.open(bank.path)
    (bank.path / "bank.json").write_text(json.dumps([meta]))
    with pytest.raises(DatasetError, match="not a covergan synthetic bank"):
        SyntheticBank.open(bank.path)
    (bank.path / "bank.json").write_text(json.dumps(meta))
    np.save(bank.path / "labels.npy", np.array([len(real.index)]))  # no such song
    with pytest.raises(DatasetError, match="inconsistent"):
        SyntheticBank.open(bank.path)
    stopped = bank.path.with_name(f".{bank.path.name}.old-123")
    os.replace(bank.path, stopped)  # a refresh killed between its two renames
    with pytest.raises(DatasetError, match=rf"left the previous bank at .*{stopped.name}: rename"):
        SyntheticBank.open(bank.path)
    os.replace(stopped, bank.path)
    (bank.path / "labels.npy").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="cannot read"):
        SyntheticBank.open(bank.path)


# -- AugmentedDataset --------------------------------------------------------------------


def test_augmented_dataset_mixes_real_and_bank(real: CQTDataset, tmp_path: Path) -> None:
    bank = SyntheticBank.build(FakeSource(), {"s2": 3}, tmp_path / "b", index=real.index)
    mixed = AugmentedDataset(real, bank)
    assert len(mixed) == len(real) + 3
    x, y, flag = mixed[len(real)]
    assert flag is True and y == real.index.index("s2") and x.shape == (1, 6, 8)
    x0, y0, flag0 = mixed[0]
    torch.testing.assert_close(x0, real[0][0])
    assert flag0 is False and y0 == 0
    assert mixed.class_counts(synthetic=True) == {"s0": 0, "s1": 0, "s2": 3, "s3": 0}
    assert mixed.class_counts()["s2"] == 4
    xb, _, fb = next(iter(DataLoader(mixed, batch_size=len(mixed))))
    assert xb.shape == (len(mixed), 1, 6, 8) and fb.sum() == 3
    two = AugmentedDataset(real, bank, return_flag=False)
    assert len(two[len(real)]) == 2


def test_augmented_dataset_from_tensors(real: CQTDataset) -> None:
    mixed = AugmentedDataset.from_tensors(
        real, {"s3": torch.zeros(2, 1, 6, 8), "s0": torch.zeros(0, 1, 6, 8)}
    )
    assert mixed.class_counts(synthetic=True)["s3"] == 2
    assert mixed[-1][1] == real.index.index("s3")
    assert len(AugmentedDataset.from_tensors(real, {})) == len(real)


def test_augmented_dataset_errors(real: CQTDataset, tmp_path: Path) -> None:
    other = CQTDataset.from_arrays([np.zeros((6, 8))], ["zz"])
    bank = SyntheticBank.build(FakeSource(), {"zz": 1}, tmp_path / "b", index=other.index)
    with pytest.raises(ParameterError, match="another song index"):
        AugmentedDataset(real, bank)
    with pytest.raises(ParameterError, match="labels"):
        AugmentedDataset(real, [1, 2])
    no_index = AugmentedDataset.from_tensors(real, {}).synthetic  # has labels, no index
    with pytest.raises(ParameterError, match="SongIndex"):
        AugmentedDataset(no_index, bank)
    narrow = SyntheticBank.build(FakeSource((6, 5)), {"s2": 1}, tmp_path / "n", index=real.index)
    with pytest.raises(ParameterError, match=r"real windows are \(1, 6, 8\) and the synthetic"):
        AugmentedDataset(real, narrow)  # caught here, not when a batch is stacked
    calls: list[int] = []
    counted = SyntheticBank.open(bank.path, transform=lambda x: calls.append(1) or x)
    AugmentedDataset(other, counted)  # the check reads shapes, not items: no transform runs
    assert calls == []


# -- ClassBalancedSampler ----------------------------------------------------------------


def song_counts(labels: np.ndarray, indices: list[int]) -> Counter[int]:
    return Counter(labels[indices].tolist())


def test_equal_share_per_song(real: CQTDataset) -> None:
    sampler = ClassBalancedSampler(real, num_samples=400, seed=0)
    idx = list(sampler)
    assert len(idx) == len(sampler) == 400
    assert song_counts(real.labels, idx) == {0: 100, 1: 100, 2: 100, 3: 100}


def test_duplicates_only_after_a_song_is_exhausted(real: CQTDataset) -> None:
    idx = list(ClassBalancedSampler(real, num_samples=12, seed=3))  # 3 draws per song
    s0 = [i for i in idx if real.labels[i] == 0]
    assert len(s0) == len(set(s0)) == 3  # 6 recordings: no repeat
    s2 = [i for i in idx if real.labels[i] == 2]
    assert s2 == [9, 9, 9]  # the one-recording song repeats its only item


def test_custom_weights(real: CQTDataset) -> None:
    idx = list(ClassBalancedSampler(real, weights={0: 3.0, 1: 1.0}, num_samples=100))
    assert song_counts(real.labels, idx) == {0: 75, 1: 25}
    idx = list(ClassBalancedSampler(real, weights=[1, 1, 0, 0], num_samples=10))
    assert song_counts(real.labels, idx) == {0: 5, 1: 5}


def test_real_weights_keep_the_data_shares_and_top_up(real: CQTDataset) -> None:
    synth = {"s2": torch.zeros(8, 1, 6, 8), "s3": torch.zeros(8, 1, 6, 8)}
    mixed = AugmentedDataset.from_tensors(real, synth)
    sampler = ClassBalancedSampler(mixed, weights="real", ratio=(1, 1), seed=0)
    assert len(sampler) == 12  # one epoch = the real items
    idx = np.asarray(list(sampler))
    assert song_counts(mixed.labels, idx) == {0: 6, 1: 3, 2: 1, 3: 2}  # the real shares
    many = np.asarray(list(ClassBalancedSampler(mixed, weights="real", num_samples=1200)))
    labels, flags = mixed.labels[many], mixed.is_synthetic[many]
    assert song_counts(mixed.labels, many) == {0: 600, 1: 300, 2: 100, 3: 200}
    assert not flags[labels < 2].any()
    # default ratio: a song's own share of synthetic items (8 of 9 and 8 of 10)
    assert flags[labels == 2].mean() == pytest.approx(8 / 9, abs=0.08)
    assert flags[labels == 3].mean() == pytest.approx(8 / 10, abs=0.08)


def test_seeded_and_epoch_dependent(real: CQTDataset) -> None:
    a = ClassBalancedSampler(real, seed=5)
    b = ClassBalancedSampler(real, seed=5)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)


def test_shards_are_disjoint_and_cover_the_epoch(real: CQTDataset) -> None:
    ranks = [
        ClassBalancedSampler(real, num_samples=13, num_replicas=3, rank=r, seed=2) for r in range(3)
    ]
    shards = [list(s) for s in ranks]
    assert [len(s) for s in shards] == [5, 5, 5]
    full = ranks[0].epoch_indices()
    assert sorted(i for s in shards for i in s) == sorted(full.tolist())
    positions = [set(range(r, 15, 3)) for r in range(3)]
    assert set.intersection(*positions) == set()
    # fewer draws than ranks: the epoch wraps as often as it takes, every rank the same length
    for n, replicas in ((1, 4), (2, 8), (3, 7)):
        lengths = [
            len(list(ClassBalancedSampler(real, num_samples=n, num_replicas=replicas, rank=r)))
            for r in range(replicas)
        ]
        assert lengths == [1] * replicas, (n, replicas, lengths)


def test_synthetic_top_up(real: CQTDataset) -> None:
    synth = {
        "s2": torch.zeros(4, 1, 6, 8),
        "s3": torch.zeros(4, 1, 6, 8),
        "s0": torch.zeros(4, 1, 6, 8),
    }
    mixed = AugmentedDataset.from_tensors(real, synth)
    sampler = ClassBalancedSampler(mixed, num_samples=4000, ratio=(1, 3), top_up_below=3, seed=1)
    idx = np.asarray(list(sampler))
    flags = mixed.is_synthetic[idx]
    labels = mixed.labels[idx]
    assert not flags[labels == 0].any()  # s0 has 6 real recordings: no top-up
    assert not flags[labels == 1].any()  # s1 has 3, not below 3
    for c in (2, 3):  # below the threshold: about 3/4 synthetic
        assert flags[labels == c].mean() == pytest.approx(0.75, abs=0.05)
    default = ClassBalancedSampler(mixed)  # every song with synthetic items, its own share
    np.testing.assert_allclose(default.p_synthetic, [4 / 10, 0.0, 4 / 5, 4 / 6])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"weights": [1, 1]}, "4 classes"),
        ({"weights": {9: 1.0}}, "class 9"),
        ({"weights": [0, 0, 0, 0]}, "not all zero"),
        ({"weights": "equal"}, "only named weighting is 'real'"),
        ({"ratio": (0, 0)}, "ratio"),
        ({"ratio": (1, -1)}, "ratio"),
        ({"ratio": "ab"}, "ratio='ab'"),
        ({"ratio": 3}, "ratio=3"),
        ({"ratio": (1, "x")}, "ratio="),
        ({"weights": {"s0": 1.0}}, "keyed by class index"),
        ({"weights": {0: "heavy"}}, "must be a number"),
        ({"seed": -1}, "seed=-1 must be a non-negative integer"),
        ({"top_up_below": 2.5}, "top_up_below"),
        ({"rank": 2, "num_replicas": 2}, "rank=2"),
    ],
)
def test_sampler_errors(real: CQTDataset, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        ClassBalancedSampler(real, **kwargs)  # type: ignore[arg-type]


def test_sampler_rejects_bad_labels() -> None:
    with pytest.raises(ParameterError, match="non-empty"):
        ClassBalancedSampler(np.array([], dtype=np.int64))
    with pytest.raises(ParameterError, match=">= 0"):
        ClassBalancedSampler(np.array([0, -1]))
    with pytest.raises(ParameterError, match="no items"):
        ClassBalancedSampler(np.array([0, 2]))
