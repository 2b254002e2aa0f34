"""Spectral artefacts: bins where synthetic windows do what no real window does.

A generator can keep a reference's melody and harmony and still add something no recording
has, such as a bright periodic comb across the lowest bins. Distances in an embedding may not
notice (a CSI model learns to ignore what does not tell songs apart), so this check looks at
the bins themselves. Every window is described, per frequency bin, by three statistics over
time: the mean level, the spread, and the mean absolute frame-to-frame change (what a comb or
a flicker raises). The held-out real windows give each (statistic, bin) cell its range; a
window's cell is *out of range* when it falls outside it. The *artefact rate* is the share of
out-of-range cells, and its floor the same share for the training windows, measured against
the same held-out range (real windows of other recordings fall out of range now and then).

>>> check = artefact_check(heldout, synthetic, floor=train)
>>> check.ratio, check.bins        # synthetic rate / floor, and the bins that stand out
>>> check.describe()               # what those bins do, e.g. "0-2 flicker under (54%)"
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from covergan._checks import check_count
from covergan.errors import ParameterError

__all__ = [
    "ARTEFACT_MAX_RATIO",
    "MIN_REFERENCE_WINDOWS",
    "ArtefactCheck",
    "artefact_check",
    "bin_statistics",
    "low_comb",
]

#: The check passes when the synthetic artefact rate is at most this many times the floor.
ARTEFACT_MAX_RATIO = 2.0
#: Held-out windows needed to set the ranges.
MIN_REFERENCE_WINDOWS = 10
#: The three statistics per bin, in :func:`bin_statistics` order.
STATISTICS = ("level", "spread", "flicker")
#: Windows whose statistics :func:`bin_statistics` computes at a time (in float64).
STATISTICS_BLOCK = 256


@dataclass(frozen=True)
class ArtefactCheck:
    """What :func:`artefact_check` measured.

    Attributes
    ----------
    rate : float
        Share of the synthetic windows' (statistic, bin) cells outside the held-out range.
    floor : float
        The same share for the ``floor`` windows (real training windows).
    bins : list of int
        Bins (0 = lowest) where synthetic windows fall out of range (in any statistic) more
        than three times as often as the floor windows and in more than a quarter of the
        windows, lowest first.
    per_bin : np.ndarray [shape=(3, n_bins)]
        Out-of-range share of the synthetic windows per statistic (level, spread, flicker)
        and bin.
    per_bin_under : np.ndarray [shape=(3, n_bins)]
        The part of :attr:`per_bin` under the range (below every reference window); the
        rest is over it.
    """

    rate: float
    floor: float
    bins: list[int]
    per_bin: npt.NDArray[np.float64]
    per_bin_under: npt.NDArray[np.float64]

    @property
    def ratio(self) -> float:
        """``rate / floor``; 1 is what real windows of other recordings score."""
        if self.floor > 0:
            return self.rate / self.floor
        return 1.0 if self.rate == 0 else float("inf")

    @property
    def passed(self) -> bool:
        """No bin stands out (:attr:`bins` is empty; a few bad bins barely move the rate)
        and :attr:`ratio` is at most :data:`ARTEFACT_MAX_RATIO`."""
        return not self.bins and self.ratio <= ARTEFACT_MAX_RATIO

    def describe(self, max_groups: int = 4) -> str:
        """What the bins that stand out do, in words: ``""`` when none stands out.

        Each such bin is named by the statistic and side it most often leaves the range
        on, and neighbouring bins that leave it the same way are one group with the
        largest share among them, e.g. ``"0-2 flicker under (54%); 11 spread over (30%)"``:
        bins 0-2 change less from frame to frame than any reference window (in up to 54% of
        the synthetic windows), bin 11 spreads more. A comb or a flicker shows as flicker
        over; a blur of the frame-to-frame detail as flicker under.

        Parameters
        ----------
        max_groups : int
            Groups named at most (>= 1); more are summarised as ``"... (k more)"``.

        Raises
        ------
        ParameterError
            ``max_groups`` is not an integer >= 1.
        """
        max_groups = check_count("max_groups", max_groups, 1)
        over = self.per_bin - self.per_bin_under
        groups: list[tuple[int, int, str, float]] = []  # first bin, last bin, what, share
        for b in self.bins:
            # the largest share; on a tie the later statistic (flicker, then spread)
            share, stat, side = max(
                (float(by_side[k, b]), k, side)
                for side, by_side in enumerate((self.per_bin_under, over))
                for k in range(len(STATISTICS))
            )
            what = f"{STATISTICS[stat]} {('under', 'over')[side]}"
            if groups and groups[-1][1] == b - 1 and groups[-1][2] == what:
                first, _, _, most = groups.pop()
                groups.append((first, b, what, max(most, share)))
            else:
                groups.append((b, b, what, share))
        words = [
            f"{first}{'' if last == first else f'-{last}'} {what} ({share:.0%})"
            for first, last, what, share in groups[:max_groups]
        ]
        if len(groups) > max_groups:
            words.append(f"... ({len(groups) - max_groups} more)")
        return "; ".join(words)


def bin_statistics(x: torch.Tensor) -> npt.NDArray[np.float64]:
    """Level, spread and flicker of every bin of every window.

    Parameters
    ----------
    x : torch.Tensor [shape=(n, 1, n_bins, W)]
        Model-space windows, ``W >= 2``.

    Returns
    -------
    np.ndarray [shape=(n, 3, n_bins)], float64
        Per window and bin: the mean over time, the standard deviation over time and the
        mean absolute difference of consecutive frames.

    Raises
    ------
    ParameterError
        Not a finite ``(n, 1, n_bins, W)`` tensor with ``n >= 1`` and ``W >= 2``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ParameterError(f"windows must be a tensor (n, 1, n_bins, W), got {got}")
    if x.shape[0] < 1 or x.shape[3] < 2:
        raise ParameterError(f"need at least one window of 2 frames or more, got {tuple(x.shape)}")
    out = np.empty((x.shape[0], 3, x.shape[2]))
    for start in range(0, x.shape[0], STATISTICS_BLOCK):  # float64 copies of a block only
        block = x[start : start + STATISTICS_BLOCK]
        if not bool(torch.isfinite(block).all()):
            raise ParameterError("windows contain NaN or inf")
        v = block[:, 0].double()
        stats = torch.stack(
            [v.mean(-1), v.std(-1, unbiased=False), v.diff(dim=-1).abs_().mean(-1)], dim=1
        )
        out[start : start + STATISTICS_BLOCK] = stats.numpy()
    return out


