from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from covergan.augment.classic import Compose, SemitoneRoll, TempoChange, TimeMask
from covergan.csi import (
    CSIConfig,
    CSINet,
    CSITrainConfig,
    classification_accuracy,
    embed_dataset,
    embedding_features,
    evaluate_retrieval,
    gallery_metrics,
    gallery_metrics_from_embeddings,
    pairwise_distances,
    retrieval_metrics,
    retrieval_metrics_from_distances,
    train_csi,
)
from covergan.data import CQTDataset, split_recordings
from covergan.errors import CheckpointError, DatasetError, ParameterError, UnknownSongError

N_BINS = 24
TINY: dict[str, Any] = {
    "n_bins": N_BINS,
    "channels": (4, 8, 16),
    "embedding_dim": 16,
    "dropout": 0.0,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Tiny convolutions spend more time in thread hand-offs than in arithmetic, and far more
    # so on a shared 2-core machine: one thread keeps this module's run short.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _songs(n_songs: int = 4, per_song: int = 4, frames: int = 40, seed: int = 0) -> CQTDataset:
    """Recordings whose song is a pair of active bins (label-dependent pattern) plus noise."""
    rng = np.random.default_rng(seed)
    feats, ids = [], []
    for s in range(n_songs):
        for _ in range(per_song):
            x = rng.random((N_BINS, frames + int(rng.integers(0, 8)))) * 0.3
            x[2 + 4 * s] += 1.0
            x[3 + 4 * s + (s % 2)] += 0.7
            feats.append(x.astype(np.float32))
            ids.append(f"song-{s}")
    return CQTDataset(feats, ids)


def _tiny(n_classes: int = 4, seed: int = 0) -> CSINet:
    return CSINet(n_classes=n_classes, seed=seed, **TINY)


# -- retrieval metrics: hand-computed rankings -------------------------------------------

# Labels 0 0 0 1 1 2; row q holds the distances of query q (the diagonal is ignored).
LABELS = ["a", "a", "a", "b", "b", "c"]
DIST = np.array(
    [
        [0.0, 0.5, 0.9, 0.1, 0.7, 0.3],  # q0: 3 5 [1] 4 [2]        -> ranks 3, 5
        [0.2, 0.0, 0.4, 0.3, 0.8, 0.9],  # q1: [0] 3 [2] 4 5        -> ranks 1, 3
        [0.6, 0.6, 0.0, 0.6, 0.1, 0.2],  # q2: 4 5 then 0, 1, 3 tie -> ranks 4, 5 or 3, 4
        [0.1, 0.2, 0.7, 0.0, 0.5, 0.9],  # q3: 0 1 [4] 2 5          -> rank 3
        [0.5, 0.5, 0.5, 0.05, 0.0, 0.5],  # q4: [3] ...             -> rank 1
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.0],  # q5: no other "c": skipped
    ]
)


def _ap(*ranks: int) -> float:
    return float(sum(Fraction(k, r) for k, r in enumerate(ranks, start=1)) / len(ranks))


def test_hand_computed_rankings_with_pessimistic_ties() -> None:
    res = retrieval_metrics_from_distances(DIST, LABELS)
    expected_ap = [_ap(3, 5), _ap(1, 3), _ap(4, 5), _ap(3), _ap(1)]
    np.testing.assert_allclose(res.average_precision[:5], expected_ap)
    assert np.isnan(res.average_precision[5])
    assert res.map == pytest.approx(np.mean(expected_ap))
    assert res.map == pytest.approx((11 / 30 + 5 / 6 + 13 / 40 + 1 / 3 + 1) / 5)
    # P@10 divides by 10 however few relevant items there are.
    np.testing.assert_allclose(res.precision_at_10[:5], [0.2, 0.2, 0.2, 0.1, 0.1])
    assert res.p_at_10 == pytest.approx(0.16)
    np.testing.assert_array_equal(res.rank1[:5], [3, 1, 4, 3, 1])
    assert res.mr1 == pytest.approx(12 / 5)
    assert (res.n_queries, res.n_skipped) == (5, 1)
    assert res.as_dict()["n_skipped"] == 1
    assert "MAP=0.5717" in str(res)


