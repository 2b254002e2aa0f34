"""Frechet distance, pluggable feature spaces and per-song quality reports.

The distance itself is a small pure function on Gaussian statistics
(:func:`frechet_distance`, :func:`gaussian_stats`, streaming :class:`FrechetDistance`);
feature extraction is separate (:func:`extract_features`) and pluggable:

``"cqt-stats"`` (default)
    Per-bin statistics over time of model-space CQTs, no training needed
    (:func:`cqt_stats`, ``d = 3 * H + 6``: 258 for 84 bins).
``"inception"``
    pytorch-fid's InceptionV3 pool features (``d = 2048``) from a local weights file,
    for comparison with image-GAN numbers (:class:`InceptionFeatures`).
an ``nn.Module`` or any callable ``Tensor[n, 1, H, W] -> Tensor[n, d]``
    e.g. a cover-song-identification embedding model; run in eval mode, without
    gradients, in batches.

Every synthetic-vs-real number from :func:`frechet_with_floor` and :func:`per_song_frechet`
comes with a real-vs-real floor measured at the same sample sizes against the same real
reference set, so it reads as "x times the floor". :func:`memorization_check` tells
whether synthetic samples sit closer to the training set than unseen real samples do.
See ``docs/metrics.md`` for how to read the numbers.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import warnings
import zlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from covergan._checks import check_count
from covergan.errors import CheckpointError, CoverGANWarning, DatasetError, ParameterError

__all__ = [
    "CQT_STATS_EXTRA",
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHTS_FILENAME",
    "INCEPTION_WEIGHTS_URL",
    "FloorComparison",
    "FrechetDistance",
    "GaussianStats",
    "InceptionFeatures",
    "MemorizationReport",
    "PerSongReport",
    "PerSongRow",
    "cqt_stats",
    "extract_features",
    "frechet_distance",
    "frechet_with_floor",
    "gaussian_stats",
    "inception_weights_path",
    "memorization_check",
    "per_song_frechet",
]

Float64Array: TypeAlias = npt.NDArray[np.float64]
ArrayLike: TypeAlias = "npt.NDArray[Any] | torch.Tensor"
FeatureFn: TypeAlias = Callable[[torch.Tensor], torch.Tensor]
Features: TypeAlias = "str | FeatureFn | None"
Shrinkage: TypeAlias = "Literal['ledoit-wolf'] | float | None"
Labels: TypeAlias = "Sequence[Hashable] | npt.NDArray[Any] | torch.Tensor"

#: Scalar features :func:`cqt_stats` appends after its three per-bin blocks.
CQT_STATS_EXTRA = 6

#: Where pytorch-fid publishes its FID Inception weights (ported from TensorFlow).
INCEPTION_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
#: File name pytorch-fid's download leaves in ``torch.hub.get_dir()/checkpoints/``.
INCEPTION_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
#: Environment variable naming a local copy of the Inception weights.
INCEPTION_WEIGHTS_ENV = "COVERGAN_INCEPTION_WEIGHTS"

_INCEPTION_SIZE = 299


# --------------------------------------------------------------------------------------
# Gaussian statistics and the distance
# --------------------------------------------------------------------------------------


class GaussianStats(NamedTuple):
    """Mean and covariance of a feature set, in float64.

    Attributes
    ----------
    mu : np.ndarray [shape=(d,)]
    sigma : np.ndarray [shape=(d, d)]
        Unbiased (``n - 1``) covariance, shrunk when shrinkage was asked for.
    """

    mu: Float64Array
    sigma: Float64Array


class _Moments:
    """Float64 running sums from which mean, covariance and Ledoit-Wolf shrinkage follow.

    Sums are taken about a fixed shift (the first batch's mean), so the covariance does
    not lose precision to cancellation when the features sit far from zero. Besides
    ``sum y`` and ``sum y y^T`` it keeps the three sums that the fourth moment
    ``sum ||y - mean||^4`` of the Ledoit-Wolf estimate expands into, which makes the
    shrunk covariance exact in streaming form too.
    """

    def __init__(self) -> None:
        self.n = 0
        self._shift: Float64Array | None = None
        self._s1 = np.zeros(0)
        self._s2 = np.zeros((0, 0))
        self._q = 0.0  # sum ||y||^2
        self._qv = np.zeros(0)  # sum ||y||^2 y
        self._q4 = 0.0  # sum ||y||^4

    @property
    def dim(self) -> int | None:
        return None if self._shift is None else int(self._shift.shape[0])

    def update(self, x: Float64Array) -> None:
        if x.shape[0] == 0:
            return
        if self._shift is None:
            d = x.shape[1]
            self._shift = x.mean(axis=0)
            self._s1 = np.zeros(d)
            self._s2 = np.zeros((d, d))
            self._qv = np.zeros(d)
        elif x.shape[1] != self._shift.shape[0]:
            raise ParameterError(
                f"features have d={x.shape[1]} dimensions but earlier batches had "
                f"d={self._shift.shape[0]}"
            )
        y = x - self._shift
        sq = np.einsum("ij,ij->i", y, y)
        self.n += x.shape[0]
        self._s1 += y.sum(axis=0)
        self._s2 += y.T @ y
        self._q += float(sq.sum())
        self._qv += sq @ y
        self._q4 += float(sq @ sq)

    def stats(self, shrinkage: Shrinkage, *, name: str) -> GaussianStats:
        if self._shift is None or self.n < 2:
            raise ParameterError(f"{name} has {self.n} sample(s); a covariance needs at least 2")
        n, d = self.n, self._shift.shape[0]
        m = self._s1 / n
        scatter = self._s2 - n * np.outer(m, m)  # sum of z z^T, z = x - mean
        scatter = 0.5 * (scatter + scatter.T)
        sigma = scatter / (n - 1)
        alpha = _shrinkage_coefficient(shrinkage, self._fourth_moment(m), scatter, n)
        if alpha > 0.0:
            target = np.trace(sigma) / d
            sigma = (1.0 - alpha) * sigma
            sigma[np.diag_indices(d)] += alpha * target
        return GaussianStats(self._shift + m, sigma)

    def _fourth_moment(self, m: Float64Array) -> float:
        """``sum_k ||x_k - mean||^4`` from the running sums."""
        mm = float(m @ m)
        return (
            self._q4
            - 4.0 * float(m @ self._qv)
            + 4.0 * float(m @ self._s2 @ m)
            + 2.0 * mm * self._q
            - 4.0 * mm * float(m @ self._s1)
            + self.n * mm * mm
        )


def _shrinkage_coefficient(
    shrinkage: Shrinkage, fourth: float, scatter: Float64Array, n: int
) -> float:
    """Weight of the scaled-identity target: a fixed float or the Ledoit-Wolf optimum."""
    if shrinkage is None:
        return 0.0
    if isinstance(shrinkage, str):
        if shrinkage != "ledoit-wolf":
            raise ParameterError(
                f"shrinkage={shrinkage!r} must be None, 'ledoit-wolf' or a float in [0, 1]"
            )
        # Ledoit & Wolf (2004), on the maximum-likelihood covariance S = scatter / n:
        # alpha = min(b2, d2) / d2 with d2 = ||S - mu I||^2 / p and
        # b2 = (sum_k ||x_k x_k^T - S||^2) / (n^2 p) = (sum_k ||x_k||^4 / n - ||S||^2) / (n p).
        p = scatter.shape[0]
        emp = scatter / n
        frob2 = float(np.sum(emp * emp))
        mu = float(np.trace(emp)) / p
        d2 = (frob2 - p * mu * mu) / p
        b2 = min((fourth / n - frob2) / (n * p), d2)
        return 0.0 if d2 <= 0.0 else max(b2, 0.0) / d2
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)):
        raise ParameterError(
            f"shrinkage={shrinkage!r} must be None, 'ledoit-wolf' or a float in [0, 1]"
        )
    if not 0.0 <= float(shrinkage) <= 1.0:
        raise ParameterError(f"shrinkage={shrinkage!r} must be in [0, 1]")
    return float(shrinkage)


def _validate_shrinkage(shrinkage: Shrinkage) -> None:
    _shrinkage_coefficient(shrinkage, 0.0, np.eye(1), 2)


def _psd_sqrt(sigma: Float64Array) -> Float64Array:
    """Symmetric square root of a symmetric PSD matrix (negative round-off clipped)."""
    w, v = np.linalg.eigh(sigma)
    root: Float64Array = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return root


def _frechet_from_stats(
    a: GaussianStats, b: GaussianStats, *, root_a: Float64Array | None = None
) -> float:
    """The distance; ``root_a`` (``_psd_sqrt(a.sigma)``) saves the eigh of a shared reference."""
    diff = a.mu - b.mu
    root = _psd_sqrt(a.sigma) if root_a is None else root_a
    # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2): the inner matrix is symmetric PSD,
    # so its eigenvalues are real; clipping removes round-off below zero.
    inner = root @ b.sigma @ root
    eig = np.linalg.eigvalsh(0.5 * (inner + inner.T))
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    d2 = float(diff @ diff) + float(np.trace(a.sigma)) + float(np.trace(b.sigma)) - 2 * tr_covmean
    return max(d2, 0.0)


def gaussian_stats(
    x: ArrayLike,
    *,
    features: Features = None,
    shrinkage: Shrinkage = None,
    batch_size: int = 64,
) -> GaussianStats:
    """Mean and covariance (float64) of a set of samples.

    Parameters
    ----------
    x : np.ndarray or torch.Tensor [shape=(n, d) or (n, 1, H, W)]
        Feature vectors, or model-space CQTs that ``features`` turns into features.
    features : str, callable or None
        Feature space for CQT input (see :func:`extract_features`); ``None`` uses
        ``(n, d)`` input as it is and ``"cqt-stats"`` for ``(n, 1, H, W)`` input.
    shrinkage : {None, "ledoit-wolf"} or float
        ``None``: the unbiased sample covariance. ``"ledoit-wolf"``: shrink towards a
        scaled identity with the Ledoit-Wolf optimal weight. A float in [0, 1]: that weight.
    batch_size : int
        Batch size for feature extraction.

    Returns
    -------
    GaussianStats
        ``(mu [shape=(d,)], sigma [shape=(d, d)])``.

    Raises
    ------
    ParameterError
        Fewer than 2 samples, NaN/inf values, a bad shape or a bad ``shrinkage``.

    Warns
    -----
    CoverGANWarning
        When ``n <= d`` and no shrinkage was asked for: the covariance is singular.
    """
    feats = _features_of(x, features, batch_size=batch_size, name="x")
    return _stats_of(feats, shrinkage, name="x", stacklevel=2)


def _stats_of(
    feats: Float64Array, shrinkage: Shrinkage, *, name: str, stacklevel: int | None = None
) -> GaussianStats:
    """Statistics of a feature array; warns (at ``stacklevel``) about n <= d without shrinkage."""
    moments = _Moments()
    moments.update(feats)
    stats = moments.stats(shrinkage, name=name)
    n, d = feats.shape
    if stacklevel is not None and shrinkage is None and n <= d:
        warnings.warn(
            f"{name} has n={n} samples for d={d} feature dimensions (n <= d): its covariance "
            "is singular and the distance is dominated by estimation noise; pass "
            "shrinkage='ledoit-wolf' or use a lower-dimensional feature space",
            CoverGANWarning,
            stacklevel=stacklevel + 1,
        )
    return stats


def frechet_distance(
    a: ArrayLike | GaussianStats | tuple[ArrayLike, ArrayLike],
    b: ArrayLike | GaussianStats | tuple[ArrayLike, ArrayLike],
    *,
    features: Features = None,
    shrinkage: Shrinkage = None,
    batch_size: int = 64,
) -> float:
    """Frechet distance between two Gaussians fitted to two sample sets.

    ``d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, computed in float64.
    The trace of the matrix square root comes from the eigenvalues of the symmetric
    positive semi-definite ``S_a^(1/2) S_b S_a^(1/2)``, clipped at zero, so the result is
    always a real number ``>= 0`` (no complex parts, no negative values on singular
    covariances).

    Parameters
    ----------
    a, b : np.ndarray, torch.Tensor or (mu, sigma)
        Each is a feature array ``[shape=(n, d)]``, model-space CQTs
        ``[shape=(n, 1, H, W)]``, or precomputed statistics
        ``(mu [shape=(d,)], sigma [shape=(d, d)])`` such as :func:`gaussian_stats` returns.
    features : str, callable or None
        Feature space applied to sample inputs (see :func:`extract_features`);
        ``None`` uses ``(n, d)`` input as it is and ``"cqt-stats"`` for CQTs.
        Statistics inputs are used as they are.
    shrinkage : {None, "ledoit-wolf"} or float
        Covariance shrinkage for sample inputs (see :func:`gaussian_stats`).
    batch_size : int
        Batch size for feature extraction.

    Returns
    -------
    float
        The squared Frechet distance (the number usually called FID).

    Raises
    ------
    ParameterError
        Mismatched dimensions, fewer than 2 samples, NaN/inf values, a bad shape, or
        statistics whose ``sigma`` is not a symmetric ``(d, d)`` matrix.

    Warns
    -----
    CoverGANWarning
        When a sample input has ``n <= d`` and ``shrinkage`` is None.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 3))
    >>> round(frechet_distance(x, x + 2.0), 6)  # equal covariances: squared mean distance
    12.0
    """
    _validate_shrinkage(shrinkage)
    sa = _stats_input(a, features, shrinkage, batch_size, name="a")
    sb = _stats_input(b, features, shrinkage, batch_size, name="b")
    if sa.mu.shape[0] != sb.mu.shape[0]:
        raise ParameterError(
            f"dimension mismatch: a has d={sa.mu.shape[0]} features, b has d={sb.mu.shape[0]}"
        )
    return _frechet_from_stats(sa, sb)


def _stats_input(
    x: ArrayLike | GaussianStats | tuple[ArrayLike, ArrayLike],
    features: Features,
    shrinkage: Shrinkage,
    batch_size: int,
    *,
    name: str,
) -> GaussianStats:
    if isinstance(x, tuple):
        if len(x) != 2:
            raise ParameterError(
                f"{name} is a tuple of length {len(x)}; statistics are a (mu, sigma) pair"
            )
        return _check_stats(x[0], x[1], name=name)
    feats = _features_of(x, features, batch_size=batch_size, name=name)
    return _stats_of(feats, shrinkage, name=name, stacklevel=3)


def _check_stats(mu_in: ArrayLike, sigma_in: ArrayLike, *, name: str) -> GaussianStats:
    mu = _to_float64(mu_in, name=f"{name}.mu")
    sigma = _to_float64(sigma_in, name=f"{name}.sigma")
    if mu.ndim != 1:
        raise ParameterError(f"{name}.mu must be 1-d (d,), got shape {tuple(mu.shape)}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise ParameterError(
            f"{name}.sigma must have shape (d, d) = ({d}, {d}) to match {name}.mu, "
            f"got {tuple(sigma.shape)}"
        )
    scale = max(float(np.abs(sigma).max(initial=0.0)), np.finfo(np.float64).tiny)
    if float(np.abs(sigma - sigma.T).max(initial=0.0)) > 1e-6 * scale:
        raise ParameterError(f"{name}.sigma is not symmetric: it is not a covariance matrix")
    return GaussianStats(mu, 0.5 * (sigma + sigma.T))


class FrechetDistance:
    """Streaming Frechet distance: feed batches of real and synthetic samples, then compute.

    Keeps float64 running sums (count, sum, sum of outer products about a shift, and the
    fourth-moment sums Ledoit-Wolf shrinkage needs), so the number equals
    :func:`frechet_distance` on the concatenated data, up to round-off, for sample counts
    that do not fit in memory.

    Parameters
    ----------
    features : str, callable or None
        Feature space applied to each batch, as in :func:`frechet_distance`.
    shrinkage : {None, "ledoit-wolf"} or float
        Covariance shrinkage used by :meth:`compute`.
    batch_size : int
        Batch size for feature extraction within one :meth:`update` call.

    Examples
    --------
    >>> fd = FrechetDistance()
    >>> rng = np.random.default_rng(0)
    >>> for _ in range(4):
    ...     fd.update(rng.normal(size=(100, 2)), real=True)
    ...     fd.update(rng.normal(size=(100, 2)) + 1.0, real=False)
    >>> 1.8 < fd.compute() < 2.2
    True
    """

    def __init__(
        self, *, features: Features = None, shrinkage: Shrinkage = None, batch_size: int = 64
    ) -> None:
        _validate_shrinkage(shrinkage)
        check_count("batch_size", batch_size, 1)
        self.features = features
        self.shrinkage = shrinkage
        self.batch_size = batch_size
        self._real = _Moments()
        self._fake = _Moments()

    @property
    def n_real(self) -> int:
        """Real samples seen since the last reset."""
        return self._real.n

    @property
    def n_fake(self) -> int:
        """Synthetic samples seen since the last reset."""
        return self._fake.n

    def update(self, x: ArrayLike, *, real: bool) -> None:
        """Add a batch.

        Parameters
        ----------
        x : np.ndarray or torch.Tensor [shape=(b, d) or (b, 1, H, W)]
            Features or model-space CQTs.
        real : bool
            Whether the batch is real (True) or synthetic (False) data.

        Raises
        ------
        ParameterError
            NaN/inf values, a bad shape, or a feature dimension that differs from earlier
            batches.
        """
        if not isinstance(real, (bool, np.bool_, int, np.integer)):
            raise ParameterError(f"real={real!r} must be True (real data) or False (synthetic)")
        name = "real batch" if real else "fake batch"
        feats = _features_of(x, self.features, batch_size=self.batch_size, name=name, min_n=0)
        other = self._fake if real else self._real
        if other.dim is not None and feats.shape[1] != other.dim:
            raise ParameterError(
                f"dimension mismatch: {name} has d={feats.shape[1]} features, "
                f"the {'fake' if real else 'real'} batches had d={other.dim}"
            )
        (self._real if real else self._fake).update(feats)

    def stats(self, *, real: bool) -> GaussianStats:
        """Gaussian statistics of the real (or synthetic) samples seen so far.

        Save the real statistics once and pass them to :func:`frechet_distance` later to
        avoid re-reading a large reference set.
        """
        moments = self._real if real else self._fake
        return self._stats(moments, "real data" if real else "fake data")

    def _stats(self, moments: _Moments, name: str) -> GaussianStats:
        stats = moments.stats(self.shrinkage, name=name)
        d = stats.mu.shape[0]
        if self.shrinkage is None and moments.n <= d:
            warnings.warn(
                f"{name} has n={moments.n} samples for d={d} feature dimensions (n <= d): "
                "its covariance is singular; pass shrinkage='ledoit-wolf'",
                CoverGANWarning,
                stacklevel=3,
            )
        return stats

    def compute(self) -> float:
        """Frechet distance between everything seen so far.

        Raises
        ------
        ParameterError
            Fewer than 2 real or 2 synthetic samples.
        """
        real = self._stats(self._real, "real data")
        fake = self._stats(self._fake, "fake data")
        return _frechet_from_stats(real, fake)

    def reset(self, *, keep_real: bool = False) -> None:
        """Forget the synthetic samples, and the real ones unless ``keep_real``."""
        self._fake = _Moments()
        if not keep_real:
            self._real = _Moments()


# --------------------------------------------------------------------------------------
# Feature spaces
# --------------------------------------------------------------------------------------


def cqt_stats(x: torch.Tensor) -> torch.Tensor:
    """Per-bin temporal statistics of model-space CQTs (the ``"cqt-stats"`` space).

    For each frequency bin ``h``, over time: the mean (spectral envelope), the standard
    deviation (how much the bin varies) and the mean absolute frame-to-frame difference
    (temporal dynamics). Then :data:`CQT_STATS_EXTRA` = 6 summaries of frame-level
    descriptors: mean and standard deviation over time of the spectral flux (RMS
    frame-to-frame change across bins) and of the spectral centroid (in [0, 1] of the bin
    range, values weighted by ``(x + 1) / 2``), the standard deviation of frame loudness
    (mean over bins) and the mean across-frequency roughness ``mean_h |x[h+1] - x[h]|``
    (how peaked the spectrum is). No feature is a linear function of the others (a
    chroma of the mean spectrum, for instance, would be), which would make every
    covariance singular.

    Parameters
    ----------
    x : torch.Tensor [shape=(n, 1, H, W)]
        Model-space CQTs (values in [-1, 1]), ``H >= 2`` bins, ``W >= 2`` frames.

    Returns
    -------
    torch.Tensor [shape=(n, 3 * H + 6)], float64
        Columns ``[mean_0..mean_{H-1}, std_*, delta_*, flux mean, flux std,
        centroid mean, centroid std, loudness std, roughness]``.

    Raises
    ------
    ParameterError
        A shape other than ``(n, 1, H, W)`` with ``H, W >= 2``.
    """
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] < 2 or x.shape[3] < 2:
        raise ParameterError(
            "cqt-stats features need model-space CQTs of shape (n, 1, H, W) with H >= 2 bins "
            f"and W >= 2 frames, got {tuple(x.shape)}"
        )
    v = x[:, 0].to(torch.float64)  # (n, H, W)
    n_bins = v.shape[1]
    mean = v.mean(dim=-1)
    std = v.std(dim=-1, unbiased=False)
    dt = v[..., 1:] - v[..., :-1]
    delta = dt.abs().mean(dim=-1)
    flux = dt.pow(2).mean(dim=1).sqrt()  # (n, W - 1)
    weight = ((v + 1.0) / 2.0).clamp(min=0.0)
    total = weight.sum(dim=1)  # (n, W)
    bins = torch.arange(n_bins, dtype=torch.float64) / (n_bins - 1)
    centroid = torch.where(
        total > 0, (weight * bins[:, None]).sum(dim=1) / total.clamp(min=1e-12), 0.5
    )
    loudness = v.mean(dim=1)  # (n, W)
    roughness = (v[:, 1:] - v[:, :-1]).abs().mean(dim=(1, 2))
    extra = torch.stack(
        [
            flux.mean(dim=-1),
            flux.std(dim=-1, unbiased=False),
            centroid.mean(dim=-1),
            centroid.std(dim=-1, unbiased=False),
            loudness.std(dim=-1, unbiased=False),
            roughness,
        ],
        dim=1,
    )
    return torch.cat([mean, std, delta, extra], dim=1)


def inception_weights_path(weights_path: str | os.PathLike[str] | None = None) -> Path:
    """Locate pytorch-fid's FID Inception weights without downloading anything.

    Looked for, in order: ``weights_path``; the file named by the environment variable
    ``COVERGAN_INCEPTION_WEIGHTS``; pytorch-fid's own download in
    ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth``.

    Parameters
    ----------
    weights_path : str or os.PathLike, optional
        Path of the ``.pth`` state dict.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ParameterError
        The file is in none of those places; the message says where to put it and the
        URL to get it from.
    """
    if weights_path is not None:
        candidates = [("weights_path", Path(weights_path))]
    else:
        candidates = []
        env = os.environ.get(INCEPTION_WEIGHTS_ENV)
        if env:
            candidates.append((INCEPTION_WEIGHTS_ENV, Path(env)))
        hub = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILENAME
        candidates.append(("torch hub cache", hub))
    for _, path in candidates:
        if path.is_file():
            return path
    looked = "; ".join(f"{what}: {path}" for what, path in candidates)
    raise ParameterError(
        "the FID Inception weights were not found (looked in "
        f"{looked}). covergan never downloads them: fetch {INCEPTION_WEIGHTS_URL} on a "
        f"machine with internet access and either pass its path as weights_path=, set "
        f"{INCEPTION_WEIGHTS_ENV}=/path/to/{INCEPTION_WEIGHTS_FILENAME}, or copy it to "
        f"{Path(torch.hub.get_dir()) / 'checkpoints' / INCEPTION_WEIGHTS_FILENAME}"
    )


class _InceptionPool(nn.Module):
    """The FID Inception network up to its final average pool: (n, 3, 299, 299) -> (n, 2048)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        names = [
            "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool",
            "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool",
            "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
            "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
        ]  # fmt: skip
        self.layers = nn.Sequential(
            *(
                nn.MaxPool2d(kernel_size=3, stride=2) if n == "maxpool" else getattr(net, n)
                for n in names
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(x), 1), 1)


