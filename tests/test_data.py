from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from covergan.cqt import CQTConfig, CQTExtractor, CQTNormalizer
from covergan.data import CQTDataset, SongIndex, split_by_song, split_recordings
from covergan.errors import (
    CheckpointError,
    CoverGANWarning,
    DatasetError,
    ExtractionError,
    ParameterError,
    StoreError,
    UnknownSongError,
)
from tests.signals import SR, tone

# -- SongIndex ---------------------------------------------------------------------------


def test_song_index_maps_both_ways_in_first_appearance_order() -> None:
    idx = SongIndex(["b", "a", "b", 7, "a", "b"])
    assert idx.ids == ("b", "a", 7)
    assert [idx.index(s) for s in ("b", "a", 7)] == [0, 1, 2]
    assert idx.song_id(2) == 7
    assert idx.class_counts() == {"b": 3, "a": 2, 7: 1}
    np.testing.assert_array_equal(idx.encode(["a", 7]), [1, 2])
    assert idx.decode(torch.tensor([2, 0])) == [7, "b"]
    assert "a" in idx and "z" not in idx and len(idx) == 3
    assert SongIndex.from_dict(idx.to_dict()) == idx


def test_unknown_song_suggests_close_ids() -> None:
    idx = SongIndex(["song-042", "song-043", "other"])
    with pytest.raises(UnknownSongError, match="did you mean 'song-042'") as info:
        idx.index("song-42")
    assert isinstance(info.value, KeyError)
    assert info.value.suggestions[0] == "song-042"
    with pytest.raises(KeyError, match="3 songs are known"):
        idx.index("zzzzzzzzzzzzzz")


@pytest.mark.parametrize("bad", [1.5, None, True, ("a",)])
def test_song_ids_must_be_str_or_int(bad: object) -> None:
    with pytest.raises(ParameterError, match="song ids must be str or int"):
        SongIndex(["a", bad])  # type: ignore[list-item]


def test_song_index_rejects_bad_class_index_and_state() -> None:
    idx = SongIndex(["a"])
    with pytest.raises(ParameterError, match="outside"):
        idx.song_id(3)
    with pytest.raises(ParameterError, match="SongIndex state"):
        SongIndex.from_dict({"ids": ["a", "a"], "counts": [1, 1]})


# -- CQTDataset from arrays --------------------------------------------------------------


def make_tracks(lengths: list[int], n_bins: int = 84, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((n_bins, n), dtype=np.float32) for n in lengths]


@pytest.fixture
def ds() -> CQTDataset:
    return CQTDataset.from_arrays(
        make_tracks([30, 50, 12, 40, 25, 60]), ["a", "a", "b", "c", "c", "c"], config=CQTConfig()
    )


def test_items_are_full_tracks_by_default(ds: CQTDataset) -> None:
    x, y = ds[1]
    assert x.shape == (1, 84, 50) and x.dtype == torch.float32 and y == 0
    assert ds.class_counts() == {"a": 2, "b": 1, "c": 3}
    assert ds.n_songs == 3 and ds.n_bins == 84 and len(ds) == 6
    np.testing.assert_array_equal(ds.lengths(), [30, 50, 12, 40, 25, 60])
    assert "6 recordings of 3 songs" in repr(ds)


def test_random_windows_are_seeded_and_change_with_epoch(ds: CQTDataset) -> None:
    train = ds.windows(20, crop="random", seed=3)
    a = torch.stack([train[i][0] for i in range(len(train))])
    b = torch.stack([ds.windows(20, seed=3)[i][0] for i in range(len(ds))])
    assert a.shape == (6, 1, 84, 20)
    torch.testing.assert_close(a, b)
    train.set_epoch(1)
    c = torch.stack([train[i][0] for i in range(len(train))])
    assert not torch.equal(a, c)
    # the short track (12 frames) is padded with silence at the end
    torch.testing.assert_close(a[2, :, :, 12:], torch.zeros(1, 84, 8))
    assert ds.window is None  # the view did not change the original


def test_center_windows_and_transform(ds: CQTDataset) -> None:
    norm = CQTNormalizer().fit(ds)
    ev = ds.windows(20, crop="center", transform=norm)
    x, _ = ev[1]
    torch.testing.assert_close(x, norm(torch.from_numpy(ds.features[1][:, 15:35]))[None])
    assert x.min() >= -1 and x.max() <= 1


def test_wrap_padding(ds: CQTDataset) -> None:
    x, _ = ds.windows(24, crop="center", pad_mode="wrap")[2]
    torch.testing.assert_close(x[0, :, 12:], x[0, :, :12])