def test_index_ties_are_a_stable_sort_by_distance_then_index() -> None:
    res = retrieval_metrics_from_distances(DIST, LABELS, ties="index")
    assert res.average_precision[2] == pytest.approx(_ap(3, 4))  # 0, 1 come before 3
    assert res.rank1[2] == 3
    assert res.map == pytest.approx((11 / 30 + 5 / 6 + 5 / 12 + 1 / 3 + 1) / 5)
    assert res.mr1 == pytest.approx(11 / 5)


def test_query_is_excluded_from_its_own_list() -> None:
    # A zero self-distance would otherwise always rank the query first.
    d = np.array([[0.0, 0.5, 0.2], [0.5, 0.0, 0.2], [0.2, 0.2, 0.0]])
    res = retrieval_metrics_from_distances(d, [1, 1, 2])
    np.testing.assert_array_equal(res.rank1[:2], [2, 2])
    assert res.map == pytest.approx(0.5)


def test_perfect_ranking() -> None:
    labels = np.repeat(np.arange(4), [2, 3, 4, 12])
    emb = np.eye(4)[labels] + 0.01 * np.random.default_rng(0).standard_normal((21, 4))
    res = retrieval_metrics(emb, labels)
    assert res.map == pytest.approx(1.0) and res.mr1 == 1.0
    per_song = {1: 0.1, 2: 0.2, 3: 0.3, 11: 1.0}  # min(m, 10) / 10 with m others relevant
    expected = np.mean([per_song[int((labels == c).sum()) - 1] for c in labels])
    assert res.p_at_10 == pytest.approx(expected)


def test_worst_case_ranking() -> None:
    labels = np.repeat(np.arange(6), 2)  # 12 items, one relevant item per query
    d = (labels[:, None] == labels[None, :]).astype(float)  # relevant at distance 1, others 0
    res = retrieval_metrics_from_distances(d, labels)
    assert res.map == pytest.approx(1 / 11)
    assert res.p_at_10 == 0.0
    assert res.mr1 == 11.0


def test_constant_embedding_cannot_look_good_under_pessimistic_ties() -> None:
    labels = np.repeat(np.arange(6), 2)
    res = retrieval_metrics(np.ones((12, 3)), labels)
    assert res.map == pytest.approx(1 / 11) and res.mr1 == 11.0
    lucky = retrieval_metrics(np.ones((12, 3)), labels, ties="index")
    assert lucky.map > res.map  # index order puts neighbours of even items first


def test_average_precision_matches_sklearn_without_ties() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((30, 5))
    labels = rng.integers(0, 6, 30)
    res = retrieval_metrics(emb, labels)
    d = pairwise_distances(emb)
    for q in range(30):
        others = np.arange(30) != q
        rel = labels[others] == labels[q]
        if rel.any():
            ref = sklearn_metrics.average_precision_score(rel, -d[q, others])
            assert res.average_precision[q] == pytest.approx(ref)


def test_pairwise_distances() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0], [0.0, 0.0]])
    d = pairwise_distances(emb)
    np.testing.assert_allclose(d[0], [0.0, 1.0, 2.0, 1.0])
    np.testing.assert_allclose(d, d.T)
    e = pairwise_distances(torch.tensor(emb), metric="euclidean")
    np.testing.assert_allclose(e[0], [0.0, np.sqrt(10), 3.0, 1.0])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_retrieval_in_blocks_matches_the_full_matrix(metric: str) -> None:
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((23, 4))
    emb[5] = emb[9]  # an exact tie
    labels = rng.integers(0, 5, 23)
    full = retrieval_metrics_from_distances(pairwise_distances(emb, metric=metric), labels)  # type: ignore[arg-type]
    for block in (1, 4, 23, 100):
        res = retrieval_metrics(emb, labels, metric=metric, block_size=block)  # type: ignore[arg-type]
        np.testing.assert_allclose(res.average_precision, full.average_precision)
        np.testing.assert_array_equal(res.rank1, full.rank1)
    queries, gallery = emb[:7], emb[7:]
    d = pairwise_distances(emb, metric=metric)[:7, 7:]  # type: ignore[arg-type]
    expect = gallery_metrics(d, labels[:7], labels[7:])
    for block in (1, 3, 7):
        got = gallery_metrics_from_embeddings(
            queries,
            torch.tensor(gallery),
            labels[:7],
            labels[7:],
            metric=metric,
            block_size=block,  # type: ignore[arg-type]
        )
        np.testing.assert_allclose(got.average_precision, expect.average_precision)
        np.testing.assert_array_equal(got.rank1, expect.rank1)
        assert got.n_queries == expect.n_queries