@functools.lru_cache(maxsize=1)
def _build_fid_inception(path: str) -> nn.Module:
    """pytorch-fid's FID InceptionV3 (same structure and patches), loaded from ``path``."""
    from pytorch_fid import inception as pfi

    models = importlib.import_module("torchvision.models")
    net = models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:  # any unreadable or foreign file
        raise CheckpointError(
            f"{path} is not pytorch-fid's FID Inception state dict ({exc}); "
            f"get it from {INCEPTION_WEIGHTS_URL}"
        ) from exc
    pool = _InceptionPool(net).eval()
    for p in pool.parameters():
        p.requires_grad_(False)
    return pool


class InceptionFeatures:
    """pytorch-fid's InceptionV3 pool features (2048-d) of model-space CQTs.

    The single CQT channel is replicated to RGB and resized bilinearly to 299 x 299;
    model-space values in [-1, 1] are already the range the FID network expects, so they
    are not rescaled. The weights are read from a local file (see
    :func:`inception_weights_path`), never downloaded.

    Parameters
    ----------
    weights_path : str or os.PathLike, optional
        The ``pt_inception-2015-12-05-6726825d.pth`` state dict.
    device : str or torch.device
        Where the network runs.

    Raises
    ------
    ParameterError
        The weights file cannot be found.
    CheckpointError
        The file is not the FID Inception state dict.
    """

    dim = 2048

    def __init__(
        self,
        weights_path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> None:
        self.weights_path = inception_weights_path(weights_path)
        self.device = torch.device(device)
        self.net = _build_fid_inception(str(self.weights_path.resolve())).to(self.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a batch.

        Parameters
        ----------
        x : torch.Tensor [shape=(n, 1, H, W)]
            Model-space CQTs in [-1, 1].

        Returns
        -------
        torch.Tensor [shape=(n, 2048)]
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise ParameterError(
                f"inception features need CQTs of shape (n, 1, H, W), got {tuple(x.shape)}"
            )
        x = x.to(self.device, torch.float32)
        x = F.interpolate(
            x, size=(_INCEPTION_SIZE, _INCEPTION_SIZE), mode="bilinear", align_corners=False
        )
        with torch.no_grad():
            out: torch.Tensor = self.net(x.expand(-1, 3, -1, -1))
        return out


_NAMED_FEATURES = ("cqt-stats", "inception", "embedding")


def _resolve_features(features: str | FeatureFn) -> FeatureFn:
    if isinstance(features, str):
        if features == "cqt-stats":
            return cqt_stats
        if features == "inception":
            return InceptionFeatures()
        if features == "embedding":
            raise ParameterError(
                "features='embedding' needs the embedding model itself: pass it as "
                "features=model (an nn.Module or callable mapping (n, 1, H, W) CQTs to (n, d))"
            )
        raise ParameterError(
            f"features={features!r} is not a known feature space; use one of "
            f"{list(_NAMED_FEATURES)} or a callable (n, 1, H, W) -> (n, d)"
        )
    if not callable(features):
        raise ParameterError(
            f"features={features!r} must be a name ({list(_NAMED_FEATURES)}) or a callable"
        )
    return features


def extract_features(
    x: ArrayLike, features: str | FeatureFn = "cqt-stats", *, batch_size: int = 64
) -> Float64Array:
    """Map model-space CQTs to feature vectors.

    Parameters
    ----------
    x : np.ndarray or torch.Tensor [shape=(n, 1, H, W)]
        Model-space CQTs.
    features : str or callable
        ``"cqt-stats"`` (:func:`cqt_stats`, ``d = 3 H + 6``), ``"inception"``
        (:class:`InceptionFeatures` with weights found by :func:`inception_weights_path`,
        ``d = 2048``), or any callable / ``nn.Module`` mapping a float32 batch
        ``(b, 1, H, W)`` to ``(b, d)``, e.g. a CSI embedding model. A module runs in eval
        mode without gradients on its own device, and gets its training mode back afterwards.
    batch_size : int
        Samples per call of the feature function.

    Returns
    -------
    np.ndarray [shape=(n, d)], float64

    Raises
    ------
    ParameterError
        An unknown name, ``"embedding"`` without a model, NaN/inf input, a bad shape, or a
        feature function that returns something other than a finite ``(b, d)`` tensor.
    """
    fn = _resolve_features(features)
    check_count("batch_size", batch_size, 1)
    t = _to_tensor(x, name="x")
    if isinstance(fn, nn.Module):
        return _run_features(fn, t, batch_size, module=fn)
    return _run_features(fn, t, batch_size, module=None)


def _run_features(
    fn: FeatureFn, x: torch.Tensor, batch_size: int, *, module: nn.Module | None
) -> Float64Array:
    device: torch.device | None = None
    was_training = False
    if module is not None:
        param = next(iter(module.parameters()), None)
        device = param.device if param is not None else None
        was_training = module.training
        module.eval()
    out: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                batch = x[start : start + batch_size]
                batch = batch.to(torch.float64 if fn is cqt_stats else torch.float32)
                if device is not None:
                    batch = batch.to(device)
                y = fn(batch)
                if not isinstance(y, torch.Tensor):
                    raise ParameterError(
                        f"the feature function must return a torch.Tensor (b, d), got "
                        f"{type(y).__name__}"
                    )
                if y.ndim != 2 or y.shape[0] != batch.shape[0] or y.shape[1] < 1:
                    raise ParameterError(
                        f"the feature function must return a (b, d) tensor for a batch of "
                        f"b={batch.shape[0]} windows {tuple(batch.shape)}, got shape "
                        f"{tuple(y.shape)}"
                    )
                if not bool(torch.isfinite(y).all()):
                    raise ParameterError(
                        f"the feature function returned NaN or inf values (output shape "
                        f"{tuple(y.shape)})"
                    )
                out.append(y.detach().to("cpu", torch.float64))
    finally:
        if module is not None and was_training:
            module.train()
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


def _to_float64(x: object, *, name: str) -> Float64Array:
    if isinstance(x, torch.Tensor):
        arr = x.detach().to("cpu", torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        arr = x.astype(np.float64, copy=False)
    else:
        raise ParameterError(
            f"{name} must be a NumPy array or torch tensor, got {type(x).__name__}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ParameterError(
            f"{name} contains NaN or inf values ({int(bad.sum())} of {arr.size} entries)"
        )
    return arr


def _to_tensor(x: object, *, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        raise ParameterError(
            f"{name} must be a NumPy array or torch tensor, got {type(x).__name__}"
        )
    if not t.is_floating_point():
        t = t.to(torch.float32)
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        raise ParameterError(
            f"{name} contains NaN or inf values ({int(bad.sum())} of {t.numel()} entries)"
        )
    return t


def _features_of(
    x: object, features: Features, *, batch_size: int, name: str, min_n: int = 2
) -> Float64Array:
    """Sample input -> float64 features (n, d), validated."""
    if features is None:
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            hint = " (a DataLoader's batch is [windows, labels]: pass the windows)"
            raise ParameterError(
                f"{name} must be a NumPy array or torch tensor, got {type(x).__name__}"
                f"{hint if isinstance(x, list) else ''}"
            )
        if x.ndim == 2:
            feats = _to_float64(x, name=name)
        elif x.ndim == 4:
            feats = extract_features(_to_tensor(x, name=name), "cqt-stats", batch_size=batch_size)
        else:
            raise ParameterError(
                f"{name} must have shape (n, d) (features) or (n, 1, H, W) (CQTs), "
                f"got {tuple(x.shape)}"
            )
    else:
        feats = extract_features(_to_tensor(x, name=name), features, batch_size=batch_size)
    if feats.shape[0] < min_n:
        raise ParameterError(f"{name} has {feats.shape[0]} sample(s); at least {min_n} needed")
    return feats


def _labels_list(labels: Labels, n: int, *, name: str) -> list[Hashable]:
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        items: list[Hashable] = labels.tolist()
    else:
        items = list(labels)
    if len(items) != n:
        raise ParameterError(f"{name} has {len(items)} labels for {n} samples")
    return items


def _groups(labels: list[Hashable]) -> dict[Hashable, list[int]]:
    out: dict[Hashable, list[int]] = {}
    for i, song in enumerate(labels):
        out.setdefault(song, []).append(i)
    return out


def _song_rng(seed: int, song: Hashable) -> np.random.Generator:
    """A generator that depends only on the seed and the song id, not on the other songs."""
    return np.random.default_rng([seed, zlib.crc32(str(song).encode())])


# --------------------------------------------------------------------------------------
# Floors and per-song quality
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloorComparison:
    """A synthetic-vs-real distance beside the real-vs-real floor, at equal sample sizes.

    Both distances are taken to the same real reference set, from sets of
    ``n_compared`` samples each, so their ratio is free of the small-sample bias that
    both share.

    Attributes
    ----------
    distance : float
        Frechet distance from ``n_compared`` synthetic samples to the reference set.
    floor : float
        Frechet distance from ``n_compared`` other real samples to the reference set.
    n_reference : int
        Size of the real reference set.
    n_compared : int
        Size of each of the two compared sets.
    """

    distance: float
    floor: float
    n_reference: int
    n_compared: int

    @property
    def ratio(self) -> float:
        """``distance / floor``: 1 means "as close as real data is to itself"."""
        return _ratio(self.distance, self.floor)


def _ratio(num: float, den: float) -> float:
    if den > 0.0:
        return num / den
    return 1.0 if num == 0.0 else math.inf


def _compare(
    ref: Float64Array,
    other: Float64Array,
    fake: Float64Array,
    rng: np.random.Generator,
    shrinkage: Shrinkage,
    *,
    name: str,
) -> FloorComparison:
    """Floor and distance of equal-size subsets of ``other`` and ``fake`` to ``ref``."""
    k = min(other.shape[0], fake.shape[0])
    other_k = other[np.sort(rng.permutation(other.shape[0])[:k])]
    fake_k = fake[np.sort(rng.permutation(fake.shape[0])[:k])]
    ref_stats = _stats_of(ref, shrinkage, name=f"{name} reference", stacklevel=None)
    root = _psd_sqrt(ref_stats.sigma)
    floor, dist = (
        _frechet_from_stats(
            ref_stats, _stats_of(part, shrinkage, name=name, stacklevel=None), root_a=root
        )
        for part in (other_k, fake_k)
    )
    return FloorComparison(distance=dist, floor=floor, n_reference=ref.shape[0], n_compared=k)


def _split_halves(
    n: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    perm = rng.permutation(n)
    half = (n + 1) // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def _warn_small(n_small: int, n_total: int, d: int, shrinkage: Shrinkage, what: str) -> None:
    if n_small == 0:
        return
    remedy = (
        f"covariances are shrunk ({shrinkage!r}) but the numbers stay noisy"
        if shrinkage is not None
        else "covariances are singular; pass shrinkage='ledoit-wolf'"
    )
    warnings.warn(
        f"{n_small} of {n_total} {what} compare sets with n <= d={d} samples; {remedy}. "
        "Read the distances against their floors.",
        CoverGANWarning,
        stacklevel=3,
    )


def frechet_with_floor(
    real: ArrayLike,
    fake: ArrayLike,
    *,
    heldout: ArrayLike | None = None,
    features: Features = None,
    shrinkage: Shrinkage = None,
    seed: int = 0,
    batch_size: int = 64,
) -> FloorComparison:
    """Synthetic-vs-real Frechet distance beside the real-vs-real floor.

    Without ``heldout``, the real samples are split at random (``seed``) into disjoint
    halves: the larger half is the reference, the floor is the distance from the other
    half to it. With ``heldout``, the held-out real samples are the reference and the
    floor is the distance from the training samples (``real``) to them. Either way the
    synthetic set and the real comparison set are cut (at random) to a common size, so
    ``ratio`` compares like with like.

    Parameters
    ----------
    real : np.ndarray or torch.Tensor [shape=(n, d) or (n, 1, H, W)]
        Real samples (the training data when ``heldout`` is given).
    fake : np.ndarray or torch.Tensor [shape=(m, d) or (m, 1, H, W)]
        Synthetic samples.
    heldout : np.ndarray or torch.Tensor, optional
        Real samples the generator never saw.
    features, shrinkage, batch_size
        As in :func:`frechet_distance`.
    seed : int
        Seed of the split and subsets.

    Returns
    -------
    FloorComparison

    Raises
    ------
    ParameterError
        Too few samples (each compared set needs at least 2), mismatched dimensions,
        NaN/inf values or bad arguments.

    Warns
    -----
    CoverGANWarning
        When a compared set has ``n <= d``.
    """
    check_count("seed", seed, 0)
    _validate_shrinkage(shrinkage)
    fr = _features_of(real, features, batch_size=batch_size, name="real")
    ff = _features_of(fake, features, batch_size=batch_size, name="fake")
    d = fr.shape[1]
    if ff.shape[1] != d:
        raise ParameterError(f"dimension mismatch: real has d={d} features, fake d={ff.shape[1]}")
    rng = np.random.default_rng(seed)
    if heldout is None:
        if fr.shape[0] < 4:
            raise ParameterError(
                f"real has {fr.shape[0]} samples; a floor from disjoint halves needs at least 4"
            )
        ref_idx, other_idx = _split_halves(fr.shape[0], rng)
        ref, other = fr[ref_idx], fr[other_idx]
    else:
        ref = _features_of(heldout, features, batch_size=batch_size, name="heldout")
        if ref.shape[1] != d:
            raise ParameterError(
                f"dimension mismatch: real has d={d} features, heldout d={ref.shape[1]}"
            )
        other = fr
    result = _compare(ref, other, ff, rng, shrinkage, name="real")
    _warn_small(int(result.n_compared <= d), 1, d, shrinkage, "comparisons")
    return result


@dataclass(frozen=True)
class PerSongRow:
    """One song of a :class:`PerSongReport`.

    Attributes
    ----------
    song : Hashable
        The song (work / clique) id.
    n_real : int
        Real samples of the song (training samples when held-out data was given).
    n_fake : int
        Synthetic samples of the song.
    n_reference : int
        Size of the real reference set.
    n_compared : int
        Size of each compared set (synthetic subset and real floor subset).
    distance : float
        Synthetic-vs-reference Frechet distance.
    floor : float
        Real-vs-reference Frechet distance.
    """

    song: Hashable
    n_real: int
    n_fake: int
    n_reference: int
    n_compared: int
    distance: float
    floor: float

    @property
    def ratio(self) -> float:
        """``distance / floor``."""
        return _ratio(self.distance, self.floor)


@dataclass(frozen=True)
class PerSongReport:
    """Per-song (intra) Frechet distances, each beside its real-vs-real floor.

    Attributes
    ----------
    rows : tuple of PerSongRow
        The evaluated songs, in order of first appearance in the real labels.
    skipped : dict
        Songs that could not be evaluated, with the reason.
    feature_dim : int
        Dimension ``d`` of the feature space.
    floor_kind : {"halves", "heldout"}
        How the floor was measured.
    """

    rows: tuple[PerSongRow, ...]
    skipped: Mapping[Hashable, str] = field(default_factory=dict)
    feature_dim: int = 0
    floor_kind: Literal["halves", "heldout"] = "halves"

    @property
    def mean_distance(self) -> float:
        """Mean over songs of the synthetic-vs-real distance (the intra-FD)."""
        return float(np.mean([r.distance for r in self.rows]))

    @property
    def mean_floor(self) -> float:
        """Mean over songs of the real-vs-real floor."""
        return float(np.mean([r.floor for r in self.rows]))

    @property
    def ratio(self) -> float:
        """``mean_distance / mean_floor`` (a ratio of means: robust to a near-zero floor)."""
        return _ratio(self.mean_distance, self.mean_floor)

    def to_markdown(self, *, digits: int = 3) -> str:
        """The table as Markdown: one row per song, then the mean, then skipped songs."""
        head = (
            "| song | n real | n fake | n ref | n compared | distance | floor | x floor |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|"
        )
        lines = [head]
        for r in self.rows:
            lines.append(
                f"| {r.song} | {r.n_real} | {r.n_fake} | {r.n_reference} | {r.n_compared} | "
                f"{r.distance:.{digits}f} | {r.floor:.{digits}f} | {r.ratio:.2f} |"
            )
        lines.append(
            f"| **mean ({len(self.rows)} songs)** | | | | | {self.mean_distance:.{digits}f} | "
            f"{self.mean_floor:.{digits}f} | {self.ratio:.2f} |"
        )
        text = "\n".join(lines)
        if self.skipped:
            text += "\n\nSkipped: " + "; ".join(f"{s}: {why}" for s, why in self.skipped.items())
        return text + "\n"


def per_song_frechet(
    real: ArrayLike,
    real_labels: Labels,
    fake: ArrayLike,
    fake_labels: Labels,
    *,
    heldout: ArrayLike | None = None,
    heldout_labels: Labels | None = None,
    features: Features = None,
    shrinkage: Shrinkage = "ledoit-wolf",
    min_samples: int = 2,
    seed: int = 0,
    batch_size: int = 64,
) -> PerSongReport:
    """Per-song (intra) Frechet distance with a real-vs-real floor for every song.

    For each song, the real reference set is the larger of two random disjoint halves of
    its real samples (or its held-out samples when ``heldout`` is given); the floor is the
    distance from the song's other real samples to it, the distance is from the song's
    synthetic samples to it, both cut at random to the same size ``n_compared``. Features
    are extracted once for all samples.

    Parameters
    ----------
    real : np.ndarray or torch.Tensor [shape=(n, d) or (n, 1, H, W)]
        Real samples (training samples when ``heldout`` is given).
    real_labels : sequence, np.ndarray or torch.Tensor [shape=(n,)]
        Song id of each real sample.
    fake : np.ndarray or torch.Tensor [shape=(m, d) or (m, 1, H, W)]
        Synthetic samples.
    fake_labels : sequence, np.ndarray or torch.Tensor [shape=(m,)]
        Song id each synthetic sample was generated for.
    heldout, heldout_labels : optional
        Held-out real samples and their song ids (given together).
    features : str, callable or None
        As in :func:`frechet_distance`.
    shrinkage : {"ledoit-wolf", None} or float
        Covariance shrinkage; Ledoit-Wolf by default because song sets are tiny.
    min_samples : int
        Smallest size (>= 2) of any set a song compares; smaller songs are skipped.
    seed : int
        Seed of the splits and subsets; each song's draw depends only on the seed and
        its id.
    batch_size : int
        Batch size for feature extraction.

    Returns
    -------
    PerSongReport

    Raises
    ------
    ParameterError
        Label counts that do not match the samples, ``heldout`` without labels (or the
        reverse), ``min_samples < 2``, mismatched dimensions, NaN/inf values.
    DatasetError
        No song has enough samples to be evaluated.

    Warns
    -----
    CoverGANWarning
        Once, when some songs compare sets with ``n <= d`` samples.
    """
    check_count("seed", seed, 0)
    _validate_shrinkage(shrinkage)
    check_count("min_samples", min_samples, 2)
    if (heldout is None) != (heldout_labels is None):
        raise ParameterError("heldout and heldout_labels must be given together")
    fr = _features_of(real, features, batch_size=batch_size, name="real", min_n=1)
    ff = _features_of(fake, features, batch_size=batch_size, name="fake", min_n=1)
    d = fr.shape[1]
    if ff.shape[1] != d:
        raise ParameterError(f"dimension mismatch: real has d={d} features, fake d={ff.shape[1]}")
    real_groups = _groups(_labels_list(real_labels, fr.shape[0], name="real_labels"))
    fake_groups = _groups(_labels_list(fake_labels, ff.shape[0], name="fake_labels"))
    held_groups: dict[Hashable, list[int]] = {}
    fh = np.zeros((0, d))
    if heldout is not None and heldout_labels is not None:
        fh = _features_of(heldout, features, batch_size=batch_size, name="heldout", min_n=1)
        if fh.shape[1] != d:
            raise ParameterError(
                f"dimension mismatch: real has d={d} features, heldout d={fh.shape[1]}"
            )
        held_groups = _groups(_labels_list(heldout_labels, fh.shape[0], name="heldout_labels"))

    rows: list[PerSongRow] = []
    skipped: dict[Hashable, str] = {}
    n_small = 0
    for song, idx in real_groups.items():
        fake_idx = fake_groups.get(song, [])
        rng = _song_rng(seed, song)
        if heldout is None:
            if len(idx) < 2 * min_samples:
                skipped[song] = f"{len(idx)} real samples; halves need >= {2 * min_samples}"
                continue
            ref_idx, other_idx = _split_halves(len(idx), rng)
            ref, other = fr[idx][ref_idx], fr[idx][other_idx]
        else:
            ref, other = fh[held_groups.get(song, [])], fr[idx]
            if ref.shape[0] < min_samples:
                skipped[song] = f"{ref.shape[0]} held-out samples; need >= {min_samples}"
                continue
        if len(fake_idx) < min_samples:
            skipped[song] = f"{len(fake_idx)} synthetic samples; need >= {min_samples}"
            continue
        if other.shape[0] < min_samples:
            skipped[song] = f"{other.shape[0]} real samples; need >= {min_samples}"
            continue
        cmp = _compare(ref, other, ff[fake_idx], rng, shrinkage, name=f"song {song!r}")
        n_small += int(cmp.n_compared <= d)
        rows.append(
            PerSongRow(
                song=song,
                n_real=len(idx),
                n_fake=len(fake_idx),
                n_reference=cmp.n_reference,
                n_compared=cmp.n_compared,
                distance=cmp.distance,
                floor=cmp.floor,
            )
        )
    for song in [*fake_groups, *held_groups]:
        if song not in real_groups:
            skipped[song] = "no real (training) samples"
    if not rows:
        raise DatasetError(
            f"no song has enough samples for a per-song distance (min_samples={min_samples}): "
            + "; ".join(f"{s}: {why}" for s, why in list(skipped.items())[:5])
        )
    _warn_small(n_small, len(rows), d, shrinkage, "songs")
    return PerSongReport(
        rows=tuple(rows),
        skipped=skipped,
        feature_dim=d,
        floor_kind="halves" if heldout is None else "heldout",
    )


# --------------------------------------------------------------------------------------
# Memorisation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MemorizationReport:
    """Nearest-training-sample distances of synthetic and of held-out real samples.

    Attributes
    ----------
    synthetic_distances : np.ndarray [shape=(m,)]
        For each synthetic sample, the distance to its nearest real training sample.
    heldout_distances : np.ndarray [shape=(h,)]
        The same for each held-out real sample.
    nearest_train : np.ndarray [shape=(m,)], int
        Index (into the training set) of each synthetic sample's nearest neighbour, to
        look at suspicious pairs.
    """

    synthetic_distances: Float64Array
    heldout_distances: Float64Array
    nearest_train: npt.NDArray[np.int64]

    @property
    def median_synthetic(self) -> float:
        """Median nearest-training distance of the synthetic samples."""
        return float(np.median(self.synthetic_distances))

    @property
    def median_heldout(self) -> float:
        """Median nearest-training distance of the held-out real samples."""
        return float(np.median(self.heldout_distances))

    @property
    def ratio(self) -> float:
        """``median_synthetic / median_heldout``: about 1 or more, no copying; << 1, copying."""
        return _ratio(self.median_synthetic, self.median_heldout)

    @property
    def copy_fraction(self) -> float:
        """Fraction of synthetic samples closer to the training set than every held-out sample."""
        return float(np.mean(self.synthetic_distances < self.heldout_distances.min()))


def _nearest(
    queries: Float64Array, base: Float64Array, chunk: int = 1024
) -> tuple[Float64Array, npt.NDArray[np.int64]]:
    dists: list[Float64Array] = []
    index: list[npt.NDArray[np.int64]] = []
    b = torch.from_numpy(base)
    for start in range(0, queries.shape[0], chunk):
        q = torch.from_numpy(queries[start : start + chunk])
        dist, idx = torch.cdist(q, b).min(dim=1)
        dists.append(dist.numpy())
        index.append(idx.numpy().astype(np.int64))
    return np.concatenate(dists), np.concatenate(index)


def memorization_check(
    synthetic: ArrayLike,
    train_real: ArrayLike,
    heldout_real: ArrayLike,
    *,
    features: Features = None,
    batch_size: int = 64,
) -> MemorizationReport:
    """Compare how close synthetic and unseen real samples come to the training set.

    A generator that copies its training data puts synthetic samples much nearer to
    some training sample than genuinely new real recordings are; one that generalises
    puts them about as far (ratio near 1) or farther. Distances are Euclidean in the
    feature space after standardising each feature by its standard deviation over the
    training set (so no feature dominates by its units).

    Parameters
    ----------
    synthetic : np.ndarray or torch.Tensor [shape=(m, d) or (m, 1, H, W)]
    train_real : np.ndarray or torch.Tensor [shape=(n, d) or (n, 1, H, W)]
        The real samples the generator was trained on.
    heldout_real : np.ndarray or torch.Tensor [shape=(h, d) or (h, 1, H, W)]
        Real samples it never saw (ideally of the same songs).
    features : str, callable or None
        As in :func:`frechet_distance`; pass ``lambda x: x.flatten(1)`` for raw
        model-space values (sensitive to exact copies, blind to shifted ones).
    batch_size : int
        Batch size for feature extraction.

    Returns
    -------
    MemorizationReport

    Raises
    ------
    ParameterError
        Empty sets, mismatched dimensions, NaN/inf values.
    """
    fs = _features_of(synthetic, features, batch_size=batch_size, name="synthetic", min_n=1)
    ft = _features_of(train_real, features, batch_size=batch_size, name="train_real", min_n=1)
    fh = _features_of(heldout_real, features, batch_size=batch_size, name="heldout_real", min_n=1)
    for name, f in (("synthetic", fs), ("heldout_real", fh)):
        if f.shape[1] != ft.shape[1]:
            raise ParameterError(
                f"dimension mismatch: train_real has d={ft.shape[1]} features, "
                f"{name} d={f.shape[1]}"
            )
    scale = ft.std(axis=0) if ft.shape[0] > 1 else np.ones(ft.shape[1])
    scale[scale <= 1e-12 * max(float(scale.max(initial=0.0)), 1.0)] = 1.0
    center = ft.mean(axis=0)
    zt, zs, zh = ((f - center) / scale for f in (ft, fs, fh))
    syn_d, syn_i = _nearest(zs, zt)
    held_d, _ = _nearest(zh, zt)
    return MemorizationReport(
        synthetic_distances=syn_d, heldout_distances=held_d, nearest_train=syn_i
    )