def test_works_with_a_dataloader(ds: CQTDataset) -> None:
    loader = DataLoader(
        ds.windows(16), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 1, 84, 16) and yb.dtype == torch.int64


def test_db_features_pad_with_their_floor() -> None:
    cfg = CQTConfig(scale="db", top_db=60.0)
    ds = CQTDataset.from_arrays([-np.ones((84, 5))], ["x"], config=cfg, window=8)
    x, _ = ds[0]
    assert float(x[0, 0, -1]) == -60.0


@pytest.mark.parametrize(
    ("features", "songs", "kwargs", "error", "match"),
    [
        ([], [], {}, DatasetError, "empty"),
        (make_tracks([5, 5]), ["a"], {}, ParameterError, "2 feature arrays but 1 song"),
        ([np.zeros(84)], ["a"], {}, ParameterError, "shape"),
        ([np.zeros((84, 0))], ["a"], {}, ParameterError, "0 frames"),
        (
            [*make_tracks([5]), np.full((84, 3), np.nan)],
            np.array(["a", "b"]),  # numpy ids are named as the str they are
            {},
            ParameterError,
            r"track 1 \(song 'b'\): features contain NaN",
        ),
        (make_tracks([5], n_bins=12), ["a"], {"config": CQTConfig()}, ParameterError, "n_bins=84"),
        (
            make_tracks([5, 5], n_bins=12) + make_tracks([5]),
            ["a"] * 3,
            {},
            ParameterError,
            "different bin",
        ),
        (make_tracks([5]), ["a"], {"window": 0}, ParameterError, "window"),
        (make_tracks([5]), ["a"], {"crop": "left"}, ParameterError, "crop"),
        (make_tracks([5]), ["a"], {"pad_mode": "edge"}, ParameterError, "pad_mode"),
        (make_tracks([5]), ["a"], {"names": ["x", "y"]}, ParameterError, "names"),
    ],
)
def test_bad_arrays_raise(
    features: list[np.ndarray], songs: list[str], kwargs: dict[str, object], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        CQTDataset.from_arrays(features, songs, **kwargs)  # type: ignore[arg-type]


def test_another_datasets_tracks_are_checked_against_a_new_config() -> None:
    small = CQTDataset.from_arrays(make_tracks([5, 6], n_bins=12), ["a", "b"])
    with pytest.raises(ParameterError, match="the tracks have 12 bins, the CQT config n_bins=84"):
        CQTDataset(small.features, small.song_ids, config=CQTConfig())
    assert CQTDataset(small.features, small.song_ids).n_bins == 12


def test_index_out_of_range(ds: CQTDataset) -> None:
    with pytest.raises(IndexError):
        ds[6]
    assert ds[-1][1] == 2


# -- folders and manifests ---------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "songs"
    for song, freqs in {"alpha": [220.0, 233.0], "beta": [440.0]}.items():
        (root / song).mkdir(parents=True)
        for k, f in enumerate(freqs):
            sf.write(root / song / f"v{k}.wav", tone(f, 2.0), SR)
    (root / "gamma").mkdir()
    np.save(root / "gamma" / "cqtnet.npy", np.random.default_rng(0).random((84, 33)))
    (root / "beta" / "README.txt").write_text("ignored")
    (root / ".hidden").mkdir()
    return root


def test_from_folder_reads_audio_and_npy(
    folder: Path, extractor: CQTExtractor, tmp_path: Path
) -> None:
    ds = CQTDataset.from_folder(
        folder, extractor=extractor, progress=False, cache_dir=tmp_path / "c"
    )
    assert ds.class_counts() == {"alpha": 2, "beta": 1, "gamma": 1}
    assert ds.features[3].shape == (84, 33)
    assert ds.names[0].endswith("alpha/v0.wav")
    np.testing.assert_array_equal(
        ds.features[2], extractor.extract_file(folder / "beta" / "v0.wav")
    )
    assert ds.config == extractor.config


def test_folder_errors(tmp_path: Path, extractor: CQTExtractor) -> None:
    with pytest.raises(DatasetError, match="not found"):
        CQTDataset.from_folder(tmp_path / "nope")
    (tmp_path / "file.wav").write_bytes(b"x")
    with pytest.raises(DatasetError, match="got a file"):
        CQTDataset.from_folder(tmp_path / "file.wav")
    with pytest.raises(DatasetError, match="unknown dataset layout.*directly in it"):
        CQTDataset.from_folder(tmp_path)
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        CQTDataset.from_folder(empty_root)
    (empty_root / "song1").mkdir()
    (empty_root / "song1" / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match="song1 has no usable file"):
        CQTDataset.from_folder(empty_root, extractor=extractor)


def test_npy_folder_with_a_recipe_file_reads_with_that_recipe(tmp_path: Path) -> None:
    config = CQTConfig(n_bins=24, scale="db")
    for k in range(3):
        (tmp_path / f"s{k % 2}").mkdir(exist_ok=True)
        np.save(tmp_path / f"s{k % 2}" / f"r{k}.npy", np.full((24, 20), -40.0, np.float32))
    with pytest.raises(DatasetError, match="24 bins"):  # no recipe file: the CQTNet default
        CQTDataset.from_folder(tmp_path, progress=False)
    (tmp_path / "cqt_config.json").write_text(json.dumps(config.to_dict()))
    ds = CQTDataset.from_folder(tmp_path, progress=False)
    assert ds.config == config and ds.class_counts() == {"s0": 2, "s1": 1}
    other = CQTExtractor(CQTConfig(n_bins=24))  # one given is used as it is
    assert CQTDataset.from_folder(tmp_path, extractor=other, progress=False).config == other.config
    (tmp_path / "cqt_config.json").write_text(json.dumps({"n_bins": 24, "colour": "red"}))
    with pytest.raises(StoreError, match="cqt_config.json is not a CQT config"):
        CQTDataset.from_folder(tmp_path, progress=False)
    (tmp_path / "cqt_config.json").write_text("{not json")
    with pytest.raises(StoreError, match="cannot read the feature recipe"):
        CQTDataset.from_folder(tmp_path, progress=False)


def test_a_folder_scan_says_which_audio_it_leaves_out(tmp_path: Path) -> None:
    for song in ("a", "b"):
        (tmp_path / song).mkdir()
        np.save(tmp_path / song / "r.npy", np.ones((84, 5), np.float32))
    (tmp_path / "a" / "live.m4a").write_bytes(b"")
    with pytest.warns(CoverGANWarning, match=r"1 audio files left out .* 1 \.m4a files are not"):
        data = CQTDataset.from_folder(tmp_path, progress=False)
    assert len(data) == 2
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "only.aac").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"c has no usable file .*1 \.aac files are not scanned"):
        CQTDataset.from_folder(tmp_path, progress=False)