def test_gallery_metrics_from_embeddings_errors() -> None:
    q, g = np.eye(2, 3), np.eye(3)
    with pytest.raises(ParameterError, match="queries have 2 dimensions, the gallery 3"):
        gallery_metrics_from_embeddings(np.eye(2), g, [0, 1], [0, 1, 2])
    with pytest.raises(ParameterError, match="got 1 query labels for 2 queries"):
        gallery_metrics_from_embeddings(q, g, [0], [0, 1, 2])
    with pytest.raises(ParameterError, match="block_size=0"):
        gallery_metrics_from_embeddings(q, g, [0, 1], [0, 1, 2], block_size=0)
    with pytest.raises(ParameterError, match="block_size=True"):
        retrieval_metrics(np.eye(2), [0, 0], block_size=True)
    with pytest.raises(ParameterError, match=r"gallery must be \[N, D\]"):
        gallery_metrics_from_embeddings(q, np.zeros(3), [0, 1], [0, 1, 2])
    with pytest.raises(DatasetError, match="no query"):
        gallery_metrics_from_embeddings(q, g, [5, 6], [0, 1, 2])


def test_retrieval_errors() -> None:
    with pytest.raises(ParameterError, match=r"square \[N, N\] matrix, got shape \(2, 3\)"):
        retrieval_metrics_from_distances(np.zeros((2, 3)), [0, 0])
    with pytest.raises(ParameterError, match="got 3 labels for 2 items"):
        retrieval_metrics_from_distances(np.zeros((2, 2)), [0, 0, 1])
    with pytest.raises(ParameterError, match="NaN"):
        retrieval_metrics_from_distances(np.full((2, 2), np.nan), [0, 0])
    with pytest.raises(ParameterError, match="NaN or inf"):
        retrieval_metrics(np.array([[np.inf], [0.0]]), [0, 0])
    with pytest.raises(ParameterError, match=r"\[N, D\], got shape \(3,\)"):
        retrieval_metrics(np.zeros(3), [0, 0, 0])
    with pytest.raises(ParameterError, match="ties='random'"):
        retrieval_metrics(np.eye(2), [0, 0], ties="random")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="metric='l1'"):
        retrieval_metrics(np.eye(2), [0, 0], metric="l1")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="hashable"):
        retrieval_metrics(np.eye(2), [[0], [0]])  # type: ignore[list-item]
    with pytest.raises(DatasetError, match="all 3 labels are distinct"):
        retrieval_metrics(np.eye(3), ["a", "b", "c"])


# -- model ---------------------------------------------------------------------------------


def test_model_shapes_for_any_length() -> None:
    model = _tiny(n_classes=5).eval()
    for frames in (1, 7, 33):
        x = torch.rand(3, 1, N_BINS, frames)
        assert model(x).shape == (3, 5)
        z = model.embed(x)
        assert z.shape == (3, 16)
        torch.testing.assert_close(z.norm(dim=1), torch.ones(3))


def test_default_model_is_small() -> None:
    model = CSINet(n_classes=70)
    assert 100_000 < model.n_parameters < 1_000_000
    assert model(torch.rand(2, 1, 84, 50)).shape == (2, 70)


def test_model_init_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a, b, c = _tiny(seed=1), _tiny(seed=1), _tiny(seed=2)
    assert torch.equal(torch.rand(1), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_model_input_errors() -> None:
    model = _tiny()
    with pytest.raises(ParameterError, match=r"\[B, 1, n_bins, n_frames\], got \(24, 10\)"):
        model(torch.rand(N_BINS, 10))
    with pytest.raises(ParameterError, match="n_bins=24, the input has 10 rows"):
        model(torch.rand(2, 1, 10, N_BINS))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_classes": 1}, "n_classes=1"),
        ({"n_classes": 4, "n_bins": 0}, "n_bins=0"),
        ({"n_classes": 4, "n_bins": 8}, "stem_bins=12 must not exceed n_bins=8"),
        ({"n_classes": 4, "channels": (8,)}, r"channels=\(8,\)"),
        ({"n_classes": 4, "channels": (8, 0)}, "channels=0"),
        ({"n_classes": 4, "dropout": 1.0}, "dropout=1.0"),
        ({"n_classes": 4, "gem_p": 0.5}, "gem_p=0.5"),
        ({"n_classes": 4, "logit_scale": 0}, "logit_scale=0"),
        ({"n_classes": 4, "stem_stride": 0}, "stem_stride=0"),
    ],
)
def test_model_config_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        CSIConfig(**kwargs)


