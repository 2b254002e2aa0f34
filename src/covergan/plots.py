"""Figures for judging synthetic CQTs: sample grids, per-bin statistics, value histograms, losses.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state, no
display, nothing to close), returns it, and when ``path`` is given also writes it as a
PNG (atomically: a half-written file never replaces a good one). Inputs are model-space
CQTs, NumPy arrays or torch tensors of shape ``(n, 1, H, W)`` or ``(n, H, W)``.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch
from matplotlib.figure import Figure

from covergan._checks import check_count
from covergan._io import atomic_write
from covergan.errors import ParameterError

__all__ = [
    "plot_bin_statistics",
    "plot_cqt_grid",
    "plot_cqt_sources",
    "plot_features",
    "plot_losses",
    "plot_value_histograms",
    "save_figure",
]

ArrayLike: TypeAlias = "npt.NDArray[Any] | torch.Tensor"
PathLike: TypeAlias = "str | os.PathLike[str]"
FloatArray: TypeAlias = "npt.NDArray[np.float32] | npt.NDArray[np.float64]"

_REAL_COLOR = "tab:blue"
_FAKE_COLOR = "tab:orange"
#: Samples per block of :func:`plot_value_histograms`'s counts.
_HISTOGRAM_BLOCK = 256


def save_figure(fig: Figure, path: PathLike, *, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
        Destination; parent folders are created.
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
    return path


def _finish(fig: Figure, path: PathLike | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _as_cqts(x: ArrayLike, *, name: str) -> FloatArray:
    """(n, 1, H, W) or (n, H, W) -> float32 (float64 kept) (n, H, W), without a copy where
    the input already is one."""
    if isinstance(x, torch.Tensor):
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        arr = x.detach().to("cpu", dtype).numpy()
    elif isinstance(x, np.ndarray):
        arr = x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)
    else:
        raise ParameterError(
            f"{name} must be a NumPy array or torch tensor, got {type(x).__name__}"
        )
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ParameterError(
            f"{name} must have shape (n, 1, H, W) or (n, H, W) with n >= 1, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ParameterError(f"{name} contains NaN or inf values")
    return arr


def _density(
    data: FloatArray, rows: npt.NDArray[np.intp], edges: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Histogram density of ``data[:, rows]`` over ``edges``, values outside counted in the
    edge bins; :data:`_HISTOGRAM_BLOCK` samples at a time, so no copy of the whole set."""
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    for start in range(0, data.shape[0], _HISTOGRAM_BLOCK):
        block = np.clip(data[start : start + _HISTOGRAM_BLOCK, rows], edges[0], edges[-1])
        counts += np.histogram(block, bins=edges)[0]
    density: npt.NDArray[np.float64] = counts / (counts.sum() * np.diff(edges))
    return density


