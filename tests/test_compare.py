"""The paired downstream comparison (covergan.compare) on a tiny corpus, few steps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from covergan.compare import (
    CONDITIONS,
    DEFAULT_CONDITIONS,
    GAN_POOL,
    RESULTS_FILE,
    CompareSettings,
    Comparison,
    _GanSwapIn,
    compare,
    split_rare_songs,
    split_unseen_works,
)
from covergan.cqt import CQTConfig
from covergan.csi import CSINet, gallery_metrics
from covergan.data import CQTDataset
from covergan.errors import DatasetError, ParameterError
from tests.test_references import TINY_GAN, TINY_VERSIONS, works

FAST = CompareSettings(
    window=16,
    csi_steps=4,
    csi_batch=4,
    csi={"channels": (4, 8), "embedding_dim": 8},
    version_steps=2,
    augmenter={"versions": TINY_VERSIONS},
)


@pytest.fixture(scope="module")
def data() -> CQTDataset:
    return works((3, 3, 2, 2, 2, 2, 1, 1), frames=40)


@pytest.fixture(scope="module")
def run(data: CQTDataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Comparison]:
    out = tmp_path_factory.mktemp("compare")
    result = compare(data, seeds=2, settings=FAST, out=out, progress=False)
    return out, result


def test_every_condition_protocol_and_seed_runs_once(run: tuple[Path, Comparison]) -> None:
    out, result = run
    assert len(result.rows) == 2 * 4 * 2
    assert result.conditions() == ["none", "classic", "versions", "classic+versions"]
    assert result.protocols() == ["unseen-works", "rare-songs"] and result.seeds() == [0, 1]
    for row in result.rows:
        metrics = (
            ("map", "p_at_10", "mr1")
            if row["protocol"] == "unseen-works"
            else ("map", "mr1", "top1")
        )
        assert all(np.isfinite(row[m]) for m in metrics)
        assert 0 < row["map"] <= 1 and row["mr1"] >= 1
    spent = result.timings()
    assert spent["version_fit"] > 0 and spent["csi_train"] > 0 and spent["evaluate"] > 0
    assert sum("version_fit_seconds" in r for r in result.rows) == 4  # one per protocol, seed
    lines = (out / RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 16 and all(json.loads(line)["seed"] in (0, 1) for line in lines)
    assert sorted(p.name for p in (out / "models").iterdir()) == [
        "rare-songs-s0.aug", "rare-songs-s1.aug", "unseen-works-s0.aug", "unseen-works-s1.aug",
    ]  # fmt: skip


def test_the_class_gan_conditions_fit_it_once_and_only_on_request(
    data: CQTDataset, tmp_path: Path
) -> None:
    assert CONDITIONS[:4] == DEFAULT_CONDITIONS and "gan" not in DEFAULT_CONDITIONS
    settings = dataclasses.replace(FAST, augmenter={"versions": TINY_VERSIONS, "gan": TINY_GAN})
    result = compare(data, conditions=["gan", "classic+gan"], protocols=["rare-songs"],
                     seeds=[0], settings=settings, out=tmp_path, progress=False)  # fmt: skip
    assert result.conditions() == ["none", "gan", "classic+gan"]
    assert all(np.isfinite(r["map"]) for r in result.rows)
    assert sum("gan_fit_seconds" in r for r in result.rows) == 1
    assert not any("version_fit_seconds" in r for r in result.rows)
    assert result.timings()["gan_fit"] > 0 and result.timings()["version_fit"] == 0
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["rare-songs-s0-gan.aug"]


def test_gan_swap_in_replaces_a_seeded_share_with_samples_of_the_items_song(
    data: CQTDataset,
) -> None:
    view = data.windows(16, crop="random", seed=0)
    # stand-in samples: every song's are its class index + 100
    pools = [torch.full((GAN_POOL, 1, data.n_bins, 16), 100.0 + k) for k in range(data.n_songs)]
    none, every = _GanSwapIn(view, pools, 0.0, seed=1), _GanSwapIn(view, pools, 1.0, seed=1)
    for i in range(len(view)):
        x, y = view[i]
        assert torch.equal(none[i][0], x) and none[i][1] == y
        assert float(every[i][0].max()) == 100.0 + y and every[i][1] == y  # its own song
    half = _GanSwapIn(view, pools, 0.5, seed=1)
    half.set_epoch(0)
    first = [float(half[i][0].max()) >= 100 for i in range(len(view))]
    assert first == [float(half[i][0].max()) >= 100 for i in range(len(view))]  # seeded
    swapped = sum(first)
    for epoch in range(1, 20):
        half.set_epoch(epoch)
        swapped += sum(float(half[i][0].max()) >= 100 for i in range(len(view)))
    assert 0.4 < swapped / (20 * len(view)) < 0.6  # the share asked for
    assert view.epoch == 19  # the real crops move with the epochs too


def test_conditions_share_the_split_init_and_batch_order(data: CQTDataset) -> None:
    # with augmentation off for every condition, the runs would be identical: check that the
    # baseline is reproducible run for run (same split, init, batch order)
    a = compare(data, conditions=["none"], protocols=["unseen-works"], seeds=[3],
                settings=FAST, progress=False)  # fmt: skip
    b = compare(data, conditions=["none"], protocols=["unseen-works"], seeds=[3],
                settings=FAST, progress=False)  # fmt: skip
    assert a.rows[0]["map"] == b.rows[0]["map"] and a.rows[0]["mr1"] == b.rows[0]["mr1"]


def test_differences_are_paired_with_t_intervals(run: tuple[Path, Comparison]) -> None:
    _, result = run
    diffs = result.differences()
    assert {d.condition for d in diffs} == {"classic", "versions", "classic+versions"}
    d = next(x for x in diffs if x.protocol == "unseen-works" and x.condition == "classic")
    runs = {
        (r["seed"], r["condition"]): r["map"]
        for r in result.rows
        if r["protocol"] == "unseen-works"
    }
    paired = [runs[s, "classic"] - runs[s, "none"] for s in (0, 1)]
    assert d.n == 2 and d.mean == pytest.approx(np.mean(paired))
    half = 12.706 * np.std(paired, ddof=1) / np.sqrt(2)  # t(0.975, 1 dof)
    assert d.high - d.mean == pytest.approx(half, rel=1e-3)
    assert d.verdict in ("better", "worse", "no detectable difference")
    text = result.to_markdown()
    assert "## unseen-works" in text and "## rare-songs" in text and "95% interval" in text
    import matplotlib.pyplot as plt

    fig = result.plot()
    assert len(fig.axes) == 2 and plt.get_fignums() == []  # not left open in pyplot


def test_a_rerun_continues_and_a_cut_line_is_redone(
    run: tuple[Path, Comparison], data: CQTDataset, tmp_path: Path
) -> None:
    out, first = run
    resumed = compare(data, seeds=2, settings=FAST, out=out, progress=False)
    assert resumed.rows == first.rows  # nothing recomputed: same numbers, same order
    one = compare(data, seeds=[1], settings=FAST, out=out, progress=False)
    assert one.seeds() == [1] and one.rows == [r for r in first.rows if r["seed"] == 1]
    # a kill during a write leaves a partial last line: it is dropped and that run redone
    copy = tmp_path / "cut"
    copy.mkdir()
    for name in ("settings.json",):
        (copy / name).write_text((out / name).read_text())
    lines = (out / RESULTS_FILE).read_text().splitlines()
    (copy / RESULTS_FILE).write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    again = compare(data, protocols=["unseen-works"], seeds=[0], settings=FAST, out=copy,
                    progress=False)  # fmt: skip
    assert len(again.rows) == 4
    stored = [json.loads(x) for x in (copy / RESULTS_FILE).read_text().splitlines()]
    assert len(stored) == 4  # 3 kept + the cut one redone; the cut line is gone
    assert stored[:3] == [json.loads(x) for x in lines[:3]]
    assert Comparison.load(copy).rows == stored


def test_an_out_folder_of_other_settings_is_refused(
    run: tuple[Path, Comparison], data: CQTDataset
) -> None:
    out, _ = run
    other = CompareSettings(**{**FAST.__dict__, "csi_steps": 5})
    with pytest.raises(ParameterError, match=r"other settings \(csi_steps differ"):
        compare(data, seeds=1, settings=other, out=out, progress=False)
    smaller = data.subset(list(range(len(data) - 1)))
    with pytest.raises(ParameterError, match="data differ"):
        compare(smaller, seeds=1, settings=FAST, out=out, progress=False)
    # the same songs, names and lengths with other values: rescaled, or another recipe
    scaled = CQTDataset.from_arrays(
        [3 * np.asarray(x) for x in data.features], data.song_ids, names=data.names,
        config=data.config,
    )  # fmt: skip
    with pytest.raises(ParameterError, match="data differ"):
        compare(scaled, seeds=1, settings=FAST, out=out, progress=False)
    other_recipe = dataclasses.replace(data.config, scale="db") if data.config else CQTConfig()
    relabelled = CQTDataset.from_arrays(
        list(data.features), data.song_ids, names=data.names, config=other_recipe
    )
    with pytest.raises(ParameterError, match="data differ"):
        compare(relabelled, seeds=1, settings=FAST, out=out, progress=False)


def test_save_and_load_round_trip(run: tuple[Path, Comparison], tmp_path: Path) -> None:
    _, result = run
    path = result.save(tmp_path / "c.json")
    back = Comparison.load(path)
    assert back.rows == result.rows and back.settings == result.settings
    with pytest.raises(ParameterError, match="holds no comparison"):
        Comparison.load(tmp_path)
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ParameterError, match="not a saved comparison"):
        Comparison.load(tmp_path / "bad.json")


def test_silent_recordings_are_left_out_and_named(data: CQTDataset) -> None:
    feats = [np.asarray(x) for x in data.features] + [np.zeros((24, 30), np.float32)]
    silent = CQTDataset.from_arrays(feats, [*data.song_ids, "work-0"], config=data.config)
    result = compare(silent, conditions=["none"], protocols=["unseen-works"], seeds=1,
                     settings=FAST, progress=False)  # fmt: skip
    assert result.settings["data"]["recordings"] == len(data)
    assert result.notes[0].startswith("1 silent recordings left out")


def test_budget_stops_new_runs(data: CQTDataset) -> None:
    result = compare(data, seeds=3, budget=1e-9, settings=FAST, progress=False)
    assert len(result.rows) <= 1 and "budget" in result.notes[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conditions": ["gans"]}, "unknown conditions"),
        ({"protocols": ["seen"]}, "unknown protocols"),
        ({"seeds": 0}, "at least 1"),
        ({"seeds": [-1]}, "list of seeds"),
        ({"seeds": "many"}, "list of seeds"),
        ({"budget": -1}, "budget"),
    ],
)
def test_bad_arguments(data: CQTDataset, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        compare(data, settings=FAST, progress=False, **kwargs)


def test_too_few_works_with_versions_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="at least 4 works with two or more.*has 3 among its 5"):
        compare(works((2, 2, 2, 1, 1)), settings=FAST, progress=False)
    with pytest.raises(ParameterError, match="CQTDataset"):
        compare([1, 2], settings=FAST, progress=False)  # type: ignore[arg-type]


def test_splits(data: CQTDataset) -> None:
    train, evaluate = split_unseen_works(data, 0)
    counts = data.class_counts()
    assert sum(1 for s in train.index.ids if counts[s] >= 2) == 3  # half of the 6 multi works
    model = CSINet(n_classes=train.n_songs, n_bins=data.n_bins, channels=(4, 8), embedding_dim=8)
    assert set(evaluate(model)) == {"map", "p_at_10", "mr1", "n_queries"}
    rare_train, rare_eval = split_rare_songs(data, 0)
    kept = rare_train.class_counts()
    assert sum(1 for s, c in counts.items() if c >= 2 and kept[s] == 1) == 3
    assert len(rare_train) + rare_eval(model)["n_queries"] == len(data)


def test_gallery_metrics_closed_form() -> None:
    d = np.array([[0.1, 0.5, 0.2], [0.9, 0.1, 0.3]])  # 2 queries x 3 gallery items
    result = gallery_metrics(d, ["a", "b"], ["a", "b", "b"])
    # query a: its one relevant item is first -> AP 1, rank 1; query b: b at ranks 1 and 2
    assert result.map == pytest.approx(1.0) and result.mr1 == 1.0
    late = gallery_metrics(d, ["b", "a"], ["a", "b", "b"])
    # query b: order 0 (a), 2 (b), 1 (b) -> ranks 2, 3: AP (1/2 + 2/3) / 2; query a: rank 3
    assert late.average_precision[0] == pytest.approx((0.5 + 2 / 3) / 2)
    assert late.rank1.tolist() == [2.0, 3.0]
    with pytest.raises(ParameterError, match=r"\[Q=2, G=3\]"):
        gallery_metrics(d[:, :2], ["a", "b"], ["a", "b", "b"])