def artefact_check(
    reference: torch.Tensor, synthetic: torch.Tensor, *, floor: torch.Tensor
) -> ArtefactCheck:
    """Where synthetic windows leave the range of real ones, beside the real rate.

    Parameters
    ----------
    reference : torch.Tensor [shape=(n_r, 1, n_bins, W)]
        Held-out real windows: they set each (statistic, bin) cell's range (min to max).
    synthetic : torch.Tensor [shape=(n_s, 1, n_bins, W)]
    floor : torch.Tensor [shape=(n_f, 1, n_bins, W)]
        Real windows of other recordings (the training windows), scored the same way.

    Returns
    -------
    ArtefactCheck

    Raises
    ------
    ParameterError
        Badly shaped or non-finite windows, sets whose bins or widths differ, or fewer than
        10 reference windows (too few to set a range).
    """
    ref, syn, flo = (bin_statistics(t) for t in (reference, synthetic, floor))
    sizes = {tuple(t.shape[2:]) for t in (reference, synthetic, floor)}
    if len(sizes) > 1:
        raise ParameterError(f"the three sets differ in (n_bins, W): {sorted(sizes)}")
    if ref.shape[0] < MIN_REFERENCE_WINDOWS:
        raise ParameterError(
            f"need at least {MIN_REFERENCE_WINDOWS} reference windows to set a range, got "
            f"{ref.shape[0]}"
        )
    low, high = ref.min(axis=0), ref.max(axis=0)

    def sides(stats: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Share of windows under the range and over it: [2, 3, n_bins]."""
        return np.stack([(stats < low).mean(axis=0), (stats > high).mean(axis=0)])

    syn_sides = sides(syn)
    per_bin, per_bin_floor = syn_sides.sum(axis=0), sides(flo).sum(axis=0)
    worst_syn, worst_floor = per_bin.max(axis=0), per_bin_floor.max(axis=0)
    bins = [int(h) for h in np.flatnonzero(worst_syn > np.maximum(3 * worst_floor, 0.25))]
    return ArtefactCheck(
        float(per_bin.mean()), float(per_bin_floor.mean()), bins, per_bin, syn_sides[0]
    )


def low_comb(
    x: torch.Tensor, *, bins: int = 4, period: int = 2, level: float = 0.9
) -> torch.Tensor:
    """A negative control: ``x`` with a bright periodic comb across its lowest bins.

    Parameters
    ----------
    x : torch.Tensor [shape=(n, 1, n_bins, W)]
        Model-space windows.
    bins : int
        Lowest bins that get the comb.
    period : int
        Frames between two teeth.
    level : float
        Model-space value of a tooth.

    Returns
    -------
    torch.Tensor [shape=(n, 1, n_bins, W)]
        A copy with every ``period``-th frame of the lowest ``bins`` bins set to ``level``.
    """
    bin_statistics(x)  # validates
    y = x.clone()
    y[:, 0, :bins, ::period] = level
    return y
