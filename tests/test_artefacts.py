"""Spectral artefact check (covergan.artefacts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covergan.artefacts import (
    ARTEFACT_MAX_RATIO,
    STATISTICS_BLOCK,
    artefact_check,
    bin_statistics,
    low_comb,
)
from covergan.errors import ParameterError

N_BINS, WIDTH = 24, 32


def windows(n: int, seed: int) -> torch.Tensor:
    """Model-space windows with a moving melodic line over a noisy floor."""
    rng = np.random.default_rng(seed)
    x = -0.8 + 0.1 * rng.random((n, 1, N_BINS, WIDTH))
    for i in range(n):
        line = rng.integers(6, 20, size=WIDTH // 4).repeat(4)
        x[i, 0, line, np.arange(WIDTH)] = rng.uniform(0.3, 0.9, size=WIDTH)
    return torch.from_numpy(x).float()


def test_statistics_per_bin() -> None:
    x = torch.zeros(2, 1, 3, 4)
    x[0, 0, 1] = torch.tensor([0.0, 1.0, 0.0, 1.0])
    stats = bin_statistics(x)
    assert stats.shape == (2, 3, 3)
    assert stats[0, :, 1].tolist() == [0.5, 0.5, 1.0]  # level, spread, flicker
    assert np.all(stats[1] == 0)


def test_statistics_in_blocks_match_window_by_window() -> None:
    x = torch.rand(STATISTICS_BLOCK + 3, 1, 5, 7, generator=torch.Generator().manual_seed(1))
    whole = bin_statistics(x)
    assert whole.shape == (STATISTICS_BLOCK + 3, 3, 5)
    for i in (0, STATISTICS_BLOCK - 1, STATISTICS_BLOCK, STATISTICS_BLOCK + 2):
        np.testing.assert_array_equal(whole[i], bin_statistics(x[i : i + 1])[0])
    x[STATISTICS_BLOCK + 1, 0, 2, 3] = float("nan")  # in the second block
    with pytest.raises(ParameterError, match="NaN"):
        bin_statistics(x)


def test_real_windows_pass_and_a_comb_is_flagged() -> None:
    train, heldout, other = windows(60, 0), windows(40, 1), windows(40, 2)
    real = artefact_check(heldout, other, floor=train)
    assert real.passed and real.ratio < ARTEFACT_MAX_RATIO and real.bins == []
    bad = artefact_check(heldout, low_comb(other), floor=train)
    assert not bad.passed and bad.ratio > ARTEFACT_MAX_RATIO
    assert bad.bins == [0, 1, 2, 3] and bad.per_bin.shape == (3, N_BINS)
    one = artefact_check(heldout, low_comb(other, bins=1), floor=train)  # one bad bin of 24
    assert one.ratio < ARTEFACT_MAX_RATIO and one.bins == [0] and not one.passed
    assert bad.per_bin[2, 0] == 1.0  # every synthetic window flickers in the lowest bin
    assert bad.describe() == "0-3 flicker over (100%)" and real.describe() == ""


def test_describe_says_how_each_bin_leaves_the_range() -> None:
    train, heldout, other = windows(60, 0), windows(40, 1), windows(40, 2)
    odd = low_comb(other, bins=2)
    odd[:, 0, 3:5] = odd[:, 0, 3:5].mean(dim=-1, keepdim=True)  # bins 3-4 blurred in time
    check = artefact_check(heldout, odd, floor=train)
    assert check.bins == [0, 1, 3, 4]
    assert (check.per_bin_under[:, :2] == 0).all() and (check.per_bin_under[2, 3:5] == 1).all()
    assert check.describe() == "0-1 flicker over (100%); 3-4 flicker under (100%)"
    assert check.describe(max_groups=1) == "0-1 flicker over (100%); ... (1 more)"
    with pytest.raises(ParameterError, match="max_groups"):
        check.describe(max_groups=0)


def test_bad_input() -> None:
    x = windows(12, 0)
    with pytest.raises(ParameterError, match=r"\(n, 1, n_bins, W\)"):
        artefact_check(x[:, 0], x, floor=x)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="differ in"):
        artefact_check(x, x[..., :8], floor=x)
    with pytest.raises(ParameterError, match="at least 10 reference windows"):
        artefact_check(x[:5], x, floor=x)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ParameterError, match="NaN"):
        artefact_check(x, nan, floor=x)