def plot_features(
    items: Sequence[tuple[str, ArrayLike]],
    *,
    config: Any = None,
    top_db: float = 60.0,
    cmap: str = "magma",
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Full-length CQT features side by side, one row each, on a dB colour scale.

    Parameters
    ----------
    items : sequence of (label, np.ndarray or torch.Tensor [shape=(n_bins, n_frames)])
        Features in the extractor's format (magnitudes; dB features are shown as they are).
    config : CQTConfig, optional
        Used to label the axes in seconds and note names.
    top_db : float
        Dynamic range shown for magnitude features.
    title : str, optional
    path : str or PathLike, optional
        Write a PNG there.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError
        No items, or an item that is not 2-D / not finite.
    """
    if not items:
        raise ParameterError("plot_features needs at least one (label, features) item")
    arrays = [
        (label, _as_cqts(np.asarray(x)[None], name=f"features {label!r}")[0]) for label, x in items
    ]
    is_db = config is not None and getattr(config, "scale", "") == "db"
    fig = Figure(figsize=(10, 2.2 * len(arrays) + 0.4), layout="constrained")
    axes = fig.subplots(len(arrays), 1, squeeze=False)[:, 0]
    rate = float(config.frame_rate) if config is not None else 1.0
    for ax, (label, x) in zip(axes, arrays, strict=True):
        if not is_db:
            x = 20.0 * np.log10(np.maximum(x, 1e-12) / max(float(x.max()), 1e-12))
            x = np.maximum(x, -top_db)
        extent = (0.0, x.shape[1] / rate, -0.5, x.shape[0] - 0.5)
        image = ax.imshow(x, origin="lower", aspect="auto", cmap=cmap, extent=extent)
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_ylabel("CQT bin")
        fig.colorbar(image, ax=ax, label="dB", pad=0.01)
    axes[-1].set_xlabel("time (s)" if config is not None else "frame")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_cqt_grid(
    real_by_song: Mapping[Any, ArrayLike],
    fake_by_song: Mapping[Any, ArrayLike],
    *,
    songs: Sequence[Hashable] | None = None,
    n_per_song: int = 3,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "magma",
    path: PathLike | None = None,
) -> Figure:
    """A grid of real and synthetic CQTs: one row per song, real on the left.

    :func:`plot_cqt_sources` with the sources ``"real"`` and ``"synthetic"``.

    Parameters
    ----------
    real_by_song, fake_by_song : mapping of song id to array [shape=(k, 1, H, W) or (k, H, W)]
        Samples per song; the first ``n_per_song`` of each are drawn.
    songs : sequence, optional
        Songs (rows) to draw, in order; default: the songs of ``real_by_song`` that also
        appear in ``fake_by_song``.
    n_per_song, vmin, vmax, cmap, path
        As in :func:`plot_cqt_sources`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError
        As in :func:`plot_cqt_sources`.
    """
    return plot_cqt_sources(
        {"real": real_by_song, "synthetic": fake_by_song},
        songs=songs,
        n_per_song=n_per_song,
        vmin=vmin,
        vmax=vmax,
        cmap=cmap,
        path=path,
    )


def plot_cqt_sources(
    sources: Mapping[str, Mapping[Any, ArrayLike]],
    *,
    songs: Sequence[Hashable] | None = None,
    n_per_song: int = 3,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "magma",
    path: PathLike | None = None,
) -> Figure:
    """CQTs of several sources side by side at one colour scale: one row per song, one
    block of ``n_per_song`` columns per source (e.g. real, versions, class GAN, classic).

    Parameters
    ----------
    sources : mapping of source name to (mapping of song id to array [shape=(k, 1, H, W) or
        (k, H, W)])
        Samples of each source per song; the first ``n_per_song`` of each are drawn.
    songs : sequence, optional
        Songs (rows) to draw, in order; default: the songs every source has.
    n_per_song : int
        Columns per source.
    vmin, vmax : float
        Colour range (model space is [-1, 1]).
    cmap : str
        Matplotlib colour map.
    path : str or os.PathLike, optional
        Write the figure there as PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError
        No source or no songs to draw, a song missing from a source, ``n_per_song < 1`` or
        a bad array.
    """
    check_count("n_per_song", n_per_song, 1)
    if not sources:
        raise ParameterError("no sources to draw")
    names = list(sources)
    first = sources[names[0]]
    rows = (
        list(songs)
        if songs is not None
        else [s for s in first if all(s in sources[n] for n in names)]
    )
    if not rows:
        raise ParameterError(f"no songs to draw: the sources {names} share no song id")
    missing = [s for s in rows if any(s not in sources[n] for n in names)]
    if missing:
        raise ParameterError(f"songs {missing!r} are missing from one of the sources {names}")
    n_cols = len(names) * n_per_song
    fig = Figure(figsize=(2.2 * n_cols, 1.6 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False, sharex=True, sharey=True)
    image = None
    for r, song in enumerate(rows):
        blocks = [_as_cqts(sources[n][song], name=f"{n}[{song!r}]") for n in names]
        for c in range(n_cols):
            ax = axes[r, c]
            block, j = divmod(c, n_per_song)
            ax.set_xticks([])
            ax.set_yticks([])
            if j < blocks[block].shape[0]:
                image = ax.imshow(
                    blocks[block][j], origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap=cmap
                )
            else:
                ax.set_axis_off()
            if r == 0:
                ax.set_title(f"{names[block]} {j + 1}", fontsize=9)
        axes[r, 0].set_ylabel(str(song), fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="model-space value")
    return _finish(fig, path)


def plot_bin_statistics(
    real: ArrayLike,
    fake: ArrayLike,
    *,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Real-vs-synthetic per-bin curves: mean with spread, and temporal variation.

    Left: for each frequency bin, the mean value over all samples and frames, with a
    band of one standard deviation (the spread of values). Right: the mean over samples
    of each bin's standard deviation over time (how much a bin moves within a sample).
    A generator that has the right average spectrum but frozen dynamics shows on the
    right, not on the left.

    Parameters
    ----------
    real, fake : np.ndarray or torch.Tensor [shape=(n, 1, H, W) or (n, H, W)]
        Model-space CQTs with the same number of bins ``H``.
    title : str, optional
    path : str or os.PathLike, optional
        Write the figure there as PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError
        Different bin counts, an empty set or a bad array.
    """
    r = _as_cqts(real, name="real")
    f = _as_cqts(fake, name="fake")
    _same_bins(r, f)
    bins = np.arange(r.shape[1])
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax_mean, ax_dyn = fig.subplots(1, 2)
    for data, label, color in ((r, "real", _REAL_COLOR), (f, "synthetic", _FAKE_COLOR)):
        mean = data.mean(axis=(0, 2), dtype=np.float64)
        spread = data.std(axis=(0, 2), dtype=np.float64)
        ax_mean.plot(bins, mean, color=color, label=f"{label} (n={data.shape[0]})")
        ax_mean.fill_between(bins, mean - spread, mean + spread, color=color, alpha=0.2)
        dynamics = data.std(axis=2, dtype=np.float64).mean(axis=0)
        ax_dyn.plot(bins, dynamics, color=color, label=label)
    ax_mean.set(xlabel="CQT bin", ylabel="value", title="per-bin mean ± 1 std")
    ax_dyn.set(xlabel="CQT bin", ylabel="std over time", title="per-bin temporal variation")
    ax_mean.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_value_histograms(
    real: ArrayLike,
    fake: ArrayLike,
    *,
    n_bands: int = 4,
    bins: int = 50,
    value_range: tuple[float, float] = (-1.0, 1.0),
    path: PathLike | None = None,
) -> Figure:
    """Histograms of values, real against synthetic, overall and per frequency band.

    The first panel pools every value; the others split the CQT bins into ``n_bands``
    equal bands (low to high), because a generator often gets the bass right and the
    treble wrong. Histograms are densities, so set sizes need not match.

    Parameters
    ----------
    real, fake : np.ndarray or torch.Tensor [shape=(n, 1, H, W) or (n, H, W)]
        Model-space CQTs with the same number of bins ``H``.
    n_bands : int
        Frequency bands, ``1 <= n_bands <= H``.
    bins : int
        Histogram bins.
    value_range : (float, float)
        Histogram range; values outside are counted in the edge bins.
    path : str or os.PathLike, optional
        Write the figure there as PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError
        Different bin counts, ``n_bands`` or ``bins`` out of range, an empty
        ``value_range`` or a bad array.
    """
    r = _as_cqts(real, name="real")
    f = _as_cqts(fake, name="fake")
    _same_bins(r, f)
    n_freq = r.shape[1]
    if isinstance(n_bands, bool) or not isinstance(n_bands, int) or not 1 <= n_bands <= n_freq:
        raise ParameterError(f"n_bands={n_bands!r} must be an integer in [1, H={n_freq}]")
    check_count("bins", bins, 1)
    lo, hi = value_range
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ParameterError(f"value_range={value_range!r} must be (low, high) with low < high")
    edges = np.linspace(lo, hi, bins + 1)
    bands = np.array_split(np.arange(n_freq), n_bands)
    panels = [("all bins", np.arange(n_freq))]
    if n_bands > 1:
        panels += [(f"bins {b[0]}-{b[-1]}", b) for b in bands]
    fig = Figure(figsize=(3.2 * len(panels), 3.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, sel) in zip(axes, panels, strict=True):
        for data, name, color in ((r, "real", _REAL_COLOR), (f, "synthetic", _FAKE_COLOR)):
            ax.stairs(_density(data, sel, edges), edges, color=color, label=name)
        ax.set(title=label, xlabel="value")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    return _finish(fig, path)


def plot_losses(
    history: Mapping[str, Sequence[float]],
    *,
    smooth: int = 1,
    logy: bool = False,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Training curves: one line per named series, against the step index.

    Parameters
    ----------
    history : mapping of str to sequence of float
        E.g. ``{"d_loss": [...], "g_loss": [...]}``; series may differ in length.
    smooth : int
        Width of a trailing moving average (1 = raw values). The raw curve is drawn
        faintly underneath when smoothing.
    logy : bool
        Logarithmic y axis (needs positive values).
    title : str, optional
    path : str or os.PathLike, optional
        Write the figure there as PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError
        An empty history, an empty series or ``smooth < 1``.
    """
    if not history:
        raise ParameterError("history is empty: nothing to plot")
    check_count("smooth", smooth, 1)
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    for name, series in history.items():
        y = np.asarray(series, dtype=np.float64)
        if y.ndim != 1 or y.size == 0:
            raise ParameterError(f"history[{name!r}] must be a non-empty 1-d sequence of numbers")
        steps = np.arange(y.size)
        if smooth > 1:
            (line,) = ax.plot(steps, y, alpha=0.25, linewidth=0.8)
            kernel = np.ones(min(smooth, y.size))
            csum = np.convolve(y, kernel)[: y.size]
            counts = np.convolve(np.ones_like(y), kernel)[: y.size]
            ax.plot(steps, csum / counts, color=line.get_color(), label=name)
        else:
            ax.plot(steps, y, label=name)
    ax.set(xlabel="step", ylabel="loss")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def _same_bins(r: FloatArray, f: FloatArray) -> None:
    if r.shape[1] != f.shape[1]:
        raise ParameterError(
            f"real has H={r.shape[1]} bins but fake has H={f.shape[1]}: they must match"
        )