def test_config_round_trip_and_model_errors() -> None:
    cfg = CSIConfig(n_classes=3, channels=(4, 8))
    assert CSIConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ParameterError, match="unknown CSIConfig fields"):
        CSIConfig.from_dict({"n_classes": 3, "width": 2})
    with pytest.raises(ParameterError, match="must be a CSIConfig"):
        CSINet({"n_classes": 3})  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="seed=1.5"):
        CSINet(cfg, seed=1.5)  # type: ignore[arg-type]


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _tiny(seed=3).eval()
    x = torch.rand(2, 1, N_BINS, 20)
    model.save(tmp_path / "csi.pt")
    loaded = CSINet.load(tmp_path / "csi.pt")
    assert loaded.config == model.config and not loaded.training
    torch.testing.assert_close(loaded.embed(x), model.embed(x))


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no CSINet checkpoint file"):
        CSINet.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt was refused by the weights-only loader"):
        CSINet.load(tmp_path / "junk.pt")
    _tiny().save(tmp_path / "csi.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "csi.pt").read_bytes()[:300])  # truncated
    with pytest.raises(CheckpointError, match="cut.pt is not a readable CSINet checkpoint"):
        CSINet.load(tmp_path / "cut.pt")
    state = _tiny().checkpoint()
    torch.save(state["state_dict"], tmp_path / "weights.pt")  # bare weights, no header
    with pytest.raises(CheckpointError, match="weights.pt is not a covergan CSINet checkpoint"):
        CSINet.load(tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a covergan CSINet checkpoint"):
        CSINet.from_checkpoint({**state, "format": "other"})
    with pytest.raises(CheckpointError, match="format_version=99, newer"):
        CSINet.from_checkpoint({**state, "format_version": 99})
    with pytest.raises(CheckpointError, match="unknown format_version='1'"):
        CSINet.from_checkpoint({**state, "format_version": "1"})
    legacy = {k: v for k, v in state.items() if k not in ("format_version", "covergan_version")}
    assert CSINet.from_checkpoint({**legacy, "version": 1}).config == _tiny().config  # older files
    with pytest.raises(CheckpointError, match="format_version=99, newer"):
        CSINet.from_checkpoint({**legacy, "version": 99})
    with pytest.raises(CheckpointError, match="corrupt"):
        CSINet.from_checkpoint({**state, "config": {**state["config"], "embedding_dim": 8}})


def test_embedding_features_is_a_feature_space() -> None:
    model = _tiny().train()
    feats = embedding_features(model, batch_size=3)
    x = torch.rand(7, 1, N_BINS, 12)
    z = feats(x)
    assert z.shape == (7, 16) and not z.requires_grad
    assert model.training  # restored
    torch.testing.assert_close(z, model.eval().embed(x))
    metrics = pytest.importorskip("covergan.metrics")
    out = metrics.extract_features(x, feats, batch_size=4)
    np.testing.assert_allclose(out, z.double().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ParameterError, match="batch_size=0"):
        embedding_features(model, batch_size=0)


# -- training ------------------------------------------------------------------------------


def test_training_learns_label_dependent_patterns() -> None:
    data = _songs()
    train, test = split_recordings(data, holdout=1, seed=0)
    model = _tiny()
    history = train_csi(model, train.windows(32), steps=50, batch_size=8, lr=5e-3, progress=False)
    assert len(history.loss) == 50 and history.n_samples == 400
    assert np.mean(history.loss[-10:]) < 0.5 * np.mean(history.loss[:5])
    assert not model.training
    assert classification_accuracy(model, test, index=train.index) == 1.0
    res = evaluate_retrieval(model, data)
    assert res.map > 0.9 and res.n_queries == len(data)
    cropped = evaluate_retrieval(model, data, window=32)
    assert cropped.map > 0.9


def test_training_is_deterministic_on_cpu() -> None:
    data = _songs().windows(16)
    augment = Compose([SemitoneRoll(1, p=0.5), TempoChange(p=0.5), TimeMask(4, p=0.5)])
    states = []
    for seed in (0, 0, 1):
        model = _tiny()
        train_csi(model, data, steps=6, batch_size=8, seed=seed, augment=augment, progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


class _Flagged(Dataset[tuple[torch.Tensor, int, bool]]):
    def __init__(self, base: CQTDataset, synthetic: bool) -> None:
        self.base, self.synthetic = base, synthetic

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, bool]:
        x, y = self.base[i]
        return x, y, self.synthetic


def test_synthetic_items_are_weighted() -> None:
    data = _songs().windows(16)
    history = train_csi(
        _tiny(), _Flagged(data, True), steps=3, batch_size=8, synthetic_weight=0.0, progress=False
    )
    assert history.loss == [0.0, 0.0, 0.0]
    # Within the first epoch (16 items, 2 batches) both see the same crops in the same order.
    real = train_csi(_tiny(), _Flagged(data, False), steps=2, batch_size=8, progress=False)
    plain = train_csi(_tiny(), data, steps=2, batch_size=8, progress=False)
    assert real.loss == plain.loss


def test_dataloader_eval_fn_and_config_object() -> None:
    data = _songs().windows(16)
    loader = DataLoader(data, batch_size=8, shuffle=False)
    calls: list[int] = []

    def eval_fn(model: CSINet) -> dict[str, float]:
        calls.append(len(calls))
        return {"map": evaluate_retrieval(model, data).map}

    cfg = CSITrainConfig(steps=5, batch_size=8, eval_every=2)
    history = train_csi(_tiny(), loader, cfg, eval_fn=eval_fn, progress=False, steps=4)
    assert [step for step, _ in history.evals] == [2, 4]
    assert set(history.evals[0][1]) == {"map"}
    assert history.samples_per_second > 0


def test_embed_dataset_batches_equal_lengths_consistently() -> None:
    data = _songs()
    model = _tiny()
    a = embed_dataset(model, data, batch_size=1)
    b = embed_dataset(model, data, batch_size=16)
    assert a.shape == (len(data), 16)
    torch.testing.assert_close(a, b)


def test_training_errors() -> None:
    data = _songs()
    with pytest.raises(ParameterError, match="different shapes"):
        train_csi(_tiny(), data, steps=1, progress=False)  # full tracks differ in length
    with pytest.raises(ParameterError, match=r"outside \[0, n_classes=3\)"):
        train_csi(_tiny(n_classes=3), data.windows(16), steps=1, progress=False)
    with pytest.raises(DatasetError, match="1 item"):
        train_csi(_tiny(), data.windows(16).subset([0]), steps=1, progress=False)
    with pytest.raises(ParameterError, match="keep the batch shape"):
        train_csi(_tiny(), data.windows(16), steps=1, augment=lambda x: x[..., :8], progress=False)
    with pytest.raises(ParameterError, match="must be a CSINet"):
        train_csi(torch.nn.Linear(2, 2), data.windows(16), progress=False)  # type: ignore[arg-type]
    nan_data = CQTDataset([np.zeros((N_BINS, 16), np.float32)] * 2, ["a", "b"], window=16)
    nan_data.features[0][0, 0] = np.nan  # bypasses the constructor's check
    with pytest.raises(ParameterError, match="diverged at step 1"):
        train_csi(_tiny(n_classes=2), nan_data, steps=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps=0"),
        ({"batch_size": 1}, "batch_size=1"),
        ({"lr": 0.0}, "lr=0.0"),
        ({"weight_decay": -1.0}, "weight_decay=-1.0"),
        ({"label_smoothing": 1.0}, "label_smoothing=1.0"),
        ({"synthetic_weight": float("nan")}, "synthetic_weight=nan"),
        ({"grad_clip": 0.0}, "grad_clip=0.0"),
        ({"schedule": "step"}, "schedule='step'"),
        ({"device": "tpu"}, "device='tpu'"),
        ({"seed": "0"}, "seed='0'"),
    ],
)
def test_train_config_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        CSITrainConfig(**kwargs)


def test_accuracy_and_embedding_errors() -> None:
    data = _songs()
    model = _tiny()
    with pytest.raises(UnknownSongError, match="song-0"):
        classification_accuracy(model, data, index=data.subset([4, 8]).index)
    with pytest.raises(ParameterError, match="beyond the model's n_classes=2"):
        classification_accuracy(_tiny(n_classes=2), data)
    with pytest.raises(ParameterError, match="window=8 needs a CQTDataset"):
        embed_dataset(model, _Flagged(data, False), window=8)
    with pytest.raises(ParameterError, match="batch_size=0"):
        embed_dataset(model, data, batch_size=0)
