"""Smoke test of the downstream benchmark protocol (benchmarks/downstream.py) on toy data.

Tiny shapes and a handful of steps: it checks the protocol's plumbing (split, every
condition, CAS, summary, table, JSON, plot, cache), not the numbers.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from covergan.data import CQTDataset

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "downstream.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("covergan_bench_downstream", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def toy_dataset() -> CQTDataset:
    """14 works with 2-5 recordings (key-shifted, noisy copies of a base CQT) + 6 singles."""
    rng = np.random.default_rng(0)
    feats: list[np.ndarray] = []
    songs: list[str] = []
    counts = [2, 3, 4, 5, 2, 3, 4, 2, 3, 2, 5, 2, 3, 4] + [1] * 6
    for i, n in enumerate(counts):
        base = rng.random((84, 40)).astype(np.float32) ** 4
        for _ in range(n):
            x = np.roll(base, int(rng.integers(-3, 4)), axis=0)
            x = x[:, : int(rng.integers(20, 41))] + 0.05 * rng.random((84, 1), dtype=np.float32)
            feats.append(x / x.max())
            songs.append(f"song-{i:02d}")
    return CQTDataset.from_arrays(feats, songs)


def tiny_settings(bench: ModuleType) -> object:
    return bench.Settings(
        data="toy",
        seeds=(0, 1),
        window=16,
        gan_steps=2,
        gan=(("d_width", 8), ("g_width", 8), ("max_width", 32)),
        csi_steps=3,
        csi_batch=4,
        csi_channels=(4, 8),
        cas_per_song=2,
        filter_oversample=2,
        version_steps=2,
        versions=(("batch_size", 4), ("d_width", 4), ("g_width", 4), ("max_width", 16)),
        check_per_reference=2,
    )


def test_split_is_by_work_and_long_tailed(bench: ModuleType) -> None:
    data = toy_dataset()
    s = tiny_settings(bench)
    split = bench.make_split(data, 0, s)
    train, retr, test = (
        set(split.train.song_ids),
        set(split.retrieval.song_ids),
        split.minority_test,
    )
    assert not train & retr  # split by work
    assert set(test.song_ids) == set(split.minority_songs) <= train
    counts = split.train.class_counts()
    assert all(counts[m] in (1, 2) for m in split.minority_songs)
    assert not set(test.names) & set(split.train.names)  # held-out recordings are not trained on
    singles = {s for s, c in data.class_counts().items() if c == 1}
    assert singles <= retr  # distractors
    assert split.summary["minority_test"] == len(split.minority_songs) == round(0.5 * len(train))
    again = bench.make_split(data, 0, s)
    assert again.train.names == split.train.names  # seeded
    assert bench.make_split(data, 1, s).train.names != split.train.names


def test_protocol_runs_every_condition_and_metric(bench: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("covergan.augmenter")
    s = tiny_settings(bench)
    out = bench.run(s, jobs=1, workdir=str(tmp_path / "work"), data=toy_dataset())

    summary = out["summary"]
    assert set(summary["conditions"]) == set(bench.DEFAULT_CONDITIONS)
    for cond in bench.DEFAULT_CONDITIONS:
        row = summary["conditions"][cond]
        assert set(row) == set(bench.METRICS)
        for metric in bench.METRICS:
            assert len(row[metric]["values"]) == 2  # one per seed
            assert np.isfinite(row[metric]["mean"])
            assert np.isfinite(row[metric]["std"])
    assert set(summary["cas"]) == set(bench.CAS_METRICS)
    assert 0.0 <= summary["cas"]["cas_synthetic"]["mean"] <= 1.0
    assert set(summary["versions_check"]) == set(bench.CHECK_METRICS)
    for metric in bench.CHECK_METRICS:
        assert np.isfinite(summary["versions_check"][metric]["mean"])

    table = out["table"]
    for cond in bench.DEFAULT_CONDITIONS:
        assert f"| {bench.LABELS[cond]} |" in table
    for header in (
        "MAP", "P@10", "MR1", "acc. seen minority", "CAS", "paired difference",
        "version model on held-out works", "classic+versions - classic",
    ):  # fmt: skip
        assert header in table
    assert "±" in table

    # raw numbers of every seed and condition, JSON-ready
    for seed in s.seeds:
        for cond in bench.DEFAULT_CONDITIONS:
            assert f"{cond}/{seed}" in out["results"]
        assert f"cas/{seed}" in out["results"]
        assert f"vfit/{seed}" in out["results"] and f"vcheck/{seed}" in out["results"]
        assert out["results"][f"classic+versions/{seed}"]["synthetic"]["kept"] > 0
    json.loads(json.dumps(out, default=float))

    # a second run with the same settings is served from the cache
    again = bench.run(s, jobs=1, workdir=str(tmp_path / "work"), data=toy_dataset())
    assert all(r.get("cached") for r in again["results"].values())
    assert again["table"] == table

    png = tmp_path / "downstream.png"
    bench.plot(s, summary, str(png))
    assert png.stat().st_size > 0

    # (e) as a transform of every window: same version models, new CSI runs, no items added
    online = dataclasses.replace(
        s, version_augment=0.5, conditions=("versions", "classic+versions")
    )
    res = bench.run(online, jobs=1, workdir=str(tmp_path / "work"), data=toy_dataset())["results"]
    for seed in s.seeds:
        assert res[f"vfit/{seed}"].get("cached")
        row = res[f"classic+versions/{seed}"]
        assert not row.get("cached") and row["synthetic"] == {"version_augment": 0.5}
        assert np.isfinite(row["map"])

    # the oversampling control: crops of the planned songs' own recordings, as many as (c)'s
    copies = dataclasses.replace(s, conditions=("none", "classic", "copies", "classic+copies"))
    run = bench.run(copies, jobs=1, workdir=str(tmp_path / "work"), data=toy_dataset())
    assert "classic+copies - classic" in run["table"]
    for seed in s.seeds:
        row = run["results"][f"classic+copies/{seed}"]
        assert row["synthetic"]["kept"] == out["results"][f"gan/{seed}"]["synthetic"]["planned"]
        assert np.isfinite(row["map"])

    # the opt-in class-GAN conditions: with classic augmentation, and filtered
    opt_in = ("classic+gan", "gan-filt", "classic+gan-filt")
    more = bench.run(
        dataclasses.replace(s, conditions=("none", "classic", *opt_in)),
        jobs=1,
        workdir=str(tmp_path / "work"),
        data=toy_dataset(),
    )
    assert "classic+gan - classic" in more["table"]
    for seed in s.seeds:
        assert more["results"][f"fit/{seed}"].get("cached")  # the same class GAN
        assert more["results"][f"classic+gan-filt/{seed}"]["synthetic"]["kept"] >= 0
        assert all(np.isfinite(more["results"][f"{c}/{seed}"]["map"]) for c in opt_in)

    # the same synthetic samples swapped into the real items instead of added to them
    swap = dataclasses.replace(
        s, synthetic_mode="replace", conditions=("gan", "versions", "copies")
    )
    swapped = bench.run(swap, jobs=1, workdir=str(tmp_path / "work"), data=toy_dataset())
    assert "gan - copies" in swapped["table"] and "versions - copies" in swapped["table"]
    res = swapped["results"]
    added = {**out["results"], **run["results"]}
    for seed in s.seeds:
        assert res[f"fit/{seed}"].get("cached") and res[f"vfit/{seed}"].get("cached")
        for cond in ("gan", "versions", "copies"):
            row = res[f"{cond}/{seed}"]
            assert not row.get("cached") and row["synthetic"]["kept"] > 0
            assert np.isfinite(row["map"])
            assert row["synthetic"] == added[f"{cond}/{seed}"]["synthetic"]  # same samples


def test_replace_draws_keep_the_real_items_and_swap_planned_songs(bench: ModuleType) -> None:
    import torch

    data = toy_dataset()
    real = data.windows(16, crop="random", seed=0)
    song = data.song_ids[0]
    pool = {song: torch.full((3, 1, 84, 16), -1.0)}
    planned = [i for i, sid in enumerate(data.song_ids) if sid == song]

    def swapped(p: float, seed: int = 0, epoch: int = 0) -> list[int]:
        items = bench.ReplaceDraws(real, pool, p, seed)
        items.set_epoch(epoch)
        assert len(items) == len(real) and list(items.labels) == list(real.labels)
        out = []
        for i in range(len(items)):
            x, y, flag = items[i]
            assert y == real.labels[i] and bool((x == -1).all()) == flag
            out.append(int(flag))
        return out

    assert sum(swapped(0.0)) == 0
    all_in = swapped(1.0)
    assert [i for i, f in enumerate(all_in) if f] == planned  # only the planned song
    assert swapped(0.5) == swapped(0.5)  # seeded
    draws = [swapped(0.5, seed=k, epoch=e) for k in range(4) for e in range(4)]
    assert len({tuple(d) for d in draws}) > 1  # new swaps per seed and epoch


def test_cli_rejects_a_swap_probability_outside_0_1(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--synthetic-mode", "replace", "--replace-p", "1.5"])
    assert "--replace-p 1.5 must be in [0, 1]" in capsys.readouterr().err


def test_cli_parses_overrides(bench: ModuleType) -> None:
    parser_settings = bench.Settings(target="4", max_ratio=None)
    assert bench._target(parser_settings.target) == 4
    assert bench._target("median") == "median"
    assert bench.Settings().key("csi_steps") != bench.Settings(csi_steps=1).key("csi_steps")
    # model caches are keyed on the resolved configs: naming a default changes nothing
    assert bench.Settings().key("versions") == bench.Settings(
        versions=(("content_weight", 1.0),)
    ).key("versions")
    assert bench.Settings().key("versions") != bench.Settings(
        versions=(("content_weight", 0.0),)
    ).key("versions")
    assert bench.Settings().key("gan") == bench.Settings(gan=(("g_width", 16),)).key("gan")


def test_saved_dataset_and_device_settings(bench: ModuleType, tmp_path: Path) -> None:
    data = toy_dataset()
    path = data.save(tmp_path / "toy.pt")
    back = bench.load_dataset(str(path))  # a saved dataset: no audio stack needed
    assert back.song_ids == data.song_ids and back.names == data.names
    # the device counts in every model's cache key, but the CPU default leaves old keys as
    # they were
    cpu, gpu = bench.Settings(), bench.Settings(device="cuda")
    for fields in (bench._CSI_FIELDS, bench._GAN_FIELDS, bench._VERSION_FIELDS):
        assert cpu.key(*fields) != gpu.key(*fields)
        assert cpu.key(*fields) == cpu.key(*(f for f in fields if f != "device"))
    assert bench._gan_path(tmp_path, 0, cpu) != bench._gan_path(tmp_path, 0, gpu)


def test_generated_corpus_is_built_once_into_the_workdir(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake_load(spec: str) -> CQTDataset:  # stands in for the 4-minute render
        calls.append(spec)
        return toy_dataset()

    monkeypatch.setattr(bench, "load_dataset", fake_load)
    assert bench.prepare_data("chorales", tmp_path) == "chorales"  # others pass through
    first = bench.prepare_data("toy300", tmp_path / "wd")
    assert first == str(tmp_path / "wd" / "toy300.pt") and calls == ["toy300"]
    assert bench.prepare_data("toy300", tmp_path / "wd") == first and calls == ["toy300"]
    back = CQTDataset.load(first)  # what each worker reads
    assert back.song_ids == toy_dataset().song_ids
