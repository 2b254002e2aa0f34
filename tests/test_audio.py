"""Tests for covergan.audio: CQT -> audio by Griffin-Lim, WAV writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from covergan.audio import _to_magnitude, _unpool, to_audio, write_wav
from covergan.cqt import CQTConfig, CQTNormalizer
from covergan.errors import CoverGANWarning, ParameterError

CONFIG = CQTConfig()
A4_BIN = 45  # C1 + 45 semitones = A4 = 440 Hz
N_FRAMES = 3  # pooled frames: 3 * 20 * 512 samples, about 1.4 s


def _tone_features(bin_index: int = A4_BIN) -> np.ndarray:
    c = np.zeros((CONFIG.n_bins, N_FRAMES))
    c[bin_index] = 1.0
    return c


@pytest.fixture(scope="module")
def a4_audio() -> np.ndarray:
    # The first librosa CQT call of a process compiles numba code (~15-30 s): do it once.
    return to_audio(_tone_features(), CONFIG, n_iter=4, seed=1)


def _dominant_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1.0 / sr)[spectrum.argmax()])


def test_single_bin_cqt_sounds_at_that_bins_frequency(a4_audio: np.ndarray) -> None:
    assert a4_audio.dtype == np.float32
    assert a4_audio.shape == (N_FRAMES * CONFIG.pool * CONFIG.hop_length - 1,)
    hz = CONFIG.fmin * 2 ** (A4_BIN / CONFIG.bins_per_octave)
    assert hz == pytest.approx(440.0, rel=1e-3)
    # the tone falls in the same (semitone-wide) CQT bin
    assert abs(np.log2(_dominant_hz(a4_audio, CONFIG.sr) / hz) * 12) < 0.5
    assert np.abs(a4_audio).max() == pytest.approx(0.9, rel=1e-5)  # peak-normalised


def test_batch_equals_items_with_the_same_seed(a4_audio: np.ndarray) -> None:
    batch = np.stack([_tone_features(), _tone_features(A4_BIN - 12)])[:, None]  # (2, 1, 84, T)
    y = to_audio(torch.from_numpy(batch), CONFIG, n_iter=4, seed=1)
    assert y.shape == (2, 1, a4_audio.size)
    np.testing.assert_array_equal(y[0, 0], a4_audio)
    assert abs(np.log2(_dominant_hz(y[1, 0], CONFIG.sr) / 220.0) * 12) < 0.5


@pytest.mark.parametrize("n_bins", [24, 36])
def test_fewer_octaves_work_too(a4_audio: np.ndarray, n_bins: int) -> None:
    # librosa's per-octave downsampling frames a signal differently with fewer octaves
    config = CQTConfig(n_bins=n_bins)
    features = np.zeros((n_bins, N_FRAMES))
    features[n_bins - 5] = 1.0
    y = to_audio(features, config, n_iter=1)
    assert y.ndim == 1 and np.isfinite(y).all()
    frames = N_FRAMES * config.pool
    assert (frames - 1) * config.hop_length < y.size < frames * config.hop_length


def test_model_space_input_goes_through_the_normalizer() -> None:
    rng = np.random.default_rng(0)
    norm = CQTNormalizer().fit([rng.uniform(0, 1, size=(CONFIG.n_bins, 40)) for _ in range(2)])
    model_space = np.full((CONFIG.n_bins, N_FRAMES), -1.0)
    model_space[A4_BIN] = 1.0
    got = to_audio(model_space, CONFIG, n_iter=1, normalizer=norm)
    expected = to_audio(norm.inverse(model_space), CONFIG, n_iter=1)
    np.testing.assert_array_equal(got, expected)


def test_scales_become_magnitudes() -> None:
    x = np.array([[-0.5, 0.0, 0.25, 1.0]])
    np.testing.assert_allclose(_to_magnitude(x, CQTConfig(scale="magnitude")), [[0, 0, 0.25, 1]])
    np.testing.assert_allclose(_to_magnitude(x, CQTConfig(scale="power")), [[0, 0, 0.5, 1]])
    db = np.array([[-80.0, -20.0, 0.0]])
    np.testing.assert_allclose(_to_magnitude(db, CQTConfig(scale="db")), [[1e-4, 0.1, 1.0]])


def test_unpool_interpolates_between_frame_centres() -> None:
    c = np.array([[0.0, 4.0, 8.0]])
    out = _unpool(c, 4)
    assert out.shape == (1, 12)
    assert out[0, 0] == out[0, 1] == 0.0  # held before the first centre (1.5)
    np.testing.assert_allclose(out[0, 2:10], np.arange(0.5, 8.5, 1.0))
    np.testing.assert_allclose(out.reshape(1, 3, 4).mean(axis=-1), [[0.5, 4.0, 7.5]])
    assert _unpool(c, 1) is c


def test_to_audio_errors() -> None:
    c = _tone_features()
    with pytest.raises(ParameterError, match=r"n_bins=84, T\) with T >= 1, got \(80, 3\)"):
        to_audio(c[:80], CONFIG)
    with pytest.raises(ParameterError, match="got \\(84, 0\\)"):
        to_audio(c[:, :0], CONFIG)
    bad = c.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ParameterError, match="features contains NaN or inf"):
        to_audio(bad, CONFIG)
    with pytest.raises(ParameterError, match="n_iter=0"):
        to_audio(c, CONFIG, n_iter=0)
    with pytest.raises(ParameterError, match="seed=-1"):
        to_audio(c, CONFIG, seed=-1)
    with pytest.raises(ParameterError, match="peak=0"):
        to_audio(c, CONFIG, peak=0)
    with pytest.raises(ParameterError, match="peak='1'"):
        to_audio(c, CONFIG, peak="1")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="normalizer must be a fitted CQTNormalizer"):
        to_audio(c, CONFIG, normalizer="yes")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="config must be a CQTConfig"):
        to_audio(c, {"sr": 22050})  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="must be a NumPy array or torch tensor"):
        to_audio(c.tolist(), CONFIG)  # type: ignore[arg-type]


def test_write_wav_round_trip(tmp_path: Path) -> None:
    y = np.sin(np.linspace(0, 100, 2205)).astype(np.float32) * 0.5
    path = write_wav(tmp_path / "out" / "tone.wav", y, 22050)
    assert path == tmp_path / "out" / "tone.wav"
    back, sr = sf.read(path)
    assert sr == 22050
    np.testing.assert_allclose(back, y, atol=1 / 32768 + 1e-7)
    assert [p.name for p in path.parent.iterdir()] == ["tone.wav"]
    stereo = write_wav(tmp_path / "stereo.wav", torch.from_numpy(np.stack([y, -y])), 8000)
    back, _ = sf.read(stereo)
    assert back.shape == (y.size, 2)
    np.testing.assert_allclose(back[:, 1], -y, atol=1 / 32768 + 1e-7)


def test_write_wav_warns_before_clipping(tmp_path: Path) -> None:
    with pytest.warns(CoverGANWarning, match="clips them"):
        write_wav(tmp_path / "loud.wav", np.array([0.0, 1.5, -2.0]), 8000)
    write_wav(tmp_path / "float.wav", np.array([0.0, 1.5]), 8000, subtype="FLOAT")


def test_write_wav_errors(tmp_path: Path) -> None:
    y = np.zeros(10)
    with pytest.raises(ParameterError, match="sr=0"):
        write_wav(tmp_path / "a.wav", y, 0)
    with pytest.raises(ParameterError, match="y contains NaN"):
        write_wav(tmp_path / "a.wav", np.array([0.0, np.inf]), 8000)
    with pytest.raises(ParameterError, match=r"y must have shape \(n,\) or \(channels, n\)"):
        write_wav(tmp_path / "a.wav", np.zeros((1, 2, 3)), 8000)
    with pytest.raises(ParameterError, match=r"y must have shape"):
        write_wav(tmp_path / "a.wav", np.zeros(0), 8000)
    with pytest.raises(ParameterError, match=r"more channels than samples.*pass y.T"):
        write_wav(tmp_path / "a.wav", np.zeros((1000, 2)), 8000)  # (n, channels)
    with pytest.raises(ParameterError, match="subtype='MP3' is not valid for WAV"):
        write_wav(tmp_path / "a.wav", y, 8000, subtype="MP3")
    assert list(tmp_path.iterdir()) == []
