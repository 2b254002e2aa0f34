from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from covergan import cqt
from covergan.cqt import (
    CQTConfig,
    CQTExtractor,
    CQTNormalizer,
    center_crop_or_pad,
    random_crop,
)
from covergan.errors import (
    AudioLoadError,
    ExtractionError,
    NotFittedError,
    ParameterError,
)
from tests.signals import SR, tone

A4_BIN = 69 - 24  # MIDI A4 minus MIDI C1


# -- CQTConfig ---------------------------------------------------------------------------


def test_config_defaults_are_the_cqtnet_recipe() -> None:
    cfg = CQTConfig()
    assert (cfg.sr, cfg.hop_length, cfg.n_bins, cfg.bins_per_octave) == (22050, 512, 84, 12)
    assert cfg.fmin == pytest.approx(32.7032, abs=1e-4)  # C1
    assert (cfg.scale, cfg.pool, cfg.normalize) == ("magnitude", 20, "max")
    assert cfg.frame_rate == pytest.approx(22050 / 512 / 20)


def test_config_is_frozen_keyword_only_and_round_trips() -> None:
    cfg = CQTConfig(bins_per_octave=36, n_bins=252, scale="db", pool=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.sr = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        CQTConfig(22050)  # type: ignore[misc]
    assert CQTConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.digest() == CQTConfig.from_dict(cfg.to_dict()).digest()
    assert cfg.digest() != CQTConfig().digest()
    assert cfg.bins_per_semitone == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sr": 0}, "sr=0"),
        ({"n_bins": -1}, "n_bins"),
        ({"pool": 1.5}, "pool"),
        ({"bins_per_octave": 10}, "multiple of 12"),
        ({"n_bins": 120}, "Nyquist"),
        ({"fmin": -3.0}, "fmin"),
        ({"hop_length": 100}, "hop_length=100"),
        ({"scale": "log"}, "scale"),
        ({"normalize": "l2"}, "normalize"),
        ({"short_audio": "crash"}, "short_audio"),
        ({"top_db": 0.0}, "top_db"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        CQTConfig(**kwargs)  # type: ignore[arg-type]


def test_config_silence_value_per_scale() -> None:
    assert CQTConfig().silence_value == 0.0
    assert CQTConfig(scale="power").silence_value == 0.0
    assert CQTConfig(scale="db", top_db=60.0).silence_value == -60.0


def test_config_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ParameterError, match="unknown"):
        CQTConfig.from_dict({"sr": 22050, "colour": "red"})


# -- extraction of signals ---------------------------------------------------------------


def test_a4_tone_peaks_in_the_a4_bin(extractor: CQTExtractor) -> None:
    feats = extractor(tone(440.0), SR)
    assert feats.dtype == np.float32
    assert feats.shape[0] == 84
    assert np.argmax(feats.mean(axis=1)) == A4_BIN
    assert feats.max() == pytest.approx(1.0)  # divided by its max


def test_a4_tone_with_36_bins_per_octave() -> None:
    ext = CQTExtractor(bins_per_octave=36, n_bins=252)
    feats = ext(tone(440.0), SR)
    assert np.argmax(feats.mean(axis=1)) == 3 * A4_BIN


def test_frame_count_follows_pooling(extractor: CQTExtractor) -> None:
    y = tone(220.0, 10.0)
    feats = extractor(y, SR)
    assert feats.shape[1] == (1 + y.size // 512) // 20


def test_no_pooling_and_db_scale() -> None:
    ext = CQTExtractor(pool=1, scale="db", top_db=60.0)
    feats = ext(tone(440.0, 1.0), SR)
    assert feats.shape[1] == 1 + SR // 512
    assert feats.max() == pytest.approx(0.0, abs=1e-4)
    assert feats.min() >= -60.0


def test_power_scale_is_square_of_magnitude_before_pooling() -> None:
    y = tone(440.0, 1.0)
    mag = CQTExtractor(pool=1, normalize="none")(y, SR)
    power = CQTExtractor(pool=1, normalize="none", scale="power")(y, SR)
    np.testing.assert_allclose(power, mag.astype(np.float64) ** 2, rtol=1e-4, atol=1e-8)


def test_resamples_other_sample_rates(extractor: CQTExtractor) -> None:
    y = tone(440.0, 3.0, sr=44100)
    feats = extractor(y, 44100)
    assert np.argmax(feats.mean(axis=1)) == A4_BIN
    assert feats.shape[1] == extractor(tone(440.0, 3.0), SR).shape[1]


def test_multichannel_is_mixed_down(extractor: CQTExtractor) -> None:
    y = tone(440.0, 2.0)
    stereo = np.stack([y, y])
    np.testing.assert_allclose(extractor(stereo, SR), extractor(y, SR), atol=1e-6)
    with pytest.raises(ParameterError, match="transpose"):
        extractor(stereo.T, SR)


def test_silence_gives_zero_features(extractor: CQTExtractor) -> None:
    feats = extractor(np.zeros(SR * 2, dtype=np.float32), SR)
    assert np.all(feats == 0.0)
    db = CQTExtractor(scale="db")(np.zeros(SR * 2, dtype=np.float32), SR)
    assert np.all(np.isfinite(db))
    assert np.all(db == -80.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise(extractor: CQTExtractor, bad: float) -> None:
    y = tone(440.0, 1.0)
    y[100] = bad
    with pytest.raises(ParameterError, match="NaN or infinite"):
        extractor(y, SR)


@pytest.mark.parametrize("n", [0, 1, 300, 512 * 20 - 1])
def test_short_audio_is_padded_to_one_frame(extractor: CQTExtractor, n: int) -> None:
    feats = extractor(tone(440.0, 1.0)[:n], SR)
    assert feats.shape == (84, 1)
    assert np.all(np.isfinite(feats))


def test_short_audio_can_raise() -> None:
    ext = CQTExtractor(short_audio="raise")
    with pytest.raises(ParameterError, match="fewer than one pooled frame"):
        ext(np.ones(100, dtype=np.float32), SR)


@pytest.mark.parametrize(
    ("y", "sr", "match"),
    [
        ([0.0, 1.0], SR, "numpy array"),
        (np.zeros((2, 2, 5)), SR, "1-D or 2-D"),
        (np.zeros(10, dtype=complex), SR, "real-valued"),
        (np.zeros(10), 0, "sr=0"),
        (np.zeros(10), 22050.0, "sr=22050.0"),
    ],
)
def test_bad_signals_raise(extractor: CQTExtractor, y: object, sr: object, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        extractor(y, sr)  # type: ignore[arg-type]


def test_extractor_rejects_non_config() -> None:
    with pytest.raises(ParameterError, match="CQTConfig"):
        CQTExtractor({"sr": 1})  # type: ignore[arg-type]


def test_extractor_is_picklable_and_stateless(extractor: CQTExtractor) -> None:
    import pickle

    clone = pickle.loads(pickle.dumps(extractor))
    assert clone == extractor
    y = tone(330.0, 2.0)
    np.testing.assert_array_equal(clone(y, SR), extractor(y, SR))


# -- files -------------------------------------------------------------------------------


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "a4.wav"
    sf.write(path, tone(440.0, 3.0), SR)
    return path


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_load_formats(extractor: CQTExtractor, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"a4.{fmt}"
    sf.write(path, tone(440.0, 3.0), SR)
    y, sr = extractor.load(path)
    assert sr == SR and y.dtype == np.float32 and y.ndim == 1
    assert np.argmax(extractor.extract_file(path).mean(axis=1)) == A4_BIN


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_load_mp3(extractor: CQTExtractor, tmp_path: Path) -> None:
    path = tmp_path / "a4.mp3"
    sf.write(path, tone(440.0, 3.0), SR)
    assert np.argmax(extractor.extract_file(path).mean(axis=1)) == A4_BIN


def test_load_mixes_stereo_files_down(extractor: CQTExtractor, tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    left, right = tone(440.0, 1.0, amp=0.8), np.zeros(SR, dtype=np.float32)
    sf.write(path, np.stack([left, right], axis=1), SR)
    y, _ = extractor.load(path)
    np.testing.assert_allclose(y, left / 2, atol=1e-4)


def test_missing_file_names_the_path(extractor: CQTExtractor, tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioLoadError, match="nope.wav"):
        extractor.load(path)
    with pytest.raises(OSError, match="not found"):  # AudioLoadError is an OSError
        extractor.extract_file(path)


def test_directory_empty_corrupt_and_unsupported_files(
    extractor: CQTExtractor, tmp_path: Path
) -> None:
    with pytest.raises(AudioLoadError, match="directory"):
        extractor.load(tmp_path)
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(AudioLoadError, match="empty"):
        extractor.load(empty)
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(AudioLoadError, match="cannot read"):
        extractor.load(corrupt)
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 100)
    with pytest.raises(AudioLoadError, match="notes.txt"):
        extractor.load(text)


def test_zero_sample_audio_file(extractor: CQTExtractor, tmp_path: Path) -> None:
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioLoadError, match="no samples"):
        extractor.load(path)


def test_nan_in_a_float_wav_is_a_parameter_error(extractor: CQTExtractor, tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    y = tone(440.0, 1.0)
    y[10] = np.nan
    sf.write(path, y, SR, subtype="FLOAT")
    with pytest.raises(ParameterError, match="nan.wav"):
        extractor.extract_file(path)


# -- extract_many ------------------------------------------------------------------------


@pytest.fixture
def audio_files(tmp_path: Path) -> list[Path]:
    paths = []
    for i, f in enumerate([220.0, 330.0, 440.0]):
        p = tmp_path / "audio" / f"t{i}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(p, tone(f, 2.0), SR)
        paths.append(p)
    return paths


def test_extract_many_matches_single_file_extraction(
    extractor: CQTExtractor, audio_files: list[Path]
) -> None:
    result = extractor.extract_many(audio_files, progress=False)
    assert result.ok and result.n_cached == 0
    for p, f in zip(audio_files, result.features, strict=True):
        np.testing.assert_array_equal(f, extractor.extract_file(p))


def test_extract_many_in_two_processes_is_identical(
    extractor: CQTExtractor, audio_files: list[Path]
) -> None:
    one = extractor.extract_many(audio_files, n_jobs=1, progress=False)
    two = extractor.extract_many(audio_files, n_jobs=2, progress=False)
    for a, b in zip(one.features, two.features, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cache_is_keyed_by_content_and_config(
    extractor: CQTExtractor, audio_files: list[Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cold = extractor.extract_many(audio_files, cache_dir=cache, progress=False)
    warm = extractor.extract_many(audio_files, cache_dir=cache, progress=False)
    assert (cold.n_cached, warm.n_cached) == (0, 3)
    for a, b in zip(cold.features, warm.features, strict=True):
        np.testing.assert_array_equal(a, b)
    renamed = audio_files[0].rename(audio_files[0].with_name("renamed.wav"))
    assert extractor.extract_many([renamed], cache_dir=cache, progress=False).n_cached == 1
    other = CQTExtractor(pool=10)
    assert other.extract_many([renamed], cache_dir=cache, progress=False).n_cached == 0
    assert not list(cache.rglob("*.tmp"))


def test_rewritten_file_misses_the_cache_and_reruns_skip_hashing(
    extractor: CQTExtractor,
    audio_files: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    target = tmp_path / "song.wav"
    target.write_bytes(audio_files[0].read_bytes())
    first = extractor.extract_many([target], cache_dir=cache, progress=False).features[0]
    assert len(list((cache / "digests").glob("*.json"))) == 1

    hashed: list[Path] = []
    real_sha256 = cqt.hashlib.sha256

    def counting_sha256(*args: object) -> object:
        hashed.append(target)
        return real_sha256(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cqt.hashlib, "sha256", counting_sha256)
    again = extractor.extract_many([target], cache_dir=cache, progress=False)
    assert again.n_cached == 1 and len(hashed) == 1  # the memo's name only, not the content

    target.write_bytes(audio_files[1].read_bytes())  # same path, new content and mtime
    os.utime(target, ns=(0, target.stat().st_mtime_ns + 1_000_000))
    changed = extractor.extract_many([target], cache_dir=cache, progress=False)
    assert changed.n_cached == 0
    assert not np.array_equal(changed.features[0], first)


def test_crash_while_writing_leaves_no_cache_entry(
    extractor: CQTExtractor,
    audio_files: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"

    def crash(fh: object, *args: object, **kwargs: object) -> None:
        fh.write(b"\x93NUMPY half")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        cqt._atomic_save_npy(cache / "x.npy", np.zeros(3))
    assert not list(cache.iterdir())


def test_corrupt_cache_entry_is_recomputed(
    extractor: CQTExtractor, audio_files: list[Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    extractor.extract_many(audio_files[:1], cache_dir=cache, progress=False)
    (entry,) = cache.glob("*.npy")
    entry.write_bytes(b"garbage")
    again = extractor.extract_many(audio_files[:1], cache_dir=cache, progress=False)
    assert again.n_cached == 0 and again.ok
    np.testing.assert_array_equal(np.load(entry), again.features[0])


def test_extract_many_reports_failures(
    extractor: CQTExtractor, audio_files: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....garbage")
    missing = tmp_path / "missing.wav"
    paths = [audio_files[0], bad, missing]
    with pytest.raises(ExtractionError, match="bad.wav") as info:
        extractor.extract_many(paths, progress=False)
    assert "missing.wav" in str(info.value)
    assert [f.path for f in info.value.failures] == [bad, missing]  # type: ignore[attr-defined]
    result = extractor.extract_many(paths, progress=False, on_error="skip")
    assert result.features[0] is not None and result.features[1:] == [None, None]
    assert [f.error for f in result.failures] == ["AudioLoadError", "AudioLoadError"]
    assert "extracted 1/3 files" in result.report() and "2 failed" in result.report()


def test_a_recipe_librosa_refuses_fails_before_any_file(audio_files: list[Path]) -> None:
    # CoverHunter's 96 bins from 32 Hz at 16 kHz: the top bin is below 8 kHz, its filter not
    hunter = CQTExtractor(CQTConfig(sr=16000, hop_length=640, n_bins=96, fmin=32.0))
    with pytest.raises(
        ParameterError,
        match=r"filters .* reach 8066.9 Hz, past the Nyquist frequency sr/2=8000.0 Hz",
    ):
        hunter.extract_many(audio_files, progress=False, on_error="skip")
    with pytest.raises(ParameterError, match="past the Nyquist"):
        hunter(np.zeros(16000, np.float32), 16000)
    with pytest.raises(ParameterError, match="is one path; give a list"):
        CQTExtractor().extract_many(str(audio_files[0]))


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"on_error": "ignore"}, "on_error"), ({"n_jobs": 0}, "n_jobs")]
)
def test_extract_many_rejects_bad_options(
    extractor: CQTExtractor, audio_files: list[Path], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        extractor.extract_many(audio_files, **kwargs)  # type: ignore[arg-type]


# -- normaliser --------------------------------------------------------------------------


@pytest.fixture
def tracks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.gamma(1.0, 0.05, size=(84, n)).astype(np.float32) for n in (40, 55, 70)]


def test_normalizer_maps_into_unit_range(tracks: list[np.ndarray]) -> None:
    norm = CQTNormalizer().fit(tracks)
    y = norm(tracks[0])
    assert y.shape == tracks[0].shape
    assert y.min() >= -1.0 and y.max() <= 1.0
    # standardised: the per-bin mean over all frames is ~0
    allv = np.concatenate([norm(t) for t in tracks], axis=1)
    np.testing.assert_allclose(allv.mean(axis=1), 0.0, atol=0.02)


def test_normalizer_round_trip_inside_clip_range(tracks: list[np.ndarray]) -> None:
    norm = CQTNormalizer().fit(tracks)
    rng = np.random.default_rng(1)
    y = rng.uniform(-0.999, 0.999, size=(84, 30))
    x = norm.inverse(y)
    assert np.all(x >= 0)
    np.testing.assert_allclose(norm.forward(x), y, atol=1e-9)
    # and features -> model -> features for values not clipped
    z = (np.log(tracks[0].astype(np.float64) + norm.eps) - norm.mean_[:, None]) / norm.std_[:, None]
    inside = np.abs(z) < norm.clip
    back = norm.inverse(norm.forward(tracks[0].astype(np.float64)))
    np.testing.assert_allclose(back[inside], tracks[0][inside], rtol=1e-9, atol=1e-12)


def test_normalizer_torch_matches_numpy(tracks: list[np.ndarray]) -> None:
    norm = CQTNormalizer().fit(tracks)
    x = tracks[1]
    t = norm(torch.from_numpy(x)[None, None])
    assert t.shape == (1, 1, *x.shape) and t.dtype == torch.float32
    np.testing.assert_allclose(t[0, 0].numpy(), norm(x), atol=1e-5)
    np.testing.assert_allclose(
        norm.inverse(t)[0, 0].numpy(), norm.inverse(norm(x)), rtol=1e-4, atol=1e-7
    )


def test_normalizer_state_dict_round_trip(tracks: list[np.ndarray]) -> None:
    norm = CQTNormalizer(clip=2.5).fit(tracks)
    clone = CQTNormalizer.from_state_dict(norm.state_dict())
    np.testing.assert_array_equal(clone(tracks[0]), norm(tracks[0]))
    assert not CQTNormalizer.from_state_dict(CQTNormalizer().state_dict()).is_fitted
    with pytest.raises(ParameterError, match="CQTNormalizer state"):
        CQTNormalizer.from_state_dict({"log": True})


def test_normalizer_silence_and_floor(tracks: list[np.ndarray]) -> None:
    norm = CQTNormalizer().fit(tracks)
    assert norm.floor.shape == (84,)
    silence = norm.inverse(norm.floor[:, None] * np.ones((1, 5)))
    # silence is either represented exactly or, when it lies below -clip sigma, comes
    # back as the quietest representable value of its bin
    lowest = np.maximum(np.exp(norm.mean_ - norm.clip * norm.std_) - norm.eps, 0.0)
    clipped = np.log(norm.eps) < norm.mean_ - norm.clip * norm.std_
    np.testing.assert_allclose(silence[~clipped], 0.0, atol=1e-12)
    np.testing.assert_allclose(silence[clipped], np.repeat(lowest[clipped, None], 5, 1), rtol=1e-9)


def test_normalizer_for_config() -> None:
    assert not CQTNormalizer.for_config(CQTConfig(scale="db")).log
    assert CQTNormalizer.for_config(CQTConfig(scale="power")).eps == 1e-8
    assert CQTNormalizer.for_config(CQTConfig()).log


def test_normalizer_fits_on_a_bounded_seeded_draw(tracks: list[np.ndarray]) -> None:
    full = CQTNormalizer().fit(tracks)
    assert np.array_equal(CQTNormalizer().fit(tracks, max_tracks=3).mean_, full.mean_)
    a = CQTNormalizer().fit(tracks, max_tracks=2, seed=0)
    b = CQTNormalizer().fit(tracks, max_tracks=2, seed=0)
    c = CQTNormalizer().fit(tracks, max_tracks=1, seed=0)
    assert np.array_equal(a.mean_, b.mean_) and not np.array_equal(a.mean_, full.mean_)
    assert any(np.array_equal(c.mean_, CQTNormalizer().fit([t]).mean_) for t in tracks)
    with pytest.raises(ParameterError, match="max_tracks"):
        CQTNormalizer().fit(tracks, max_tracks=0)
    with pytest.raises(ParameterError, match="sequence"):
        CQTNormalizer().fit(iter(tracks), max_tracks=2)


def test_normalizer_errors_name_the_track_and_song_of_the_dataset() -> None:
    from covergan.data import CQTDataset

    feats = [np.ones((24, 8), np.float32) for _ in range(6)]
    feats[4], feats[5] = -feats[4], -feats[5]  # in dB, say, given as magnitudes
    songs = ["a", "a", "b", "b", "c", "c"]
    data = CQTDataset.from_arrays(feats, songs, config=CQTConfig(n_bins=24))
    with pytest.raises(ParameterError, match=r"^track 4 \(song 'c'\): log normalisation"):
        CQTNormalizer().fit(data)
    for seed in range(5):  # whichever 5 tracks the draw takes, the index is the dataset's
        with pytest.raises(ParameterError, match=r"^track [45] \(song 'c'\): log"):
            CQTNormalizer().fit(data, max_tracks=5, seed=seed)


def test_normalizer_errors(tracks: list[np.ndarray]) -> None:
    with pytest.raises(NotFittedError, match="fit"):
        CQTNormalizer()(tracks[0])
    with pytest.raises(ParameterError, match="no data"):
        CQTNormalizer().fit([])
    with pytest.raises(ParameterError, match="bins"):
        CQTNormalizer().fit([tracks[0], tracks[1][:10]])
    with pytest.raises(ParameterError, match="non-negative"):
        CQTNormalizer().fit([-tracks[0]])
    with pytest.raises(ParameterError, match="NaN"):
        CQTNormalizer().fit([np.full((84, 3), np.nan)])
    with pytest.raises(ParameterError, match="shape"):
        CQTNormalizer().fit([np.zeros(84)])
    norm = CQTNormalizer().fit(tracks)
    with pytest.raises(ParameterError, match="fitted on 84"):
        norm(np.zeros((12, 5)))
    with pytest.raises(ParameterError, match="eps"):
        CQTNormalizer(eps=0.0)
    with pytest.raises(ParameterError, match="clip"):
        CQTNormalizer(clip=-1.0)


# -- windows -----------------------------------------------------------------------------


def test_random_crop_is_seeded_and_in_range() -> None:
    x = np.arange(100, dtype=np.float32)[None].repeat(3, axis=0)
    a = random_crop(x, 20, rng=np.random.default_rng(5))
    b = random_crop(x, 20, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 20)
    assert np.all(np.diff(a[0]) == 1)  # contiguous frames
    starts = {int(random_crop(x, 20, rng=np.random.default_rng(s))[0, 0]) for s in range(50)}
    assert len(starts) > 10 and min(starts) >= 0 and max(starts) <= 80


def test_short_tracks_are_padded_or_tiled() -> None:
    x = np.arange(1, 6, dtype=np.float32)[None]
    padded = random_crop(x, 8, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(padded[0], [1, 2, 3, 4, 5, 0, 0, 0])
    tiled = center_crop_or_pad(x, 8, pad_mode="wrap")
    np.testing.assert_array_equal(tiled[0], [1, 2, 3, 4, 5, 1, 2, 3])
    wrapped = random_crop(x, 7, rng=np.random.default_rng(0), pad_mode="wrap")
    assert set(wrapped[0].tolist()) == {1, 2, 3, 4, 5}
    t = center_crop_or_pad(torch.from_numpy(x), 8, pad_value=-1.0)
    np.testing.assert_array_equal(t[0].numpy(), [1, 2, 3, 4, 5, -1, -1, -1])


def test_center_crop() -> None:
    x = np.arange(10)[None]
    np.testing.assert_array_equal(center_crop_or_pad(x, 4)[0], [3, 4, 5, 6])
    np.testing.assert_array_equal(center_crop_or_pad(x, 10)[0], np.arange(10))


@pytest.mark.parametrize("width", [0, -3, 2.5, True])
def test_bad_window_width(width: object) -> None:
    with pytest.raises(ParameterError, match="width"):
        center_crop_or_pad(np.zeros((2, 5)), width)  # type: ignore[arg-type]


def test_bad_pad_mode() -> None:
    with pytest.raises(ParameterError, match="pad_mode"):
        center_crop_or_pad(np.zeros((2, 5)), 8, pad_mode="reflect")  # type: ignore[arg-type]
