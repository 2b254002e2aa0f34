"""Listening to CQT features: approximate inversion to audio and WAV writing.

A CQT feature in the CQTNet format keeps only magnitudes, averaged over ``pool`` frames
and divided by the track's maximum, so the way back is an estimate, not an inverse:

- the phase is estimated by Griffin-Lim iterations (:func:`librosa.griffinlim_cqt`), which
  gives the familiar "phasey", slightly metallic sound;
- pooling removed every detail shorter than ``pool * hop_length / sr`` seconds (about
  0.46 s with the defaults): the pooled frames are interpolated back, so notes blur into
  smooth swells and onsets are lost;
- the absolute level was normalised away: the result is peak-normalised instead.

It is meant for a person to hear whether a synthetic CQT carries harmony, register and
rough rhythm, not to reproduce a recording.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

from covergan._checks import check_count, is_real
from covergan._io import atomic_write
from covergan.cqt import CQTConfig, CQTNormalizer
from covergan.errors import CoverGANWarning, ParameterError

__all__ = ["to_audio", "write_wav"]

ArrayLike: TypeAlias = "npt.NDArray[Any] | torch.Tensor"


def to_audio(
    features: ArrayLike,
    config: CQTConfig,
    *,
    n_iter: int = 32,
    seed: int = 0,
    peak: float | None = 0.9,
    normalizer: CQTNormalizer | None = None,
) -> npt.NDArray[np.float32]:
    """Estimate a waveform whose CQT matches the given CQT features.

    Undoes the feature recipe of ``config`` step by step: the scale (``"db"`` values
    become amplitudes ``10 ** (x / 20)``, ``"power"`` values their square roots,
    negative magnitudes are clipped to 0), then the time pooling (each pooled frame is
    linearly interpolated back to ``config.pool`` CQT frames), then the phase
    (``n_iter`` Griffin-Lim iterations with librosa's CQT at ``config.sr``,
    ``config.hop_length``, ``config.fmin`` and ``config.bins_per_octave``).

    Model-space CQTs (the generator's [-1, 1] output) are first mapped back to the
    config's scale by passing the fitted ``normalizer``.

    Parameters
    ----------
    features : np.ndarray or torch.Tensor [shape=(..., n_bins, T)]
        CQT features in the format ``config`` describes (e.g. ``(84, T)``, ``(1, 84, T)``
        or a batch ``(n, 1, 84, T)``), ``T >= 1`` pooled frames; model-space values when
        ``normalizer`` is given.
    config : CQTConfig
        The recipe the features were made with.
    n_iter : int
        Griffin-Lim iterations (more: cleaner phase, slower).
    seed : int
        Seed of the random initial phase; same seed, same waveform. Every item of a
        batch uses it, so a batch gives the same waveforms as its items one by one.
    peak : float or None
        Scale each waveform so its largest absolute sample is ``peak`` (0 < peak <= 1);
        ``None`` keeps librosa's raw level.
    normalizer : CQTNormalizer, optional
        The fitted normaliser that mapped features to model space; its ``inverse`` is
        applied first.

    Returns
    -------
    np.ndarray [shape=(..., L)], float32
        Waveform(s) at ``config.sr`` with the leading dimensions of ``features``; ``L`` is
        the length of the longest audio whose CQT has exactly ``T * config.pool`` frames
        (``T * config.pool * config.hop_length - 1`` for the default recipe).

    Raises
    ------
    ParameterError
        A bin count other than ``config.n_bins``, no frames, NaN/inf values,
        ``n_iter < 1``, a negative ``seed`` or ``peak`` outside (0, 1].
    """
    if not isinstance(config, CQTConfig):
        raise ParameterError(f"config must be a CQTConfig, got {type(config).__name__}")
    check_count("n_iter", n_iter, 1)
    check_count("seed", seed, 0)
    if peak is not None and not (is_real(peak) and np.isfinite(peak) and 0.0 < peak <= 1.0):
        raise ParameterError(f"peak={peak!r} must be in (0, 1] or None")
    if normalizer is not None and not callable(getattr(normalizer, "inverse", None)):
        raise ParameterError(
            f"normalizer must be a fitted CQTNormalizer (or have its inverse) or None, got "
            f"{type(normalizer).__name__}"
        )
    c = _as_float64(features, name="features")
    if normalizer is not None:
        c = np.asarray(normalizer.inverse(c), dtype=np.float64)
    if c.ndim < 2 or c.shape[-2] != config.n_bins or c.shape[-1] < 1:
        raise ParameterError(
            f"features must have shape (..., n_bins={config.n_bins}, T) with T >= 1, got {c.shape}"
        )
    mag = _unpool(_to_magnitude(c, config), config.pool)

    import librosa  # heavy import (numba), only needed here

    # One 2-d call per item: batched output equals item-by-item output (same seed each),
    # and librosa compiles its kernels for one array rank only.
    items = mag.reshape(-1, *mag.shape[-2:])
    out = np.empty((items.shape[0], _signal_length(config, mag.shape[-1])), dtype=np.float32)
    for i, item in enumerate(items):
        y = librosa.griffinlim_cqt(
            item.astype(np.float32),
            n_iter=n_iter,
            sr=config.sr,
            hop_length=config.hop_length,
            fmin=config.fmin,
            bins_per_octave=config.bins_per_octave,
            # the longest signal librosa frames into exactly this many (centred) CQT frames
            length=out.shape[-1],
            random_state=seed,
        )
        top = float(np.abs(y).max())
        out[i] = y * (peak / top) if peak is not None and top > 0 else y
    return out.reshape(*mag.shape[:-2], out.shape[-1])


@functools.lru_cache(maxsize=64)
def _signal_length(config: CQTConfig, n_frames: int) -> int:
    """The longest signal librosa's CQT frames into exactly ``n_frames`` (centred) frames.

    It lies in ``((n_frames - 1) * hop, n_frames * hop)``; librosa's per-octave
    downsampling makes the exact value depend on the number of octaves, so it is found by
    bisection on the frame count of silent signals (monotone in the length).
    """
    import librosa

    def frames(length: int) -> int:
        silent = np.zeros(length, dtype=np.float32)
        cqt = librosa.cqt(
            silent,
            sr=config.sr,
            hop_length=config.hop_length,
            fmin=config.fmin,
            n_bins=config.n_bins,
            bins_per_octave=config.bins_per_octave,
        )
        return int(cqt.shape[-1])

    hop = config.hop_length
    lo, hi = (n_frames - 1) * hop, n_frames * hop - 1  # frames(lo) <= n_frames
    if frames(hi) == n_frames:
        return hi
    while hi - lo > 1:  # invariant: frames(lo) <= n_frames < frames(hi)
        mid = (lo + hi) // 2
        if frames(mid) <= n_frames:
            lo = mid
        else:
            hi = mid
    return lo


def _as_float64(x: object, *, name: str) -> npt.NDArray[np.float64]:
    if isinstance(x, torch.Tensor):
        arr = x.detach().to("cpu", torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        arr = x.astype(np.float64, copy=False)
    else:
        raise ParameterError(
            f"{name} must be a NumPy array or torch tensor, got {type(x).__name__}"
        )
    if not np.isfinite(arr).all():
        raise ParameterError(f"{name} contains NaN or inf values")
    return arr


def _to_magnitude(c: npt.NDArray[np.float64], config: CQTConfig) -> npt.NDArray[np.float64]:
    if config.scale == "db":
        out: npt.NDArray[np.float64] = 10.0 ** (np.minimum(c, 0.0) / 20.0)
        return out
    mag = np.clip(c, 0.0, None)
    return np.sqrt(mag) if config.scale == "power" else mag


def _unpool(c: npt.NDArray[np.float64], pool: int) -> npt.NDArray[np.float64]:
    """Linear interpolation between pooled-frame centres back to ``pool`` frames each."""
    if pool == 1:
        return c
    n = c.shape[-1]
    pos = (np.arange(n * pool) - (pool - 1) / 2.0) / pool
    pos = np.clip(pos, 0.0, n - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    w = pos - i0
    out: npt.NDArray[np.float64] = c[..., i0] * (1.0 - w) + c[..., i1] * w
    return out


def write_wav(
    path: str | os.PathLike[str],
    y: ArrayLike,
    sr: int,
    *,
    subtype: str = "PCM_16",
) -> Path:
    """Write a waveform as a WAV file, atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; parent folders are created.
    y : np.ndarray or torch.Tensor [shape=(n,) or (channels, n)]
        Samples in [-1, 1] (librosa's channel-first layout for multi-channel audio).
    sr : int
        Sample rate in Hz.
    subtype : str
        soundfile subtype, e.g. ``"PCM_16"``, ``"PCM_24"`` or ``"FLOAT"``.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    ParameterError
        Empty or NaN/inf samples, more than 2 dimensions, a non-positive ``sr`` or a
        subtype WAV does not support.

    Warns
    -----
    CoverGANWarning
        Samples beyond [-1, 1] with an integer subtype: they will clip.
    """
    import soundfile as sf

    check_count("sr", sr, 1)
    if not sf.check_format("WAV", subtype):
        raise ParameterError(
            f"subtype={subtype!r} is not valid for WAV; use one of "
            f"{sorted(sf.available_subtypes('WAV'))}"
        )
    data = _as_float64(y, name="y")
    if data.ndim not in (1, 2) or data.size == 0:
        raise ParameterError(
            f"y must have shape (n,) or (channels, n) with samples, got {data.shape}"
        )
    if data.ndim == 2 and data.shape[0] > data.shape[1]:
        raise ParameterError(
            f"y has shape {data.shape}: more channels than samples; multi-channel audio is "
            "(channels, n), librosa's layout (pass y.T for (n, channels))"
        )
    if subtype.startswith("PCM") and np.abs(data).max() > 1.0:
        warnings.warn(
            f"y has samples up to {np.abs(data).max():.3g} in absolute value; "
            f"{subtype} clips them to [-1, 1]",
            CoverGANWarning,
            stacklevel=2,
        )
    frames = data.T if data.ndim == 2 else data
    path = Path(path)
    with atomic_write(path) as fh:
        sf.write(fh, frames, int(sr), subtype=subtype, format="WAV")
    return path
