"""Tests of covergan.datasets: the synthesiser, toy covers and the Bach chorale dataset."""

from __future__ import annotations

import collections
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from covergan.cqt import CQTExtractor
from covergan.data import CQTDataset
from covergan.datasets import (
    ChoraleWork,
    CoverSet,
    Note,
    Timbre,
    chorale_covers,
    chorale_works,
    midi_to_hz,
    render,
    render_chorales,
    toy_covers,
)
from covergan.datasets import chorales as chorales_mod
from covergan.errors import CoverGANWarning, DatasetError, ParameterError

SR = 22050
SINE = Timbre(harmonics=(1.0,), attack=0.0, decay=0.0, sustain=1.0, release=0.0)


def spectrum(y: np.ndarray, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / sr), mag


# --------------------------------------------------------------------------------------
# Synthesiser
# --------------------------------------------------------------------------------------


def test_midi_to_hz_closed_form() -> None:
    np.testing.assert_allclose(
        midi_to_hz(np.array([69.0, 81.0, 60.0])), [440, 880, 261.6256], rtol=1e-6
    )


@pytest.mark.parametrize("pitch", [45.0, 69.0, 76.5])
def test_note_spectrum_peaks_at_its_pitch(pitch: float) -> None:
    y = render([Note(0.0, 2.0, pitch, 1.0, 0)], SINE, sr=SR)
    freqs, mag = spectrum(y)
    assert abs(freqs[np.argmax(mag)] - midi_to_hz(pitch)) < 1.0  # bin width 0.5 Hz


def test_harmonic_amplitudes_follow_the_timbre() -> None:
    timbre = Timbre(harmonics=(1.0, 0.0, 0.5), attack=0.0, decay=0.0, sustain=1.0, release=0.0)
    y = render([Note(0.0, 2.0, 57.0, 1.0, 0)], timbre, sr=SR)  # 220 Hz
    freqs, mag = spectrum(y)

    def at(f: float) -> float:
        return float(mag[np.argmin(np.abs(freqs - f))])

    assert at(660.0) / at(220.0) == pytest.approx(0.5, rel=0.02)
    assert at(440.0) < 1e-3 * at(220.0)


def test_partials_above_nyquist_are_dropped() -> None:
    # 2637 Hz with 8 equal partials at 22,050 Hz: only partials 1-4 fit below 11,025 Hz;
    # partial 5 (13,185 Hz) would alias to 8,865 Hz.
    timbre = Timbre(harmonics=(1.0,) * 8, attack=0.0, decay=0.0, sustain=1.0, release=0.0)
    y = render([Note(0.0, 1.0, 100.0, 1.0, 0)], timbre, sr=SR)
    freqs, mag = spectrum(y)
    f0 = float(midi_to_hz(100.0))
    partial = mag[np.argmin(np.abs(freqs - 4 * f0))]
    alias = mag[np.argmin(np.abs(freqs - (SR - 5 * f0)))]
    assert alias < 1e-3 * partial


def test_envelope_is_linear_adsr() -> None:
    timbre = Timbre(harmonics=(1.0,), attack=0.1, decay=0.1, sustain=0.5, release=0.2)
    y = render([Note(0.0, 1.0, 69.0, 1.0, 0)], timbre, sr=SR, headroom_db=0.0)
    assert len(y) == int(np.ceil(1.2 * SR))
    frame = SR // 100  # 10 ms blocks: a few periods of 440 Hz

    def level(t: float) -> float:
        i = round(t * SR)
        return float(np.abs(y[i : i + frame]).max())

    assert level(0.0) < 0.15  # rising from silence
    assert level(0.09) == pytest.approx(1.0, abs=0.02)  # end of the attack
    assert level(0.5) == pytest.approx(0.5, abs=0.02)  # sustain level
    assert level(1.1) == pytest.approx(0.25, abs=0.02)  # half-way through the release
    assert np.abs(y[-10:]).max() < 1e-3  # faded out


