"""Constant-Q transform features: extraction, model-space normalisation and fixed-size windows.

The default :class:`CQTConfig` reproduces the CQT recipe that CQTNet, TPPNet and most
CQT-based cover-song models consume (librosa ``cqt`` at 22,050 Hz, hop 512, 84 bins,
12 bins per octave from C1, magnitude, mean over every 20 frames, each track divided by
its maximum absolute value), so features made here, and synthetic samples turned back
into this format, mix with a user's existing features without glue code.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from covergan._checks import check_count, config_from_dict, config_to_dict
from covergan._io import atomic_write
from covergan.errors import AudioLoadError, ExtractionError, NotFittedError, ParameterError

__all__ = [
    "CQTConfig",
    "CQTExtractor",
    "CQTNormalizer",
    "ExtractionFailure",
    "ExtractionResult",
    "center_crop_or_pad",
    "random_crop",
]

logger = logging.getLogger(__name__)

#: Bumped whenever a change to the extraction code changes its output, so that
#: on-disk caches written by an older covergan are never reused.
FEATURE_VERSION = 1

_C1_HZ = 32.70319566257483  # librosa.note_to_hz("C1")

Scale = Literal["magnitude", "power", "db"]
Normalize = Literal["max", "none"]
ShortPolicy = Literal["pad", "raise"]
OnError = Literal["raise", "skip"]


@dataclass(frozen=True, kw_only=True)
class CQTConfig:
    """How audio becomes CQT features.

    The defaults are the CQTNet recipe (see the module docstring). Every field is
    validated on construction; a config is hashable and is stored in caches and
    checkpoints so features can always be reproduced.

    Parameters
    ----------
    sr : int
        Sample rate the audio is resampled to before the transform (Hz).
    hop_length : int
        Hop between CQT frames, in samples at ``sr``. Must be a multiple of
        ``2 ** (n_octaves - 1)`` as librosa requires.
    n_bins : int
        Number of frequency bins.
    bins_per_octave : int
        Bins per octave; a multiple of 12 so a semitone is a whole number of bins.
    fmin : float
        Centre frequency of the lowest bin (Hz); default C1 = 32.70 Hz.
    scale : {"magnitude", "power", "db"}
        ``|C|``, ``|C|**2`` or ``20 log10(|C| / max)`` clipped at ``-top_db``.
    top_db : float
        Dynamic range kept by the ``"db"`` scale.
    pool : int
        Mean over every ``pool`` CQT frames (1 = no pooling). As in CQTNet, a trailing
        partial block is dropped.
    normalize : {"max", "none"}
        ``"max"`` divides each track by its maximum absolute value (silence stays 0).
        Not applied to the ``"db"`` scale, which is already relative to the maximum.
    short_audio : {"pad", "raise"}
        Policy for audio shorter than one pooled frame (``hop_length * pool`` samples):
        ``"pad"`` zero-pads it to that length so the result has one frame,
        ``"raise"`` raises :class:`~covergan.errors.ParameterError`.
    mono : bool
        Mix multi-channel audio down to mono (always true for now; the field documents it).
    """

    sr: int = 22050
    hop_length: int = 512
    n_bins: int = 84
    bins_per_octave: int = 12
    fmin: float = _C1_HZ
    scale: Scale = "magnitude"
    top_db: float = 80.0
    pool: int = 20
    normalize: Normalize = "max"
    short_audio: ShortPolicy = "pad"
    mono: bool = True

    def __post_init__(self) -> None:
        for name in ("sr", "hop_length", "n_bins", "bins_per_octave", "pool"):
            check_count(f"CQTConfig.{name}", getattr(self, name), 1)
        if self.bins_per_octave % 12:
            raise ParameterError(
                f"CQTConfig.bins_per_octave={self.bins_per_octave} must be a multiple of 12 "
                "so that a semitone is a whole number of bins"
            )
        if not np.isfinite(self.fmin) or self.fmin <= 0:
            raise ParameterError(f"CQTConfig.fmin={self.fmin!r} must be a positive frequency")
        if self.fmax >= self.sr / 2:
            raise ParameterError(
                f"the highest CQT bin ({self.fmax:.1f} Hz, from fmin={self.fmin:.2f}, "
                f"n_bins={self.n_bins}, bins_per_octave={self.bins_per_octave}) must be below "
                f"the Nyquist frequency sr/2={self.sr / 2:.1f} Hz"
            )
        n_octaves = int(np.ceil(self.n_bins / self.bins_per_octave))
        if self.hop_length % (2 ** (n_octaves - 1)):
            raise ParameterError(
                f"CQTConfig.hop_length={self.hop_length} must be a multiple of "
                f"2**(n_octaves - 1)={2 ** (n_octaves - 1)} for {n_octaves} octaves"
            )
        _check_choice("scale", self.scale, ("magnitude", "power", "db"))
        _check_choice("normalize", self.normalize, ("max", "none"))
        _check_choice("short_audio", self.short_audio, ("pad", "raise"))
        if not np.isfinite(self.top_db) or self.top_db <= 0:
            raise ParameterError(f"CQTConfig.top_db={self.top_db!r} must be positive")
        if self.mono is not True:
            raise ParameterError("CQTConfig.mono=False is not supported: features are mono")

    @property
    def fmax(self) -> float:
        """Centre frequency of the highest bin (Hz)."""
        return float(self.fmin * 2.0 ** ((self.n_bins - 1) / self.bins_per_octave))

    @property
    def bins_per_semitone(self) -> int:
        """Frequency bins per semitone (a key change of k semitones rolls k times this)."""
        return self.bins_per_octave // 12

    @property
    def frame_rate(self) -> float:
        """Feature frames per second of audio (after pooling)."""
        return self.sr / (self.hop_length * self.pool)

    @property
    def min_samples(self) -> int:
        """Shortest audio (samples at ``sr``) that yields one pooled frame without padding."""
        return self.hop_length * self.pool

    @property
    def silence_value(self) -> float:
        """Feature value of silence, used for padding: 0, or ``-top_db`` for dB features."""
        return -float(self.top_db) if self.scale == "db" else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict of the fields (JSON and ``torch.load(weights_only=True)`` safe)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CQTConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error."""
        result: CQTConfig = config_from_dict(cls, data)
        return result

    def digest(self) -> str:
        """Short stable hash of the config and the feature code version (cache key part)."""
        payload = json.dumps({"v": FEATURE_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ParameterError(f"CQTConfig.{name}={value!r} must be one of {list(allowed)}")


# --------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------

_AUDIO_FALLBACK_SUFFIXES = {".mp3", ".m4a", ".aac", ".wma", ".mp4"}


@dataclass(frozen=True)
class ExtractionFailure:
    """One file that :meth:`CQTExtractor.extract_many` could not turn into features."""

    path: Path
    error: str  #: exception class name
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.error}: {self.message}"


@dataclass
class ExtractionResult:
    """Output of :meth:`CQTExtractor.extract_many`.

    Attributes
    ----------
    paths : list of Path
        The input paths, in input order.
    features : list of (np.ndarray [shape=(n_bins, n_frames)] or None)
        Features aligned with ``paths``; ``None`` where the file failed.
    failures : list of ExtractionFailure
        Every file that failed, with the exception type and message.
    n_cached : int
        How many files were read from the cache instead of being computed.
    """

    paths: list[Path]
    features: list[np.ndarray | None]
    failures: list[ExtractionFailure] = field(default_factory=list)
    n_cached: int = 0

    @property
    def ok(self) -> bool:
        """True when every file was extracted."""
        return not self.failures

    def report(self) -> str:
        """Human-readable summary naming each failed file and why it failed."""
        n_ok = len(self.paths) - len(self.failures)
        lines = [
            f"extracted {n_ok}/{len(self.paths)} files ({self.n_cached} from cache), "
            f"{len(self.failures)} failed"
        ]
        lines += [f"  {f}" for f in self.failures]
        return "\n".join(lines)


class CQTExtractor:
    """Turn audio into CQT features in the format CSI models consume.

    The extractor holds only its :class:`CQTConfig`, so it is cheap to pickle and
    gives the same result in any process (joblib, Dask or Ray workers).

    Parameters
    ----------
    config : CQTConfig, optional
        Feature recipe; defaults to the CQTNet recipe.
    **overrides
        Fields replaced in ``config`` (e.g. ``CQTExtractor(bins_per_octave=36, n_bins=252)``).

    Examples
    --------
    >>> ext = CQTExtractor()
    >>> feats = ext(y, sr)            # np.ndarray float32 [84, n_frames]
    >>> result = ext.extract_many(paths, n_jobs=2, cache_dir="~/.cache/covergan")
    """

    def __init__(self, config: CQTConfig | None = None, **overrides: Any) -> None:
        if config is not None and not isinstance(config, CQTConfig):
            raise ParameterError(f"config must be a CQTConfig, got {type(config).__name__}")
        config = config if config is not None else CQTConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config

    def __repr__(self) -> str:
        return f"CQTExtractor({self.config!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CQTExtractor) and other.config == self.config

    def __hash__(self) -> int:
        return hash(self.config)

    # -- single signal ------------------------------------------------------------------

    def __call__(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Compute features of one signal.

        Parameters
        ----------
        y : np.ndarray [shape=(n_samples,) or (n_channels, n_samples)]
            Audio samples; multi-channel audio (librosa's channels-first layout) is
            mixed down to mono.
        sr : int
            Sample rate of ``y``; the signal is resampled to ``config.sr`` if different.

        Returns
        -------
        np.ndarray [shape=(n_bins, n_frames), dtype=float32]
            Features; ``n_frames = (1 + n // hop_length) // pool`` for ``n`` samples at
            ``config.sr`` (audio shorter than ``hop_length * pool`` samples follows
            ``config.short_audio``). Silence gives all-zero features (the floor
            ``-top_db`` for the dB scale), never NaN or -inf.

        Raises
        ------
        ParameterError
            ``y`` is not a real 1-D/2-D array, contains NaN or inf, ``sr`` is not a
            positive integer, or the audio is too short under ``short_audio="raise"``.
        """
        cfg = self.config
        _check_filters(cfg)
        y = _as_mono(y)
        check_count("sr", sr, 1)
        if sr != cfg.sr and y.size:
            import librosa

            y = librosa.resample(y, orig_sr=int(sr), target_sr=cfg.sr).astype(np.float32)
        if y.size < cfg.min_samples:
            if cfg.short_audio == "raise":
                raise ParameterError(
                    f"audio has {y.size} samples at {cfg.sr} Hz, fewer than one pooled frame "
                    f"(hop_length * pool = {cfg.min_samples}); use short_audio='pad' to pad it"
                )
            y = np.pad(y, (0, cfg.min_samples - y.size))
        return _features_from_audio(y, cfg)

    # -- files -------------------------------------------------------------------------

    def load(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
        """Read an audio file as mono float32 at its native sample rate.

        WAV, FLAC and OGG are read with soundfile; formats libsndfile cannot read
        (MP3 on old builds, M4A ...) go through librosa's audioread fallback.

        Parameters
        ----------
        path : str or PathLike
            The audio file.

        Returns
        -------
        y : np.ndarray [shape=(n_samples,), dtype=float32]
        sr : int

        Raises
        ------
        AudioLoadError
            The file is missing, a directory, empty, corrupt, in an unsupported
            format, or decodes to zero samples. The message names the path and cause.
        """
        p = Path(path).expanduser()
        if not p.exists():
            raise AudioLoadError(f"audio file not found: {p}")
        if p.is_dir():
            raise AudioLoadError(f"expected an audio file, got a directory: {p}")
        if p.stat().st_size == 0:
            raise AudioLoadError(f"audio file is empty (0 bytes): {p}")
        import soundfile as sf

        try:
            data, sr = sf.read(str(p), dtype="float32", always_2d=True)
            y = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
        except Exception as sf_error:  # libsndfile could not read it: try audioread
            y, sr = self._load_fallback(p, sf_error)
        if y.size == 0:
            raise AudioLoadError(f"audio file contains no samples: {p}")
        return np.ascontiguousarray(y, dtype=np.float32), int(sr)

    @staticmethod
    def _load_fallback(p: Path, sf_error: Exception) -> tuple[np.ndarray, int]:
        if p.suffix.lower() not in _AUDIO_FALLBACK_SUFFIXES:
            raise AudioLoadError(f"cannot read audio file {p}: {sf_error}") from sf_error
        import librosa

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # librosa's "PySoundFile failed" FutureWarning
                y, sr = librosa.load(str(p), sr=None, mono=True)
        except Exception as error:
            raise AudioLoadError(
                f"cannot read audio file {p}: soundfile said {sf_error!s}; "
                f"the audioread fallback said {error!s}"
            ) from error
        return np.asarray(y, dtype=np.float32), int(sr)

    def extract_file(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Load ``path`` and compute its features (``self(*self.load(path))``).

        Returns
        -------
        np.ndarray [shape=(n_bins, n_frames), dtype=float32]

        Raises
        ------
        AudioLoadError
            See :meth:`load`.
        ParameterError
            The decoded audio contains NaN or inf (see :meth:`__call__`).
        """
        y, sr = self.load(path)
        try:
            return self(y, sr)
        except ParameterError as error:
            raise ParameterError(f"{path}: {error}") from error

    def extract_many(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        n_jobs: int = 1,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
        on_error: OnError = "raise",
    ) -> ExtractionResult:
        """Extract features of many files in parallel, with an optional on-disk cache.

        Parameters
        ----------
        paths : iterable of str or PathLike
            Audio files.
        n_jobs : int
            Worker processes (joblib semantics: ``-1`` uses every core). ``1`` runs in
            this process.
        cache_dir : str or PathLike, optional
            Cache folder. Entries are keyed by the SHA-256 of the file's content,
            :meth:`CQTConfig.digest` and librosa's minor version, so renaming a file
            still hits the cache and a changed file, config or librosa never does. The
            digest of each path is remembered with the file's size and modification time,
            so a re-run does not read unchanged files again. Entries are written atomically
            (temporary file + rename): a crash never leaves a half-written entry.
        progress : bool
            Show a tqdm progress bar.
        on_error : {"raise", "skip"}
            ``"raise"`` raises :class:`~covergan.errors.ExtractionError` listing every
            failed file after all the others are done (and cached); ``"skip"`` returns
            ``None`` for failed files and lists them in ``result.failures``.

        Returns
        -------
        ExtractionResult
            ``features[i]`` is a float32 ``[n_bins, n_frames]`` array for ``paths[i]``.

        Raises
        ------
        ExtractionError
            Some files failed and ``on_error="raise"``; the message names each file
            and the cause.
        ParameterError
            Bad ``n_jobs`` or ``on_error``.
        """
        if on_error not in ("raise", "skip"):
            raise ParameterError(f"on_error={on_error!r} must be 'raise' or 'skip'")
        path_list = _as_paths(paths)
        result = ExtractionResult(paths=path_list, features=[])
        outcomes = self.iter_extract(
            path_list, n_jobs=n_jobs, cache_dir=cache_dir, progress=progress
        )
        for p, (feats, failure, cached) in zip(path_list, outcomes, strict=True):
            result.features.append(feats)
            result.n_cached += cached
            if failure is not None:
                result.failures.append(ExtractionFailure(p, *failure))
        if result.failures:
            logger.warning("%s", result.report())
            if on_error == "raise":
                raise ExtractionError(result.report(), result.failures)
        return result

    def iter_extract(
        self,
        paths: Sequence[Path],
        *,
        n_jobs: int = 1,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
    ) -> Iterator[_Outcome]:
        """:meth:`extract_many` one file at a time, in order, holding no finished result.

        Yields ``(features or None, (error type, message) or None, came from the cache)`` per
        path as it is done (a consumer writes each to disk and memory stays flat). Failures
        are yielded, never raised; arguments are checked before the first file.
        """
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
            raise ParameterError(f"n_jobs={n_jobs!r} must be a non-zero integer (-1 = all cores)")
        path_list = _as_paths(paths)
        _check_filters(self.config)
        cache = Path(cache_dir).expanduser() if cache_dir is not None else None
        return self._outcomes(path_list, n_jobs, cache, progress)

    def _outcomes(
        self, paths: list[Path], n_jobs: int, cache: Path | None, progress: bool
    ) -> Iterator[_Outcome]:
        from joblib import Parallel, delayed

        from covergan._progress import progress_bar

        if n_jobs == 1 or len(paths) <= 1:
            outputs: Iterable[_Outcome] = (_extract_one(self, p, cache) for p in paths)
        else:
            jobs = (delayed(_extract_one)(self, p, cache) for p in paths)
            outputs = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
        yield from progress_bar(
            outputs, total=len(paths), desc="CQT", unit="file", enabled=progress
        )


_Outcome = tuple["np.ndarray | None", "tuple[str, str] | None", bool]


def _extract_one(extractor: CQTExtractor, path: Path, cache: Path | None) -> _Outcome:
    """Worker: features of one file, through the cache; never raises."""
    try:
        entry = None
        if cache is not None:
            entry = cache / f"{_file_digest(path, cache)}-{_cache_key(extractor.config)}.npy"
            if entry.is_file():
                try:
                    return np.load(entry, allow_pickle=False), None, True
                except (OSError, ValueError):  # unreadable entry: recompute and overwrite it
                    logger.warning("ignoring unreadable cache entry %s", entry)
        feats = extractor.extract_file(path)
        if entry is not None:
            _atomic_save_npy(entry, feats)
        return feats, None, False
    except Exception as error:  # reported per file; the batch goes on
        return None, (type(error).__name__, str(error)), False


@functools.lru_cache(maxsize=32)
def _cache_key(config: CQTConfig) -> str:
    # librosa's minor version is part of the key: a new CQT implementation may change values
    from importlib.metadata import version as dist_version

    version = ".".join(dist_version("librosa").split(".")[:2])
    return hashlib.sha256(f"{config.digest()}-librosa{version}".encode()).hexdigest()[:16]


def _file_digest(path: Path, cache: Path | None = None) -> str:
    """SHA-256 of the file's content, memoised in ``cache`` by path, size and mtime.

    Hashing costs about as much as reading the file, which would dominate a cached re-run.
    With ``cache``, a small memo per path (``cache/digests/``) remembers the digest for the
    file's (device, inode, size, mtime_ns); a file that changed any of these is hashed
    again (the same rule as git's index and make).
    """
    try:
        stat = path.stat()
    except OSError:
        stat = None
    if stat is None or not path.is_file():
        raise AudioLoadError(f"audio file not found: {path}")
    signature = [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns]
    memo = None
    if cache is not None:
        name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
        memo = cache / "digests" / f"{name}.json"
        try:
            known = json.loads(memo.read_text())
            if known.get("signature") == signature:
                return str(known["sha256"])
        except (OSError, ValueError, AttributeError, KeyError):
            pass  # no memo yet, or an unreadable one: hash and rewrite it
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if memo is not None:
        # a cache: no fsync, readers treat a bad memo as absent
        with atomic_write(memo, text=True, fsync=False) as out:
            out.write(json.dumps({"signature": signature, "sha256": digest}))
    return digest


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as fh:
        np.save(fh, array, allow_pickle=False)


def _as_mono(y: object) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    if not isinstance(y, np.ndarray):
        raise ParameterError(f"audio must be a numpy array, got {type(y).__name__}")
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise ParameterError(f"audio must be real-valued, got dtype {y.dtype}")
    if y.ndim == 2:
        if y.shape[0] > y.shape[1]:
            raise ParameterError(
                f"2-D audio must be (n_channels, n_samples) as in librosa, got shape {y.shape}; "
                "transpose soundfile-style (n_samples, n_channels) arrays first"
            )
        y = y.mean(axis=0)
    elif y.ndim != 1:
        raise ParameterError(
            f"audio must be 1-D or 2-D (n_channels, n_samples), got shape {y.shape}"
        )
    y = np.asarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        n_bad = int(np.count_nonzero(~np.isfinite(y)))
        raise ParameterError(f"audio contains {n_bad} NaN or infinite samples")
    return y


def _as_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` as a list of Paths; one path given alone is an error (a string would be
    read as a list of one-letter paths)."""
    if isinstance(paths, (str, os.PathLike)):
        raise ParameterError(
            f"paths={str(paths)!r} is one path; give a list of them, or use extract_file"
        )
    return [Path(p).expanduser() for p in paths]


@functools.lru_cache(maxsize=32)
def _check_filters(cfg: CQTConfig) -> None:
    """librosa's CQT filters of ``cfg`` stay below the Nyquist frequency (librosa checks the
    top filter's upper edge, which lies above the top bin that :class:`CQTConfig` checks);
    a ParameterError before any file is read otherwise. Needs librosa, hence not in the
    config itself, which a model file rebuilds without it."""
    if cfg.n_bins < 2:  # librosa derives the filters' bandwidth from neighbouring bins
        return
    import librosa
    from librosa.filters import wavelet_lengths

    freqs = librosa.cqt_frequencies(
        n_bins=cfg.n_bins, fmin=cfg.fmin, bins_per_octave=cfg.bins_per_octave
    )
    cutoff = float(wavelet_lengths(freqs=freqs, sr=cfg.sr)[1])
    if cutoff > cfg.sr / 2:
        raise ParameterError(
            f"librosa's CQT filters for this config reach {cutoff:.1f} Hz, past the Nyquist "
            f"frequency sr/2={cfg.sr / 2:.1f} Hz (fmin={cfg.fmin:g}, n_bins={cfg.n_bins}, "
            f"bins_per_octave={cfg.bins_per_octave}): use fewer bins, a lower fmin or a "
            "higher sr"
        )


def _features_from_audio(y: np.ndarray, cfg: CQTConfig) -> np.ndarray:
    import librosa

    with warnings.catch_warnings():
        # Short (padded) clips shrink below librosa's FFT size in the low, downsampled
        # octaves; the result is still correct, so the warning is only noise.
        warnings.filterwarnings("ignore", message="n_fft=.*is too large", category=UserWarning)
        cqt = librosa.cqt(
            y,
            sr=cfg.sr,
            hop_length=cfg.hop_length,
            fmin=cfg.fmin,
            n_bins=cfg.n_bins,
            bins_per_octave=cfg.bins_per_octave,
        )
    mag = np.abs(cqt).astype(np.float64)
    if cfg.scale == "power":
        mag = mag**2
    elif cfg.scale == "db":
        peak = mag.max(initial=0.0)
        amin = 1e-10
        if peak <= amin:
            mag = np.full_like(mag, -cfg.top_db)
        else:
            mag = 20.0 * np.log10(np.maximum(mag, amin) / peak)
            mag = np.maximum(mag, -cfg.top_db)
    feats = _pool_frames(mag, cfg.pool)
    if cfg.normalize == "max" and cfg.scale != "db":
        peak = np.abs(feats).max(initial=0.0)
        if peak > 0:
            feats = feats / peak
    return np.ascontiguousarray(feats, dtype=np.float32)


def _pool_frames(x: np.ndarray, pool: int) -> np.ndarray:
    """Mean over consecutive blocks of ``pool`` frames; a trailing partial block is dropped."""
    if pool == 1:
        return x
    n_out = x.shape[-1] // pool
    blocks = x[..., : n_out * pool].reshape(*x.shape[:-1], n_out, pool)
    return np.asarray(blocks.mean(axis=-1))


# --------------------------------------------------------------------------------------
# Model-space normalisation
# --------------------------------------------------------------------------------------

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class CQTNormalizer:
    """Invertible map between extractor features and the GAN's ``[-1, 1]`` model space.

    ``forward``: ``v = log(x + eps)`` (skipped for dB features), per-bin standardisation
    ``z = (v - mean_[bin]) / std_[bin]`` with statistics fitted on a dataset, clipping at
    ``+-clip`` standard deviations, and scaling ``y = z / clip`` into ``[-1, 1]`` (the range
    of a tanh generator).

    ``inverse``: ``x = exp(y * clip * std_ + mean_) - eps`` (clamped at 0), exactly undoing
    ``forward`` for every value whose standardised magnitude was inside the clip range, so
    synthetic samples come back in the extractor's own feature format.

    Parameters
    ----------
    log : bool
        Take the log first (true for magnitude and power features, false for dB).
    eps : float
        Offset inside the log; sets the floor that silence maps to
        (``1e-4`` = -80 dB below the track maximum for max-normalised magnitudes).
    clip : float
        Clip at this many standard deviations.

    Attributes
    ----------
    mean_, std_ : np.ndarray [shape=(n_bins,), dtype=float64]
        Per-bin statistics, set by :meth:`fit`.
    """

    def __init__(self, *, log: bool = True, eps: float = 1e-4, clip: float = 3.0) -> None:
        if not (np.isfinite(eps) and eps > 0):
            raise ParameterError(f"eps={eps!r} must be positive")
        if not (np.isfinite(clip) and clip > 0):
            raise ParameterError(f"clip={clip!r} must be positive")
        self.log = bool(log)
        self.eps = float(eps)
        self.clip = float(clip)

    @classmethod
    def for_config(cls, config: CQTConfig, **kwargs: Any) -> CQTNormalizer:
        """A normaliser suited to features made with ``config`` (log or not, and its floor)."""
        if config.scale == "db":
            kwargs.setdefault("log", False)
        elif config.scale == "power":
            kwargs.setdefault("eps", 1e-8)
        return cls(**kwargs)

    def __repr__(self) -> str:
        fitted = "fitted" if self.is_fitted else "not fitted"
        return f"CQTNormalizer(log={self.log}, eps={self.eps}, clip={self.clip}; {fitted})"

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load_state_dict`) has set the statistics."""
        return hasattr(self, "mean_")

    def fit(
        self,
        features: Iterable[np.ndarray] | Any,
        *,
        max_tracks: int | None = None,
        seed: int = 0,
    ) -> CQTNormalizer:
        """Fit per-bin mean and standard deviation over every frame of every track.

        Parameters
        ----------
        features : iterable of np.ndarray [shape=(n_bins, n_frames)], or a CQTDataset
            Full tracks in the extractor's feature format (a dataset's ``.features``
            are used when it has them).
        max_tracks : int, optional
            Fit on at most this many tracks, drawn without replacement with ``seed`` (needs a
            sized sequence of tracks, e.g. a dataset): a catalogue's statistics from a bounded
            read. Default: every track.
        seed : int
            Which tracks ``max_tracks`` draws.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            No tracks, inconsistent bin counts, negative values (for ``log=True``)
            or NaN/inf.
        """
        tracks = getattr(features, "features", features)
        songs = getattr(features, "song_ids", None)  # a dataset's, for the messages
        chosen: Iterable[tuple[int, Any]] = enumerate(tracks)
        if max_tracks is not None:
            check_count("max_tracks", max_tracks, 1)
            if not isinstance(tracks, Sequence):
                raise ParameterError("max_tracks needs a sequence of tracks (or a dataset)")
            if len(tracks) > max_tracks:
                picks = np.random.default_rng(seed).choice(len(tracks), max_tracks, replace=False)
                chosen = [(int(i), tracks[int(i)]) for i in np.sort(picks)]
        n_bins: int | None = None
        total = 0
        s1: np.ndarray | None = None
        s2: np.ndarray | None = None
        for i, x in chosen:
            where = f"track {i}" if songs is None else f"track {i} (song {songs[i]!r})"
            arr = np.asarray(x, dtype=np.float64)
            if arr.ndim != 2:
                raise ParameterError(f"{where}: expected [n_bins, n_frames], got shape {arr.shape}")
            if n_bins is None:
                n_bins = arr.shape[0]
                s1 = np.zeros(n_bins)
                s2 = np.zeros(n_bins)
            elif arr.shape[0] != n_bins:
                raise ParameterError(f"{where} has {arr.shape[0]} bins, the first had {n_bins}")
            v = self._to_log(arr, where=where)
            s1 += v.sum(axis=1)
            s2 += (v**2).sum(axis=1)
            total += arr.shape[1]
        if n_bins is None or total == 0 or s1 is None or s2 is None:
            raise ParameterError("cannot fit a CQTNormalizer on no data (0 tracks or 0 frames)")
        mean = s1 / total
        var = np.maximum(s2 / total - mean**2, 0.0)
        std = np.sqrt(var)
        # A bin with (almost) no spread in the data would blow up; give it unit scale.
        std[std < 1e-6] = 1.0
        self.mean_ = mean
        self.std_ = std
        return self

    def _to_log(self, arr: np.ndarray, *, where: str) -> np.ndarray:
        if not np.all(np.isfinite(arr)):
            raise ParameterError(f"{where}: features contain NaN or inf")
        if not self.log:
            return arr
        if np.any(arr < 0):
            raise ParameterError(f"{where}: log normalisation needs non-negative features")
        return np.log(arr + self.eps)

    def _stats(self, like: ArrayT, n_bins: int) -> tuple[ArrayT, ArrayT]:
        if not self.is_fitted:
            raise NotFittedError("this CQTNormalizer is not fitted yet; call fit(features) first")
        if n_bins != self.mean_.shape[0]:
            raise ParameterError(
                f"input has {n_bins} bins on axis -2, the normaliser was fitted on "
                f"{self.mean_.shape[0]}"
            )
        mean, std = self.mean_[:, None], self.std_[:, None]
        if isinstance(like, torch.Tensor):
            return (
                torch.as_tensor(mean, dtype=like.dtype, device=like.device),
                torch.as_tensor(std, dtype=like.dtype, device=like.device),
            )
        return mean.astype(like.dtype, copy=False), std.astype(like.dtype, copy=False)

    def __call__(self, x: ArrayT) -> ArrayT:
        """Alias of :meth:`forward`, so a normaliser can be a dataset ``transform``."""
        return self.forward(x)

    def forward(self, x: ArrayT) -> ArrayT:
        """Features -> model space.

        Parameters
        ----------
        x : np.ndarray or torch.Tensor [shape=(..., n_bins, n_frames)]
            Features in the extractor's format (floating point).

        Returns
        -------
        Same type and shape as ``x``, values in ``[-1, 1]``.
        """
        mean, std = self._stats(x, x.shape[-2])
        if isinstance(x, torch.Tensor):
            v = torch.log(x.clamp_min(0) + self.eps) if self.log else x
            z = ((v - mean) / std).clamp(-self.clip, self.clip)
        else:
            v = np.log(np.maximum(x, 0) + self.eps) if self.log else x
            z = np.clip((v - mean) / std, -self.clip, self.clip)
        return z / self.clip  # type: ignore[no-any-return]

    def inverse(self, y: ArrayT) -> ArrayT:
        """Model space -> features in the extractor's format.

        Parameters
        ----------
        y : np.ndarray or torch.Tensor [shape=(..., n_bins, n_frames)]
            Values in ``[-1, 1]`` (values outside are clipped first).

        Returns
        -------
        Same type and shape as ``y``: non-negative features for log normalisers.
        """
        mean, std = self._stats(y, y.shape[-2])
        if isinstance(y, torch.Tensor):
            v = y.clamp(-1, 1) * self.clip * std + mean
            return (torch.exp(v) - self.eps).clamp_min(0) if self.log else v
        v = np.clip(y, -1, 1) * self.clip * std + mean
        return np.maximum(np.exp(v) - self.eps, 0) if self.log else v  # type: ignore[no-any-return]

    @property
    def floor(self) -> np.ndarray:
        """Model-space value of silence (all-zero features) per bin, shape ``(n_bins,)``."""
        zero = np.zeros((self.mean_.shape[0] if self.is_fitted else 0, 1))
        return self.forward(zero)[:, 0]

    def state_dict(self) -> dict[str, Any]:
        """Plain dict (lists and floats) for checkpoints loaded with ``weights_only=True``."""
        state: dict[str, Any] = {"log": self.log, "eps": self.eps, "clip": self.clip}
        if self.is_fitted:
            state["mean"] = self.mean_.tolist()
            state["std"] = self.std_.tolist()
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> CQTNormalizer:
        """Rebuild a normaliser from :meth:`state_dict` output."""
        try:
            norm = cls(log=bool(state["log"]), eps=float(state["eps"]), clip=float(state["clip"]))
            if "mean" in state:
                norm.mean_ = np.asarray(state["mean"], dtype=np.float64)
                norm.std_ = np.asarray(state["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise ParameterError(f"not a CQTNormalizer state: {error}") from error
        return norm


# --------------------------------------------------------------------------------------
# Fixed-size windows
# --------------------------------------------------------------------------------------

PadMode = Literal["constant", "wrap"]


def random_crop(
    x: ArrayT,
    width: int,
    *,
    rng: np.random.Generator,
    pad_mode: PadMode = "constant",
    pad_value: float = 0.0,
) -> ArrayT:
    """Training window: a random ``width``-frame crop along the last axis.

    A track longer than ``width`` gives a crop starting uniformly at random in
    ``[0, n_frames - width]``. A shorter track is padded at the end (``"constant"``:
    with ``pad_value``, CQTNet's policy, 0 = silence) or tiled (``"wrap"``) from a
    random start.

    Parameters
    ----------
    x : np.ndarray or torch.Tensor [shape=(..., n_frames)]
    width : int
    rng : np.random.Generator
        Source of the offset (seeded by the caller for reproducible crops).

    Returns
    -------
    Same type as ``x`` [shape=(..., width)].
    """
    _check_width(width)
    n = x.shape[-1]
    if n > width:
        start = int(rng.integers(0, n - width + 1))
        return x[..., start : start + width]
    if pad_mode == "wrap" and n > 0:
        start = int(rng.integers(0, n))
        return _tile(x, width, start)
    return _pad_end(x, width, pad_mode, pad_value)


def center_crop_or_pad(
    x: ArrayT, width: int, *, pad_mode: PadMode = "constant", pad_value: float = 0.0
) -> ArrayT:
    """Evaluation window: the centre ``width`` frames, or the track padded at the end.

    Deterministic; padding follows :func:`random_crop` (``"wrap"`` tiles from frame 0).

    Parameters
    ----------
    x : np.ndarray or torch.Tensor [shape=(..., n_frames)]
    width : int

    Returns
    -------
    Same type as ``x`` [shape=(..., width)].
    """
    _check_width(width)
    n = x.shape[-1]
    if n >= width:
        start = (n - width) // 2
        return x[..., start : start + width]
    if pad_mode == "wrap" and n > 0:
        return _tile(x, width, 0)
    return _pad_end(x, width, pad_mode, pad_value)


def _check_width(width: int) -> None:
    check_count("window width", width, 1)


def _pad_end(x: ArrayT, width: int, pad_mode: str, pad_value: float) -> ArrayT:
    if pad_mode not in ("constant", "wrap"):
        raise ParameterError(f"pad_mode={pad_mode!r} must be 'constant' or 'wrap'")
    missing = width - x.shape[-1]
    if isinstance(x, torch.Tensor):
        return torch.nn.functional.pad(x, (0, missing), value=pad_value)
    widths = [(0, 0)] * (x.ndim - 1) + [(0, missing)]
    return np.pad(x, widths, constant_values=pad_value)


def _tile(x: ArrayT, width: int, start: int) -> ArrayT:
    n = x.shape[-1]
    idx = (np.arange(width) + start) % n
    if isinstance(x, torch.Tensor):
        return x[..., torch.as_tensor(idx, device=x.device)]
    return x[..., idx]