def test_folder_with_a_broken_file(folder: Path, extractor: CQTExtractor) -> None:
    (folder / "beta" / "broken.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(ExtractionError, match="broken.wav"):
        CQTDataset.from_folder(folder, extractor=extractor, progress=False)
    ds = CQTDataset.from_folder(folder, extractor=extractor, progress=False, on_error="skip")
    assert len(ds) == 4 and len(ds.failures) == 1 and "broken.wav" in ds.failures[0]


def test_song_whose_files_all_fail_is_dropped_with_a_warning(
    folder: Path, extractor: CQTExtractor
) -> None:
    (folder / "delta").mkdir()
    (folder / "delta" / "x.wav").write_bytes(b"garbage")
    with pytest.warns(CoverGANWarning, match="delta"):
        ds = CQTDataset.from_folder(folder, extractor=extractor, progress=False, on_error="skip")
    assert "delta" not in ds.index


def test_bad_npy_files(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    np.save(tmp_path / "s" / "t.npy", np.zeros((33, 84)))
    with pytest.raises(DatasetError, match="transpose"):
        CQTDataset.from_folder(tmp_path, progress=False)
    (tmp_path / "s" / "t.npy").write_bytes(b"not numpy")
    with pytest.raises(DatasetError, match="cannot read feature file"):
        CQTDataset.from_folder(tmp_path, progress=False)


def test_from_manifest(folder: Path, extractor: CQTExtractor) -> None:
    manifest = folder.parent / "manifest.csv"
    manifest.write_text("path,song_id,extra\nsongs/alpha/v0.wav,A,1\nsongs/gamma/cqtnet.npy,B,2\n")
    ds = CQTDataset.from_manifest(manifest, extractor=extractor, progress=False)
    assert ds.class_counts() == {"A": 1, "B": 1}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("file,song\nx.wav,a\n", "lacks column"),
        ("path,song_id\n", "lists no files"),
        ("path,song_id\n,a\n", "line 2: empty"),
    ],
)
def test_manifest_errors(tmp_path: Path, text: str, match: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(DatasetError, match=match):
        CQTDataset.from_manifest(manifest)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="manifest not found"):
        CQTDataset.from_manifest(tmp_path / "m.csv")