def test_render_is_peak_normalised_and_finite() -> None:
    notes = [Note(0.0, 0.5, 60.0, 1.0, 0), Note(0.2, 0.5, 64.0, 0.5, 1), Note(0.2, 0.5, 67.0)]
    y = render(notes, [Timbre.random(0), Timbre.random(1)], sr=SR, headroom_db=3.0)
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y))
    assert float(np.abs(y).max()) == pytest.approx(10 ** (-3 / 20), rel=1e-6)


def test_render_silence_and_fixed_duration() -> None:
    assert render([], SINE, sr=SR).shape == (0,)
    y = render([], SINE, sr=SR, duration=0.5)
    assert y.shape == (SR // 2,) and not y.any()
    y = render([Note(0.0, 0.5, 60.0, 0.0, 0)], SINE, sr=SR)  # velocity 0
    assert not y.any() and np.all(np.isfinite(y))
    y = render([Note(0.0, 5.0, 60.0)], SINE, sr=SR, duration=1.0)  # cut at the end
    assert y.shape == (SR,)


def test_render_is_seeded() -> None:
    timbre = Timbre(harmonics=(1.0, 0.5), noise=0.1, detune=5.0, vibrato_depth=20.0)
    notes = [Note(0.1 * i, 0.3, 60.0 + i, 0.8, 0) for i in range(8)]
    a = render(notes, timbre, sr=SR, seed=7)
    b = render(notes, timbre, sr=SR, seed=7)
    c = render(notes, timbre, sr=SR, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_timbre_is_seeded_and_valid() -> None:
    assert Timbre.random(3) == Timbre.random(3)
    assert Timbre.random(3) != Timbre.random(4)
    timbres = [Timbre.random(np.random.default_rng(i)) for i in range(50)]
    assert all(1 <= len(t.harmonics) <= 16 and max(t.harmonics) == 1.0 for t in timbres)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"harmonics": ()}, "harmonics"),
        ({"harmonics": (0.0, 0.0)}, "not all zero"),
        ({"harmonics": (1.0, -0.5)}, "non-negative"),
        ({"harmonics": (1.0,) * 65}, "1 to 64"),
        ({"harmonics": [1.0]}, "tuple"),
        ({"attack": -0.1}, "attack=-0.1"),
        ({"sustain": 1.5}, "sustain=1.5"),
        ({"release": float("nan")}, "release=nan"),
        ({"vibrato_depth": 200.0}, "vibrato_depth=200.0"),
        ({"detune": "5"}, "detune='5'"),
        ({"noise": 2.0}, "noise=2.0"),
    ],
)
def test_timbre_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        Timbre(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("notes", "kwargs", "match"),
    [
        ([(0.0, 1.0, 60.0)], {}, r"shape \(n_notes, 5\)"),
        ([(-1.0, 1.0, 60.0, 0.5, 0)], {}, "onset"),
        ([(0.0, 0.0, 60.0, 0.5, 0)], {}, "duration"),
        ([(0.0, 1.0, float("nan"), 0.5, 0)], {}, "pitch must be finite"),
        ([(0.0, 1.0, 60.0, 1.5, 0)], {}, "velocity"),
        ([(0.0, 1.0, 60.0, 0.5, 3)], {}, "instrument"),
        ([(0.0, 1.0, 60.0, 0.5, 0.5)], {}, "instrument"),
        ([(0.0, 1.0, 136.0, 0.5, 0)], {}, "Nyquist"),
        ([(0.0, 1.0, "x", 0.5, 0)], {}, "rows of"),
        ([], {"sr": 0}, "sr=0"),
        ([], {"headroom_db": -1.0}, "headroom_db=-1.0"),
        ([], {"duration": -2.0}, "duration=-2.0"),
        ([], {"seed": -1}, "seed=-1"),
        ([], {"seed": 1.5}, "seed=1.5"),
    ],
)
def test_render_errors(
    notes: list[tuple[object, ...]], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        render(notes, SINE, **kwargs)  # type: ignore[arg-type]


def test_render_timbre_errors() -> None:
    with pytest.raises(ParameterError, match="non-empty list"):
        render([], [])
    with pytest.raises(ParameterError, match="non-empty list"):
        render([], ["organ"])  # type: ignore[list-item]


# --------------------------------------------------------------------------------------
# Toy covers
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy() -> CoverSet:
    return toy_covers(3, 2, seed=0, duration=6.0)


def test_toy_covers_layout(toy: CoverSet) -> None:
    assert len(toy) == 6
    assert toy.song_ids == ["song000"] * 2 + ["song001"] * 2 + ["song002"] * 2
    assert toy.names[:2] == ["song000-v00", "song000-v01"]
    assert len(set(toy.names)) == len(toy)
    for y in toy.audio:
        assert y.dtype == np.float32 and y.ndim == 1 and np.all(np.isfinite(y))
        assert 3.0 < len(y) / toy.sr < 12.0
        assert float(np.abs(y).max()) == pytest.approx(10 ** (-1 / 20), rel=1e-5)


def test_toy_covers_seeded(toy: CoverSet) -> None:
    again = toy_covers(3, 2, seed=0, duration=6.0)
    assert all(np.array_equal(a, b) for a, b in zip(toy.audio, again.audio, strict=True))
    other = toy_covers(3, 2, seed=1, duration=6.0)
    assert not np.array_equal(toy.audio[0], other.audio[0])
    prefix = toy_covers(2, 2, seed=0, duration=6.0)  # fewer songs: same first songs
    assert all(np.array_equal(a, b) for a, b in zip(prefix.audio, toy.audio[:4], strict=True))


def test_toy_versions_differ_from_each_other(toy: CoverSet) -> None:
    a, b = toy.audio[0], toy.audio[1]
    assert len(a) != len(b) or not np.array_equal(a, b)


def test_toy_long_tail_counts() -> None:
    covers = toy_covers(10, 8, seed=3, long_tail=True, duration=2.0)
    counts = collections.Counter(covers.song_ids)
    assert sorted(counts.values(), reverse=True) == [8 // k if 8 // k else 1 for k in range(1, 11)]
    again = toy_covers(10, 8, seed=3, long_tail=True, duration=2.0)
    assert again.song_ids == covers.song_ids


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0, 2), {"seed": 0}, "n_songs=0"),
        ((2, 0), {"seed": 0}, "versions=0"),
        ((2.5, 2), {"seed": 0}, "n_songs=2.5"),
        ((2, True), {"seed": 0}, "versions=True"),
        ((2, 2), {"seed": -1}, "seed=-1"),
        ((2, 2), {"seed": 0, "duration": 0.0}, "duration=0.0"),
        ((2, 2), {"seed": 0, "duration": float("inf")}, "duration=inf"),
        ((2, 2), {"seed": 0, "sr": 4000}, "sr=4000"),
    ],
)
def test_toy_covers_errors(args: tuple[object, ...], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        toy_covers(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_cover_set_write(toy: CoverSet, tmp_path: Path, fmt: str) -> None:
    paths = toy.write(tmp_path, format=fmt)  # type: ignore[arg-type]
    assert paths[0] == tmp_path / "song000" / f"song000-v00.{fmt}"
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["song000", "song001", "song002"] + [p.name for p in paths]
    )  # no temporary files left behind
    y, sr = sf.read(paths[3], dtype="float32")
    assert sr == toy.sr
    np.testing.assert_allclose(y, toy.audio[3], atol=0 if fmt == "wav" else 2**-15)


def test_cover_set_write_bad_format(toy: CoverSet, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="format='mp3'"):
        toy.write(tmp_path, format="mp3")  # type: ignore[arg-type]


def test_cover_set_to_dataset(toy: CoverSet, extractor: CQTExtractor, tmp_path: Path) -> None:
    ds = toy.to_dataset(extractor, window=8, crop="center")
    assert isinstance(ds, CQTDataset)
    assert len(ds) == 6 and ds.n_songs == 3
    assert ds.names == toy.names and ds.config == extractor.config
    assert ds.features[0].shape == (84, int((1 + len(toy.audio[0]) // 512) // 20))
    np.testing.assert_array_equal(ds.features[0], extractor(toy.audio[0], toy.sr))
    x, label = ds[0]
    assert tuple(x.shape) == (1, 84, 8) and label == 0
    # The written folder is the layout CQTDataset.from_folder reads.
    toy.write(tmp_path)
    folder = CQTDataset.from_folder(tmp_path, extractor=extractor, progress=False)
    assert sorted(folder.song_ids) == sorted(toy.song_ids)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"song_ids": ["a"]}, "must match"),
        ({"names": ["x", "x"]}, "repeated"),
        ({"song_ids": ["a/b", "c"]}, "path separators"),
        ({"names": ["", "y"]}, "non-empty"),
        ({"audio": [np.zeros(4), np.zeros(4, np.float32)]}, "float32"),
        ({"audio": [np.zeros((2, 4), np.float32), np.zeros(4, np.float32)]}, "1-D"),
        ({"audio": [np.full(4, np.nan, np.float32), np.zeros(4, np.float32)]}, "NaN"),
        ({"sr": 0}, "sr=0"),
    ],
)
def test_cover_set_errors(change: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {
        "audio": [np.zeros(4, np.float32)] * 2,
        "song_ids": ["a", "b"],
        "names": ["x", "y"],
        "sr": SR,
    }
    fields.update(change)
    with pytest.raises(ParameterError, match=match):
        CoverSet(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Chorales: pure helpers (no music21 needed)
# --------------------------------------------------------------------------------------


def test_edit_distance_closed_form() -> None:
    kitten, sitting = np.array([1, 2, 3, 3, 4, 5]), np.array([6, 2, 3, 3, 2, 5, 7])
    d = chorales_mod._edit_distances(kitten, [sitting, kitten, np.array([], dtype=np.int64)])
    np.testing.assert_allclose(d, [3 / 7, 0.0, 1.0])  # kitten -> sitting is 3 edits


def test_contour_ignores_key_rhythm_and_passing_notes() -> None:
    # C D E (quarters) then a half-note F, vs. the same a fourth up, with the D split
    # in two and an eighth-note passing tone between beats.
    plain = np.array([[0, 1, 60], [1, 1, 62], [2, 1, 64], [3, 2, 65]], dtype=float)
    varied = np.array(
        [[0, 1, 65], [1, 0.5, 67], [1.5, 0.5, 67], [2, 0.5, 69], [2.5, 0.5, 71], [3, 2, 70]],
        dtype=float,
    )
    np.testing.assert_array_equal(chorales_mod._contour(plain), [2, 2, 1])
    np.testing.assert_array_equal(chorales_mod._contour(varied), [2, 2, 1])


def test_time_warp_fermata_and_long_rests() -> None:
    # Notes 0-2 and 2-4 (fermata at 4), an 8-beat rest, then 12-13.
    on, off = np.array([0.0, 2.0, 12.0]), np.array([2.0, 4.0, 13.0])
    warp = chorales_mod._time_warp(on, off, np.array([4.0]), beat=1.0, hold=1.0)
    # The fermata adds 1 beat from q=4 on; the rest is cut from 8 to 2 beats.
    np.testing.assert_allclose(warp(np.array([0.0, 2.0, 4.0, 12.0, 13.0])), [0, 2, 5, 7, 8])


def test_chorale_functions_need_music21(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "music21", None)  # makes `import music21` fail
    with pytest.raises(ImportError, match=r'pip install "covergan\[datasets\]"'):
        chorale_works()
    with pytest.raises(ImportError, match="music21"):
        chorale_covers(files=["bwv270"])


# --------------------------------------------------------------------------------------
# Chorales: a few real scores (music21)
# --------------------------------------------------------------------------------------

needs_music21 = pytest.mark.skipif(
    importlib.util.find_spec("music21") is None, reason="music21 is not installed"
)

# Two harmonisations of "Befiehl du deine Wege" (Passion chorale), two encodings of one
# harmonisation of "O Ewigkeit, du Donnerwort", and one single chorale.
PASSION = ["bwv270", "bwv271"]
EWIGKEIT = ["bwv20.7", "bwv20.11"]
SINGLE = ["bwv253"]
FILES = PASSION + EWIGKEIT + SINGLE


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("music21")
    root = tmp_path_factory.mktemp("covergan-cache")
    chorale_works(files=FILES, cache_dir=root, progress=False)  # parse once
    return root


def test_chorale_works_groups_by_melody(cache: Path) -> None:
    works = chorale_works(files=FILES, cache_dir=cache, progress=False)
    assert [w.harmonisations for w in works] == [("bwv270", "bwv271")]
    (work,) = works
    assert work.song_id == "bwv270" and work.title == "Befiehl du deine Wege"
    assert len(work) == 2 and all(p.suffix == ".mxl" for p in work.paths)
    with_singles = chorale_works(files=FILES, cache_dir=cache, progress=False, include_singles=True)
    singles = [w for w in with_singles if len(w) == 1]
    assert [w.harmonisations for w in singles] == [("bwv20.7",), ("bwv253",)]
    assert singles[0].duplicates == ("bwv20.11",)  # same notes: a duplicate encoding
    one = chorale_works(files=FILES, cache_dir=cache, progress=False, include_singles=1)
    assert [w.song_id for w in one] == ["bwv270", "bwv20.7"]


def test_chorale_covers_end_to_end(cache: Path, extractor: CQTExtractor) -> None:
    ds = chorale_covers(
        files=PASSION, renders=2, seed=0, extractor=extractor, cache_dir=cache, progress=False
    )
    assert len(ds) == 4 and ds.n_songs == 1
    assert ds.names == ["bwv270-r0", "bwv270-r1", "bwv271-r0", "bwv271-r1"]
    assert ds.song_ids == ["bwv270"] * 4 and ds.config == extractor.config
    assert all(f.shape[0] == 84 and f.shape[1] > 20 for f in ds.features)
    assert (cache / "features").is_dir()


def test_render_chorales_seeded_and_cached(cache: Path) -> None:
    works = chorale_works(files=PASSION, cache_dir=cache, progress=False)
    first = render_chorales(works, renders=2, seed=5, format="wav", cache_dir=cache, progress=False)
    audio = [sf.read(r.path, dtype="float32")[0] for r in first]
    for r, y in zip(first, audio, strict=True):
        assert r.seconds == pytest.approx(len(y) / SR)
        assert 20.0 < r.seconds < 200.0
        assert -6 <= r.transpose <= 6 and 72 * 0.7 <= r.tempo <= 72 * 1.3
        r.path.unlink()
    again = render_chorales(works, renders=2, seed=5, format="wav", cache_dir=cache, progress=False)
    assert again == first
    for r, y in zip(again, audio, strict=True):
        assert np.array_equal(sf.read(r.path, dtype="float32")[0], y)  # bit for bit
    mtime = again[0].path.stat().st_mtime_ns
    render_chorales(works[:1], renders=1, seed=5, format="wav", cache_dir=cache, progress=False)
    assert again[0].path.stat().st_mtime_ns == mtime  # served from the cache
    assert not np.array_equal(audio[0], audio[1])  # two renders differ


def test_rendered_chorale_sounds_in_the_drawn_key(cache: Path, extractor: CQTExtractor) -> None:
    # The pitch-class profile of the CQT matches the score's, rolled by the transposition.
    works = chorale_works(files=PASSION, cache_dir=cache, progress=False)
    (work,) = works
    score = chorales_mod._parse_cached(work.paths[0], cache, None)
    notes = np.concatenate([np.asarray(v) for v in score["voices"]])
    profile = np.bincount(notes[:, 2].round().astype(int) % 12, weights=notes[:, 1], minlength=12)
    for r in render_chorales(works, renders=3, seed=1, cache_dir=cache, progress=False)[:3]:
        chroma = extractor(*sf.read(r.path, dtype="float32")).reshape(7, 12, -1).sum(axis=(0, 2))
        corr = [np.corrcoef(np.roll(profile, k), chroma)[0, 1] for k in range(12)]
        assert int(np.argmax(corr)) == r.transpose % 12  # CQT bin 0 is C1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_works": 0}, "max_works=0"),
        ({"include_singles": -1}, "include_singles=-1"),
        ({"include_singles": "all"}, "include_singles='all'"),
        ({"n_jobs": 0}, "n_jobs=0"),
        ({"files": []}, "selects no chorale"),
        ({"files": ["bwv2700"]}, "did you mean .*'bwv270'"),
        ({"files": ["/no/such/chorale.mxl"]}, "not found"),
    ],
)
@needs_music21
def test_chorale_works_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        chorale_works(progress=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"renders": 0}, "renders=0"),
        ({"seed": -3}, "seed=-3"),
        ({"sr": 1000}, "sr=1000"),
        ({"format": "mp3"}, "format='mp3'"),
        ({"n_jobs": 0}, "n_jobs=0"),
    ],
)
def test_render_chorales_errors(cache: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        render_chorales([], cache_dir=cache, progress=False, **kwargs)  # type: ignore[arg-type]


def test_render_chorales_needs_works(cache: Path) -> None:
    with pytest.raises(ParameterError, match="ChoraleWork"):
        render_chorales(["bwv270"], cache_dir=cache)  # type: ignore[list-item]


def test_chorale_covers_errors(cache: Path) -> None:
    with pytest.raises(DatasetError, match="include_singles=True"):
        chorale_covers(files=SINGLE, cache_dir=cache, progress=False)
    with pytest.raises(ParameterError, match="CQTExtractor"):
        chorale_covers(files=PASSION, extractor="cqt", cache_dir=cache)  # type: ignore[arg-type]


def test_chorale_works_warns_on_skipped_files(cache: Path) -> None:
    with pytest.warns(CoverGANWarning, match="not a four-part chorale"):
        works = chorale_works(files=["bwv846", *PASSION], cache_dir=cache, progress=False)
    assert [w.song_id for w in works] == ["bwv270"]


def test_chorale_works_accepts_own_files(cache: Path, tmp_path: Path) -> None:
    (work,) = chorale_works(
        files=PASSION[:1], cache_dir=cache, progress=False, include_singles=True
    )
    mine = tmp_path / "mine.mxl"
    mine.write_bytes(work.paths[0].read_bytes())
    works = chorale_works(files=[mine, "bwv271"], cache_dir=cache, progress=False)
    assert [w.harmonisations for w in works] == [("bwv271", "mine")]
    assert works[0].paths[1] == mine
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / "mine.mxl"
    twin.write_bytes(mine.read_bytes())
    with pytest.raises(ParameterError, match="two chorale files are named 'mine'"):
        chorale_works(files=[mine, twin], cache_dir=cache, progress=False)


def test_chorale_work_is_frozen() -> None:
    work = ChoraleWork(song_id="x", title=None, harmonisations=("x",), paths=(Path("x.mxl"),))
    with pytest.raises(AttributeError):
        work.song_id = "y"  # type: ignore[misc]


def test_a_cover_set_prints_its_size_not_its_audio() -> None:
    audio = [np.zeros(22050, dtype=np.float32)] * 3
    covers = CoverSet(audio, ["a", "a", "b"], ["x", "y", "z"], 22050)
    assert repr(covers) == "CoverSet(3 recordings of 2 songs, 3 s at 22050 Hz)"
