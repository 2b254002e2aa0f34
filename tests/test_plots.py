"""Tests for covergan.plots: every figure renders to a non-empty PNG without pyplot state."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from covergan import plots
from covergan.errors import ParameterError
from covergan.plots import (
    plot_bin_statistics,
    plot_cqt_grid,
    plot_cqt_sources,
    plot_features,
    plot_losses,
    plot_value_histograms,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def cqts() -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, size=(6, 1, 12, 16))
    fake = torch.from_numpy(rng.uniform(-0.5, 0.5, size=(5, 12, 16)).astype(np.float32))
    return real, fake


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert plt.get_fignums() == []  # nothing registered with pyplot


def test_cqt_grid(tmp_path: Path, cqts: tuple[np.ndarray, torch.Tensor]) -> None:
    real, fake = cqts
    path = tmp_path / "grid" / "grid.png"
    fig = plot_cqt_grid({"a": real, 7: real[:2]}, {"a": fake, 7: fake}, n_per_song=3, path=path)
    assert isinstance(fig, Figure)
    _check_png(path)
    # song 7 has only two real samples: the third real cell is left empty, not an error
    assert len(fig.axes) == 2 * 6 + 1  # cells + colour bar


def test_bin_statistics(tmp_path: Path, cqts: tuple[np.ndarray, torch.Tensor]) -> None:
    real, fake = cqts
    path = tmp_path / "bins.png"
    fig = plot_bin_statistics(real, fake, title="epoch 10", path=path)
    _check_png(path)
    mean_line = fig.axes[0].lines[0].get_ydata()
    np.testing.assert_allclose(mean_line, real.mean(axis=(0, 1, 3)))


def test_value_histograms(tmp_path: Path, cqts: tuple[np.ndarray, torch.Tensor]) -> None:
    real, fake = cqts
    path = tmp_path / "hist.png"
    fig = plot_value_histograms(real, fake, n_bands=3, path=path)
    _check_png(path)
    assert len(fig.axes) == 4
    assert len(plot_value_histograms(real, fake, n_bands=1).axes) == 1


def test_value_histograms_count_in_blocks(
    cqts: tuple[np.ndarray, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted a few samples at a time, the densities are those of all values at once
    (outside the range in the edge bins), for float32 and float64 input alike."""
    real, fake = cqts
    real = real * 1.5  # some values outside (-1, 1)
    expected = {}
    for name, x in (("real", real[:, 0]), ("fake", fake.numpy())):
        values = np.clip(x[:, 4:8].ravel(), -1.0, 1.0)
        expected[name] = np.histogram(values, bins=np.linspace(-1, 1, 11), density=True)[0]
    monkeypatch.setattr(plots, "_HISTOGRAM_BLOCK", 2)
    fig = plot_value_histograms(real, fake, n_bands=3, bins=10)
    band = fig.axes[2]  # bins 4-7
    assert band.get_title() == "bins 4-7"
    got = [patch.get_data().values for patch in band.patches]
    np.testing.assert_allclose(got[0], expected["real"])
    np.testing.assert_allclose(got[1], expected["fake"], rtol=1e-6)


def test_losses(tmp_path: Path) -> None:
    path = tmp_path / "loss.png"
    history = {"d_loss": list(np.linspace(2, 1, 50)), "g_loss": [1.0, 2.0, 1.5]}
    fig = plot_losses(history, smooth=5, logy=True, title="run", path=path)
    _check_png(path)
    smoothed = fig.axes[0].lines[1].get_ydata()
    assert smoothed[0] == pytest.approx(2.0)
    assert smoothed[4] == pytest.approx(np.mean(history["d_loss"][:5]))
    assert plot_losses({"x": [1.0]}).axes[0].lines[0].get_ydata().tolist() == [1.0]


def test_figures_are_returned_without_writing(cqts: tuple[np.ndarray, torch.Tensor]) -> None:
    real, fake = cqts
    fig = plot_bin_statistics(real, fake)
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == []


def test_save_figure_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    save_figure(plot_losses({"x": [1.0, 2.0]}), path)
    _check_png(path)


def test_grid_errors(cqts: tuple[np.ndarray, torch.Tensor]) -> None:
    real, fake = cqts
    with pytest.raises(ParameterError, match="share no song id"):
        plot_cqt_grid({"a": real}, {"b": fake})
    with pytest.raises(ParameterError, match=r"songs \['b'\] are missing"):
        plot_cqt_grid({"a": real}, {"a": fake}, songs=["a", "b"])
    with pytest.raises(ParameterError, match="n_per_song=0"):
        plot_cqt_grid({"a": real}, {"a": fake}, n_per_song=0)
    with pytest.raises(ParameterError, match=r"real\['a'\] must have shape"):
        plot_cqt_grid({"a": real[0, 0]}, {"a": fake})
    with pytest.raises(ParameterError, match="no sources"):
        plot_cqt_sources({})


def test_sources_side_by_side(cqts: tuple[np.ndarray, torch.Tensor], tmp_path: Path) -> None:
    real, fake = cqts
    sources = {"real": {"a": real}, "versions": {"a": fake}, "gan": {"a": fake[:1]}}
    fig = plot_cqt_sources(sources, n_per_song=2, path=tmp_path / "s.png")
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == ["real 1", "real 2", "versions 1", "versions 2", "gan 1", "gan 2"]
    assert not fig.axes[5].axison  # the class GAN has one sample: its second cell is empty
    _check_png(tmp_path / "s.png")


def test_statistics_errors(cqts: tuple[np.ndarray, torch.Tensor]) -> None:
    real, fake = cqts
    with pytest.raises(ParameterError, match="real has H=12 bins but fake has H=6"):
        plot_bin_statistics(real, fake[:, :6])
    bad = real.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ParameterError, match="real contains NaN or inf"):
        plot_bin_statistics(bad, fake)
    with pytest.raises(ParameterError, match="must be a NumPy array or torch tensor"):
        plot_bin_statistics(real.tolist(), fake)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"n_bands=13 must be an integer in \[1, H=12\]"):
        plot_value_histograms(real, fake, n_bands=13)
    with pytest.raises(ParameterError, match="bins=0"):
        plot_value_histograms(real, fake, bins=0)
    with pytest.raises(ParameterError, match="value_range"):
        plot_value_histograms(real, fake, value_range=(1.0, -1.0))


def test_losses_errors() -> None:
    with pytest.raises(ParameterError, match="history is empty"):
        plot_losses({})
    with pytest.raises(ParameterError, match=r"history\['g'\] must be a non-empty"):
        plot_losses({"g": []})
    with pytest.raises(ParameterError, match="smooth=0"):
        plot_losses({"g": [1.0]}, smooth=0)


def test_plot_features_writes_png(tmp_path: Path) -> None:
    from covergan.cqt import CQTConfig

    rng = np.random.default_rng(1)
    items = [("work A, version 1", rng.random((12, 30))), ("work B", torch.rand(12, 18))]
    fig = plot_features(items, config=CQTConfig(), title="versions", path=tmp_path / "v.png")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4  # two images and their colour bars
    _check_png(tmp_path / "v.png")


def test_plot_features_errors() -> None:
    with pytest.raises(ParameterError, match="at least one"):
        plot_features([])
    with pytest.raises(ParameterError, match="NaN"):
        plot_features([("bad", np.full((4, 4), np.nan))])