# -- save / load -------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    cfg = CQTConfig(scale="db", top_db=60.0)
    tracks = [np.asfortranarray(t) for t in make_tracks([30, 12, 40])]  # any memory layout
    ds = CQTDataset.from_arrays(tracks, ["a", 7, "a"], names=["x", "y", "z"], config=cfg)
    view = ds.windows(8, crop="center", transform=lambda x: x + 1)
    path = view.save(tmp_path / "sub" / "data.pt")  # missing folders are created
    back = CQTDataset.load(path)
    assert back.song_ids == ["a", 7, "a"] and back.names == ["x", "y", "z"]
    assert back.config == cfg and back.index == ds.index
    for a, b in zip(ds.features, back.features, strict=True):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    assert back.window is None and back.transform is None  # full tracks, no view settings
    assert back[0][0].shape == (1, 84, 30)
    no_config = CQTDataset.from_arrays(make_tracks([5]), ["a"])
    assert CQTDataset.load(no_config.save(tmp_path / "plain.pt")).config is None


def test_save_replaces_a_file_only_when_complete(
    tmp_path: Path, ds: CQTDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ds.save(tmp_path / "data.pt")
    before = path.read_bytes()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        CQTDataset.from_arrays(make_tracks([9]), ["z"]).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["data.pt"]


def test_load_errors(tmp_path: Path, ds: CQTDataset) -> None:
    with pytest.raises(CheckpointError, match="no dataset file"):
        CQTDataset.load(tmp_path / "missing.pt")
    good = ds.save(tmp_path / "data.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        CQTDataset.load(tmp_path / "cut.pt")
    torch.save({"format": "covergan-gan"}, tmp_path / "gan.pt")
    with pytest.raises(CheckpointError, match="not a covergan dataset"):
        CQTDataset.load(tmp_path / "gan.pt")
    state = torch.load(tmp_path / "data.pt", weights_only=True)
    torch.save({**state, "format_version": 99}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer"):
        CQTDataset.load(tmp_path / "new.pt")
    torch.save({**state, "song_ids": "abc"}, tmp_path / "typed.pt")
    with pytest.raises(CheckpointError, match="mistyped"):
        CQTDataset.load(tmp_path / "typed.pt")
    torch.save({**state, "song_ids": ["a"]}, tmp_path / "short.pt")
    with pytest.raises(CheckpointError, match="invalid dataset: got 6 feature arrays"):
        CQTDataset.load(tmp_path / "short.pt")


# -- splits ------------------------------------------------------------------------------


def test_split_by_song_never_splits_a_song() -> None:
    songs = [f"s{i}" for i in range(10) for _ in range(i % 3 + 1)]
    ds = CQTDataset.from_arrays(make_tracks([8] * len(songs)), songs)
    train, test = split_by_song(ds, 0.3, seed=1)
    assert set(train.index.ids).isdisjoint(test.index.ids)
    assert len(test.index) == 3 and len(train) + len(test) == len(ds)
    for side in (train, test):
        for song, n in side.class_counts().items():
            assert n == ds.class_counts()[song]
        assert sorted(set(side.labels.tolist())) == list(range(side.n_songs))
    again = split_by_song(ds, 0.3, seed=1)[1]
    assert again.index.ids == test.index.ids
    assert split_by_song(ds, 2, seed=1)[1].n_songs == 2


def test_split_by_song_errors(ds: CQTDataset) -> None:
    one = CQTDataset.from_arrays(make_tracks([5, 5]), ["a", "a"])
    with pytest.raises(DatasetError, match="at least 2"):
        split_by_song(one)
    with pytest.raises(ParameterError, match="test_size"):
        split_by_song(ds, 1.5)
    with pytest.raises(DatasetError, match="both sides"):
        split_by_song(ds, 3)
    with pytest.raises(ParameterError, match="test_size"):
        split_by_song(ds, "half")  # type: ignore[arg-type]


def test_split_recordings_keeps_songs_seen(ds: CQTDataset) -> None:
    train, test = split_recordings(ds, holdout=1, min_recordings=2, seed=0)
    assert test.class_counts() == {"a": 1, "c": 1}
    assert train.class_counts() == {"a": 1, "b": 1, "c": 2}
    with pytest.raises(DatasetError, match="no song has 5"):
        split_recordings(ds, min_recordings=5)
    with pytest.raises(ParameterError, match="holdout"):
        split_recordings(ds, holdout=2, min_recordings=2)


def test_unknown_song_error_survives_pickling() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(UnknownSongError("song-42", ["song-042"])))
    assert isinstance(error, UnknownSongError) and isinstance(error, KeyError)
    assert error.suggestions == ["song-042"] and "did you mean" in str(error)
