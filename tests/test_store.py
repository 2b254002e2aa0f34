"""The on-disk feature store: write once with validation, open from the index, memory-map."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from covergan.cqt import CQTConfig, CQTExtractor
from covergan.data import CQTDataset
from covergan.errors import ExtractionError, ParameterError, StoreError
from covergan.store import (
    INDEX_FILE,
    STORE_FILE,
    FeatureStore,
    extract_to_store,
    is_store,
)

BINS = 12


def track(k: int, frames: int = 30) -> np.ndarray:
    return np.random.default_rng(k).random((BINS, frames)).astype(np.float32)


def filled(root: Path, n: int = 6, **kwargs: object) -> FeatureStore:
    store = FeatureStore.create(root, n_bins=BINS, **kwargs)  # type: ignore[arg-type]
    for k in range(n):
        store.add(f"song-{k % 3}", f"rec-{k}.wav", track(k, 20 + k))
    return store


def test_round_trip_reads_only_what_is_asked(tmp_path: Path) -> None:
    filled(tmp_path)
    assert is_store(tmp_path) and not is_store(tmp_path / "song-0")
    store = FeatureStore.open(tmp_path)
    assert len(store) == 6 and "rec-3.wav" in store and "rec-9.wav" not in store
    data = store.dataset(window=8, crop="center")
    assert data.stored and data.n_bins == BINS and data.n_songs == 3
    assert data.lengths().tolist() == [20, 21, 22, 23, 24, 25]
    np.testing.assert_array_equal(np.asarray(data.features[4]), track(4, 24))
    x, label = data[4]
    assert tuple(x.shape) == (1, BINS, 8) and label == 1
    # plain numpy reads every file: the folder is still <song>/<recording>.npy
    np.testing.assert_array_equal(np.load(tmp_path / "song-1" / "rec-4.npy"), track(4, 24))
    # views and subsets stay lazy; save() reads the tracks into one file
    sub = data.subset([1, 4])
    assert sub.stored and sub.lengths().tolist() == [21, 24]
    loaded = CQTDataset.load(sub.save(tmp_path / "sub.pt"))
    np.testing.assert_array_equal(loaded.features[1], track(4, 24))
    assert FeatureStore.open(tmp_path).verify() == []


def test_from_folder_opens_a_store_and_keeps_the_old_layout(tmp_path: Path) -> None:
    filled(tmp_path / "store")
    assert CQTDataset.from_folder(tmp_path / "store").stored
    old = tmp_path / "old" / "a"
    old.mkdir(parents=True)
    np.save(old / "x.npy", track(0))
    legacy = CQTDataset.from_folder(tmp_path / "old", extractor=CQTExtractor(n_bins=BINS))
    assert not legacy.stored and len(legacy) == 1
    FeatureStore.create(tmp_path / "cfg", config=CQTConfig(n_bins=24))
    with pytest.raises(ParameterError, match="another recipe"):
        CQTDataset.from_folder(tmp_path / "cfg", extractor=CQTExtractor(n_bins=36))


def test_numpy_integer_sizes_are_written_as_json_ints(tmp_path: Path) -> None:
    FeatureStore.create(tmp_path, n_bins=np.int64(BINS), min_frames=np.int32(3))  # type: ignore[arg-type]
    reopened = FeatureStore.create(tmp_path, n_bins=BINS, min_frames=3)
    assert len(reopened) == 0


def test_float16_halves_the_files_and_reads_back(tmp_path: Path) -> None:
    store = filled(tmp_path / "h", dtype="float16")
    full = filled(tmp_path / "f")
    half_size = (tmp_path / "h" / store.records[0].file).stat().st_size
    assert half_size < 0.6 * (tmp_path / "f" / full.records[0].file).stat().st_size
    arr = FeatureStore.open(tmp_path / "h").tracks()[0]
    assert arr.dtype == np.float16 and arr.flags.f_contiguous
    np.testing.assert_allclose(arr, track(0, 20), atol=1e-3)
    assert FeatureStore.open(tmp_path / "h").dataset()[0][0].dtype.is_floating_point
    with pytest.raises(ParameterError, match="float16"):
        store.add("s", "loud", np.full((BINS, 4), 1e6, dtype=np.float32))


@pytest.mark.parametrize(
    ("features", "match"),
    [
        (np.zeros((BINS + 1, 5)), "bins"),
        (np.zeros((BINS, 2)), "min_frames"),
        (np.full((BINS, 5), np.nan), "bad: features contain NaN"),
        (np.zeros((2, BINS, 5)), "expected features"),
    ],
)
def test_add_validates_once(tmp_path: Path, features: np.ndarray, match: str) -> None:
    store = FeatureStore.create(tmp_path, n_bins=BINS, min_frames=3)
    with pytest.raises(ParameterError, match=match):
        store.add("s", "bad", features)
    assert len(FeatureStore.open(tmp_path)) == 0 and not list(tmp_path.rglob("*.npy"))


def test_add_is_idempotent_and_refuses_file_collisions(tmp_path: Path) -> None:
    store = filled(tmp_path)
    again = store.add("song-0", "rec-0.wav", track(99))  # same name: the stored one is kept
    assert again == store.records[0] and len(store) == 6
    with pytest.raises(StoreError, match="already stored as a recording of song 'song-0'"):
        store.add("song-1", "rec-0.wav", track(7))  # not dropped in silence
    # the same song folder and file under another spelling of its path is the same recording
    first = store.add("song-2", "data/song-2/take.wav", track(8))
    assert store.add("song-2", "/mnt/share/data/song-2/take.wav", track(9)) == first
    assert store.find("song-2", "../data/song-2/take.wav") == first
    with pytest.raises(StoreError, match="already holds data/song-2/take.wav"):
        store.add("song-2", "data/other/take.wav", track(10))  # another folder: a collision
    with pytest.raises(StoreError, match="already holds data/song-2/take.wav"):
        store.add("song-2", "setB/song-2/take.wav", track(11))  # another dataset's: too
    with pytest.raises(StoreError, match="already holds data/song-2/take.wav"):
        store.add("song-2", "take.wav", track(12))  # a bare file name spells no path
    with pytest.raises(StoreError, match="already holds rec-0.wav"):
        store.add("song-0", "rec-0.flac", track(5))
    dotted = store.add("song-0", "bwv244.37-r0", track(6))  # only audio/npy suffixes go
    assert dotted.file == "song-0/bwv244.37-r0.npy"
    assert len(FeatureStore.open(tmp_path)) == 8  # 6, "take" and the dotted one


def test_create_refuses_other_settings_and_newer_stores(tmp_path: Path) -> None:
    filled(tmp_path)
    with pytest.raises(StoreError, match=r"another store settings .*dtype"):
        FeatureStore.create(tmp_path, n_bins=BINS, dtype="float16")
    head = json.loads((tmp_path / STORE_FILE).read_text())
    (tmp_path / STORE_FILE).write_text(json.dumps({**head, "format_version": 99}))
    with pytest.raises(StoreError, match="newer covergan"):
        FeatureStore.open(tmp_path)
    with pytest.raises(StoreError, match="newer covergan"):
        FeatureStore.create(tmp_path, n_bins=BINS)
    with pytest.raises(StoreError, match="no feature store"):
        FeatureStore.open(tmp_path / "nowhere")


def test_missing_and_truncated_files_are_named(tmp_path: Path) -> None:
    store = filled(tmp_path)
    (tmp_path / store.records[1].file).unlink()
    cut = tmp_path / store.records[2].file
    cut.write_bytes(cut.read_bytes()[:-40])
    with pytest.raises(StoreError, match=r"2 missing or truncated .*rec-1.npy: missing"):
        FeatureStore.open(tmp_path)
    kept = FeatureStore.open(tmp_path, on_error="skip")
    assert len(kept) == 4 and len(kept.skipped) == 2 and "rec-2.npy" in kept.skipped[1]
    data = CQTDataset.from_folder(tmp_path, on_error="skip")
    assert len(data) == 4 and data.failures == kept.skipped


def test_verify_finds_changed_bytes(tmp_path: Path) -> None:
    store = filled(tmp_path)
    path = tmp_path / store.records[3].file
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    bad = FeatureStore.open(tmp_path).verify()
    assert len(bad) == 1 and "rec-3.npy: checksum" in bad[0]


def test_a_cut_index_line_is_ignored_then_repaired(tmp_path: Path) -> None:
    store = filled(tmp_path, n=3)
    with open(tmp_path / INDEX_FILE, "ab") as fh:  # a writer killed mid-line
        fh.write(b'{"song": "song-9", "name": "half')
    assert len(FeatureStore.open(tmp_path)) == 3
    store = FeatureStore.create(tmp_path, n_bins=BINS)
    store.add("song-9", "late.wav", track(9))
    lines = (tmp_path / INDEX_FILE).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)
    with open(tmp_path / INDEX_FILE, "a") as fh:
        fh.write("not json\n")
    with pytest.raises(StoreError, match="damaged index line"):
        FeatureStore.open(tmp_path)


def test_a_full_disk_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = filled(tmp_path, n=3)
    before = (tmp_path / INDEX_FILE).read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(StoreError, match=r"disk filled while writing .*rec-7.npy.* 3 indexed"):
        store.add("song-1", "rec-7.wav", track(7))
    monkeypatch.undo()
    assert (tmp_path / INDEX_FILE).read_bytes() == before
    assert not list(tmp_path.rglob("*.tmp")) and FeatureStore.open(tmp_path).verify() == []


def test_create_removes_the_temporary_files_of_dead_writers(tmp_path: Path) -> None:
    filled(tmp_path, n=3)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    host = socket.gethostname().replace(".", "_").replace("-", "_")
    folder = tmp_path / "song-0"
    stale = folder / f".rec-9.v2.{host}-{int(dead.stdout)}-abc123.tmp"  # killed mid-write
    live = folder / f".rec-8.{host}-{os.getpid()}-abc123.tmp"  # a writer still running
    other = folder / f".rec-7.other_host-{int(dead.stdout)}-abc123.tmp"  # another machine's
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    store = FeatureStore.create(tmp_path, n_bins=BINS)
    assert not stale.exists() and live.exists() and other.exists()
    assert len(store) == 3 and store.verify() == []


def _writer(root: str, names: list[int]) -> None:
    store = FeatureStore.create(root, n_bins=BINS)
    for k in names:
        store.add(f"song-{k % 4}", f"rec-{k}.wav", track(k))


def test_two_writers_at_once_lose_and_corrupt_nothing(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    jobs = [
        ctx.Process(target=_writer, args=(str(tmp_path), list(range(0, 30)))),
        ctx.Process(target=_writer, args=(str(tmp_path), [*range(29, -1, -1), 30, 31])),
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
        assert job.exitcode == 0
    store = FeatureStore.open(tmp_path)
    assert sorted(int(r.name[4:-4]) for r in store.records) == list(range(32))
    assert len((tmp_path / INDEX_FILE).read_text().splitlines()) == 32
    assert store.verify() == [] and not list(tmp_path.rglob("*.tmp"))


def test_extraction_resumes_and_reports_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for k in range(5):
        np.save(src / f"r{k}.npy", track(k))
        paths.append(src / f"r{k}.npy")
    (src / "broken.npy").write_bytes(b"junk")
    paths.append(src / "broken.npy")
    songs = ["a", "a", "b", "b", "c", "c"]
    extractor = CQTExtractor(n_bins=BINS)
    store = FeatureStore.create(tmp_path / "out", config=extractor.config)
    real_add = FeatureStore.add
    calls = []

    def interrupted(self: FeatureStore, *args: object) -> object:
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args)
        return real_add(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FeatureStore, "add", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_to_store(store, paths, songs, extractor=extractor, progress=False)
    monkeypatch.undo()
    store = FeatureStore.create(tmp_path / "out", config=extractor.config)
    with pytest.raises(ExtractionError, match=r"1 file\(s\) failed .*other 3 were stored"):
        extract_to_store(store, paths, songs, extractor=extractor, progress=False)
    done = extract_to_store(
        store, paths, songs, extractor=extractor, progress=False, on_error="skip"
    )
    assert (done.written, done.present, len(done.failures)) == (0, 5, 1)
    assert "broken.npy" in str(done.failures[0])
    (tmp_path / "elsewhere").mkdir()  # another file for a/r0.npy: a failure of its own
    np.save(tmp_path / "elsewhere" / "r0.npy", track(9))
    clash = extract_to_store(
        store, [tmp_path / "elsewhere" / "r0.npy"], ["a"], extractor=extractor, on_error="skip"
    )
    assert (clash.written, len(clash.failures)) == (0, 1)
    assert "would be stored as a/r0.npy, which already holds" in str(clash.failures[0])
    # a repeated row is one recording; one stored for another song is a failure of its own
    again = extract_to_store(
        store, [paths[0], paths[0], paths[2]], ["a", "a", "z"], extractor=extractor,
        on_error="skip",
    )  # fmt: skip
    assert (again.written, again.present, len(again.failures)) == (0, 1, 1)
    assert "already stored as a recording of song 'b'" in str(again.failures[0])
    half = extract_to_store(
        FeatureStore.create(tmp_path / "half", config=extractor.config),
        paths[:5],
        songs[:5],
        extractor=extractor,
        progress=False,
        shard=(1, 2),
    )
    assert half.written == 2
    with pytest.raises(ParameterError, match="shard"):
        extract_to_store(store, paths, songs, extractor=extractor, shard=(2, 2))
    with pytest.raises(ParameterError, match="another recipe"):
        extract_to_store(store, paths, songs, extractor=CQTExtractor(n_bins=BINS, pool=2))


def test_silence_and_lengths_come_from_the_index(tmp_path: Path) -> None:
    store = filled(tmp_path, n=3)
    store.add("song-0", "quiet.wav", np.zeros((BINS, 9), dtype=np.float32))
    data = FeatureStore.open(tmp_path).dataset()
    assert data.silent().tolist() == [False, False, False, True]
    in_memory = CQTDataset([np.asarray(x) for x in data.features], data.song_ids)
    assert in_memory.silent().tolist() == data.silent().tolist()
    assert in_memory.lengths().tolist() == data.lengths().tolist() == [20, 21, 22, 9]


def test_fit_sample_and_balance_from_a_store(tmp_path: Path) -> None:
    from tests.test_references import make, works

    data = works((3, 2, 2, 1))
    store = FeatureStore.create(tmp_path, config=data.config, dtype="float16")
    for x, song, name in zip(data.features, data.song_ids, data.names, strict=True):
        store.add(song, name, x)
    opened = CQTDataset.from_folder(tmp_path)
    aug = make(references=2).fit(tmp_path)  # the store's own recipe (24 bins), no extractor
    assert aug.config_ == data.config
    assert aug.sample("work-3", 2).shape[0] == 2
    # the store itself goes in as its folder does, and gets the same augmenter
    same = make(references=2).fit(FeatureStore.open(tmp_path))
    assert torch.equal(same.sample("work-3", 2, seed=0), aug.sample("work-3", 2, seed=0))
    with pytest.raises(ParameterError, match="another recipe"):
        make(extractor=CQTExtractor(CQTConfig(n_bins=12))).fit(FeatureStore.open(tmp_path))
    mixed = aug.balance(opened.windows(16, crop="center"), target="max")
    counts = mixed.class_counts()
    assert len(mixed) > len(opened) and len(set(counts.values())) == 1
