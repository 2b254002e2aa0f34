"""Tests for covergan.metrics: Frechet distance, feature spaces, floors, memorisation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from covergan import metrics
from covergan.errors import CheckpointError, CoverGANWarning, DatasetError, ParameterError
from covergan.metrics import (
    CQT_STATS_EXTRA,
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_URL,
    FrechetDistance,
    GaussianStats,
    InceptionFeatures,
    cqt_stats,
    extract_features,
    frechet_distance,
    frechet_with_floor,
    gaussian_stats,
    inception_weights_path,
    memorization_check,
    per_song_frechet,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _correlated(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return rng.normal(size=(n, d)) @ mix + shift


# ---------------------------------------------------------------------------------------------
# frechet_distance: reference implementation and closed forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_matches_pytorch_fid_on_well_conditioned_inputs(rng: np.random.Generator) -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    for d in (2, 16, 64):
        a = _correlated(rng, 800, d)
        b = _correlated(rng, 600, d, shift=0.3)
        ref = calculate_frechet_distance(
            a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
        )
        ours = frechet_distance(a, b)
        assert abs(ours - ref) / ref <= 1e-6
        stats = frechet_distance(
            (a.mean(0), np.cov(a, rowvar=False)), (b.mean(0), np.cov(b, rowvar=False))
        )
        assert abs(stats - ref) / ref <= 1e-6


def test_identical_sets_give_zero(rng: np.random.Generator) -> None:
    x = _correlated(rng, 200, 8)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    s = gaussian_stats(x)
    assert frechet_distance(s, s) == pytest.approx(0.0, abs=1e-9)


def test_equal_covariances_give_squared_mean_distance(rng: np.random.Generator) -> None:
    x = _correlated(rng, 300, 5)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    sigma = np.cov(x, rowvar=False)
    mu = rng.normal(size=5)
    expected = float((mu - 1.0) @ (mu - 1.0))
    assert frechet_distance((mu, sigma), (np.ones(5), sigma)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("m1", "s1", "m2", "s2"), [(0.0, 1.0, 3.0, 2.0), (-1.5, 0.2, 0.5, 4.0)])
def test_one_dimensional_gaussians(m1: float, s1: float, m2: float, s2: float) -> None:
    d = frechet_distance(
        (np.array([m1]), np.array([[s1**2]])), (np.array([m2]), np.array([[s2**2]]))
    )
    assert d == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-12)


def test_result_is_a_nonnegative_python_float_on_singular_covariances(
    rng: np.random.Generator,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoverGANWarning)
        for _ in range(20):
            a = rng.normal(size=(5, 40))  # n < d: rank-deficient covariances
            b = rng.normal(size=(4, 40)) * 1e-3
            for value in (frechet_distance(a, b), frechet_distance(a, a), frechet_distance(b, b)):
                assert type(value) is float
                assert np.isfinite(value)
                assert value >= 0.0


def test_torch_and_numpy_inputs_agree(rng: np.random.Generator) -> None:
    a, b = _correlated(rng, 100, 4), _correlated(rng, 90, 4, shift=1.0)
    expected = frechet_distance(a, b)
    got = frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b))
    assert got == pytest.approx(expected, rel=1e-5)


def test_mixed_stats_and_samples(rng: np.random.Generator) -> None:
    a, b = _correlated(rng, 100, 4), _correlated(rng, 90, 4, shift=1.0)
    assert frechet_distance(gaussian_stats(a), b) == pytest.approx(frechet_distance(a, b))


def test_cqt_input_uses_cqt_stats_by_default(rng: np.random.Generator) -> None:
    a = torch.from_numpy(rng.uniform(-1, 1, size=(30, 1, 4, 6)))
    b = torch.from_numpy(rng.uniform(-1, 0.5, size=(25, 1, 4, 6)))
    expected = frechet_distance(cqt_stats(a), cqt_stats(b))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(a, b, features="cqt-stats") == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# small samples and shrinkage
# ---------------------------------------------------------------------------------------------


def test_warns_when_samples_do_not_exceed_dimensions(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(50, 6))
    with pytest.warns(CoverGANWarning, match=r"n=6 samples for d=6"):
        frechet_distance(a, b)
    with pytest.warns(CoverGANWarning, match="shrinkage"):
        gaussian_stats(a)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoverGANWarning)
        frechet_distance(a, b, shrinkage="ledoit-wolf")
        gaussian_stats(b)


def test_ledoit_wolf_matches_scikit_learn(rng: np.random.Generator) -> None:
    from sklearn.covariance import ledoit_wolf

    for n, d in ((8, 30), (40, 10), (200, 5)):
        x = _correlated(rng, n, d, shift=5.0)
        sk_cov, _ = ledoit_wolf(x)
        ours = gaussian_stats(x, shrinkage="ledoit-wolf")
        # sklearn shrinks the maximum-likelihood covariance (/n); covergan the unbiased one
        np.testing.assert_allclose(ours.sigma, sk_cov * n / (n - 1), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.mu, x.mean(0), rtol=1e-12)


def test_fixed_shrinkage_blends_with_scaled_identity(rng: np.random.Generator) -> None:
    x = _correlated(rng, 50, 4)
    s = np.cov(x, rowvar=False)
    target = np.trace(s) / 4 * np.eye(4)
    np.testing.assert_allclose(gaussian_stats(x, shrinkage=0.25).sigma, 0.75 * s + 0.25 * target)
    np.testing.assert_allclose(gaussian_stats(x, shrinkage=0.0).sigma, s)
    np.testing.assert_allclose(gaussian_stats(x, shrinkage=1.0).sigma, target)


def test_ledoit_wolf_leaves_scaled_identity_alone() -> None:
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    s = gaussian_stats(x, shrinkage="ledoit-wolf").sigma
    np.testing.assert_allclose(s, np.cov(x, rowvar=False))


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_dimension_mismatch_is_an_error(rng: np.random.Generator) -> None:
    with pytest.raises(ParameterError, match=r"dimension mismatch: a has d=3 .* b has d=4"):
        frechet_distance(rng.normal(size=(10, 3)), rng.normal(size=(10, 4)))
    with pytest.raises(ParameterError, match="dimension mismatch"):
        frechet_distance(rng.normal(size=(10, 3)), (np.zeros(4), np.eye(4)))


def test_fewer_than_two_samples_is_an_error(rng: np.random.Generator) -> None:
    with pytest.raises(ParameterError, match=r"a has 1 sample\(s\)"):
        frechet_distance(rng.normal(size=(1, 3)), rng.normal(size=(10, 3)))
    with pytest.raises(ParameterError, match=r"b has 0 sample\(s\)"):
        frechet_distance(rng.normal(size=(5, 3)), np.zeros((0, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_an_error(rng: np.random.Generator, bad: float) -> None:
    x = rng.normal(size=(10, 3))
    x[2, 1] = bad
    with pytest.raises(ParameterError, match=r"b contains NaN or inf values \(1 of 30"):
        frechet_distance(rng.normal(size=(10, 3)), x)
    with pytest.raises(ParameterError, match="a.sigma contains NaN or inf"):
        frechet_distance((np.zeros(2), np.full((2, 2), bad)), (np.zeros(2), np.eye(2)))
    cqt = torch.zeros(4, 1, 3, 5)
    cqt[0, 0, 0, 0] = bad
    with pytest.raises(ParameterError, match="a contains NaN or inf"):
        frechet_distance(cqt, torch.zeros(4, 1, 3, 5))


@pytest.mark.parametrize("shrinkage", ["oas", 1.5, -0.1, True, [0.1]])
def test_bad_shrinkage_is_an_error(rng: np.random.Generator, shrinkage: object) -> None:
    x = rng.normal(size=(10, 2))
    with pytest.raises(ParameterError, match="shrinkage="):
        frechet_distance(x, x, shrinkage=shrinkage)  # type: ignore[arg-type]


def test_bad_statistics_are_an_error() -> None:
    good = (np.zeros(2), np.eye(2))
    with pytest.raises(ParameterError, match=r"a.mu must be 1-d"):
        frechet_distance((np.zeros((2, 1)), np.eye(2)), good)
    with pytest.raises(ParameterError, match=r"a.sigma must have shape \(d, d\) = \(2, 2\)"):
        frechet_distance((np.zeros(2), np.eye(3)), good)
    with pytest.raises(ParameterError, match="not symmetric"):
        frechet_distance((np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]])), good)
    with pytest.raises(ParameterError, match="tuple of length 3"):
        frechet_distance((np.zeros(2), np.eye(2), 3), good)  # type: ignore[arg-type]


def test_bad_shapes_and_types_are_an_error() -> None:
    with pytest.raises(ParameterError, match=r"shape \(n, d\) \(features\) or \(n, 1, H, W\)"):
        frechet_distance(np.zeros((4, 3, 2)), np.zeros((4, 3, 2)))
    with pytest.raises(ParameterError, match="must be a NumPy array"):
        frechet_distance([[0.0, 1.0], [1.0, 0.0]], np.zeros((2, 2)))  # type: ignore[arg-type]
    batch = [torch.zeros(4, 1, 3, 3), torch.zeros(4)]  # what a DataLoader yields
    with pytest.raises(ParameterError, match=r"a DataLoader's batch is \[windows, labels\]"):
        FrechetDistance().update(batch, real=True)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="real='no' must be True"):
        FrechetDistance().update(np.zeros((4, 3)), real="no")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="batch_size"):
        frechet_distance(np.zeros((4, 1, 3, 3)), np.zeros((4, 1, 3, 3)), batch_size=0)


# ---------------------------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shrinkage", [None, "ledoit-wolf", 0.3])
def test_streaming_matches_batch(rng: np.random.Generator, shrinkage: str | float | None) -> None:
    real, fake = _correlated(rng, 97, 6, shift=3.0), _correlated(rng, 64, 6, shift=3.5)
    fd = FrechetDistance(shrinkage=shrinkage)  # type: ignore[arg-type]
    for chunk in np.array_split(real, 7):
        fd.update(chunk, real=True)
    for chunk in np.array_split(fake, 3):
        fd.update(torch.from_numpy(chunk), real=False)
    assert (fd.n_real, fd.n_fake) == (97, 64)
    expected = frechet_distance(real, fake, shrinkage=shrinkage)  # type: ignore[arg-type]
    assert fd.compute() == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(
        fd.stats(real=True).sigma,
        gaussian_stats(real, shrinkage=shrinkage).sigma,
        rtol=1e-9,  # type: ignore[arg-type]
    )


def test_streaming_is_exact_far_from_the_origin(rng: np.random.Generator) -> None:
    x = rng.normal(size=(400, 3)) + 1e6  # naive sum-of-squares covariance loses every digit
    fd = FrechetDistance()
    for chunk in np.array_split(x, 10):
        fd.update(chunk, real=True)
    np.testing.assert_allclose(fd.stats(real=True).sigma, np.cov(x, rowvar=False), rtol=1e-6)


def test_streaming_reset_and_keep_real(rng: np.random.Generator) -> None:
    real, fake = rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 1
    fd = FrechetDistance()
    fd.update(real, real=True)
    fd.update(fake, real=False)
    first = fd.compute()
    fd.reset(keep_real=True)
    assert (fd.n_real, fd.n_fake) == (50, 0)
    fd.update(fake, real=False)
    assert fd.compute() == first
    fd.reset()
    assert (fd.n_real, fd.n_fake) == (0, 0)
    with pytest.raises(ParameterError, match="real data has 0 sample"):
        fd.compute()


def test_streaming_errors(rng: np.random.Generator) -> None:
    fd = FrechetDistance()
    fd.update(rng.normal(size=(5, 3)), real=True)
    with pytest.raises(ParameterError, match="earlier batches had d=3"):
        fd.update(rng.normal(size=(5, 4)), real=True)
    with pytest.raises(ParameterError, match="dimension mismatch: fake batch has d=4"):
        fd.update(rng.normal(size=(5, 4)), real=False)
    with pytest.raises(ParameterError, match="fake data has 0 sample"):
        fd.compute()
    with pytest.raises(ParameterError, match="shrinkage"):
        FrechetDistance(shrinkage="bogus")  # type: ignore[arg-type]


def test_streaming_warns_when_samples_do_not_exceed_dimensions(rng: np.random.Generator) -> None:
    fd = FrechetDistance()
    fd.update(rng.normal(size=(3, 5)), real=True)
    fd.update(rng.normal(size=(30, 5)), real=False)
    with pytest.warns(CoverGANWarning, match="real data has n=3"):
        fd.compute()


def test_streaming_applies_features(rng: np.random.Generator) -> None:
    a = rng.uniform(-1, 1, size=(20, 1, 3, 5))
    b = rng.uniform(-1, 1, size=(20, 1, 3, 5)) * 0.5
    fd = FrechetDistance(shrinkage="ledoit-wolf")
    fd.update(a[:10], real=True)
    fd.update(a[10:], real=True)
    fd.update(b, real=False)
    expected = frechet_distance(a, b, shrinkage="ledoit-wolf")
    assert fd.compute() == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# feature spaces
# ---------------------------------------------------------------------------------------------


def test_cqt_stats_shape_and_closed_forms() -> None:
    n_bins, frames = 5, 8
    x = torch.zeros(2, 1, n_bins, frames, dtype=torch.float64)
    x[0, 0, 1] = 0.5  # a constant bin
    x[0, 0, 3] = torch.tensor([0.4, -0.4] * 4, dtype=torch.float64)  # alternating bin
    f = cqt_stats(x)
    assert f.shape == (2, 3 * n_bins + CQT_STATS_EXTRA)
    assert f.dtype == torch.float64
    mean, std, delta = f[0, :n_bins], f[0, n_bins : 2 * n_bins], f[0, 2 * n_bins : 3 * n_bins]
    torch.testing.assert_close(mean, torch.tensor([0, 0.5, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(std, torch.tensor([0, 0, 0, 0.4, 0], dtype=torch.float64))
    torch.testing.assert_close(delta, torch.tensor([0, 0, 0, 0.8, 0], dtype=torch.float64))
    flux_mean, flux_std, _, _, loudness_std, _ = f[0, 3 * n_bins :]
    assert float(flux_mean) == pytest.approx(np.sqrt(0.8**2 / n_bins))
    assert float(flux_std) == pytest.approx(0.0, abs=1e-12)
    assert float(loudness_std) == pytest.approx(0.4 / n_bins)
    # silent input: every feature defined (centroid of a silent frame is 0.5 by convention)
    silent = cqt_stats(-torch.ones(1, 1, n_bins, frames))
    assert torch.isfinite(silent).all()


def test_cqt_stats_features_are_not_linearly_dependent(rng: np.random.Generator) -> None:
    x = torch.from_numpy(rng.uniform(-1, 1, size=(300, 1, 6, 10)))
    f = cqt_stats(x).numpy()
    assert np.linalg.matrix_rank(f - f.mean(0)) == f.shape[1]


@pytest.mark.parametrize("shape", [(4, 2, 6, 6), (4, 6, 6), (4, 1, 1, 6), (4, 1, 6, 1)])
def test_cqt_stats_bad_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ParameterError, match=r"\(n, 1, H, W\) with H >= 2 bins and W >= 2"):
        cqt_stats(torch.zeros(shape))


class _Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(12, 3)
        self.modes: list[bool] = []
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        self.batches.append(x.shape[0])
        assert not torch.is_grad_enabled()
        return self.proj(x.flatten(1))


def test_module_features_run_batched_in_eval_mode_without_grad(rng: np.random.Generator) -> None:
    model = _Embedder()
    x = rng.uniform(-1, 1, size=(7, 1, 3, 4)).astype(np.float32)
    f = extract_features(x, model, batch_size=3)
    assert f.shape == (7, 3)
    assert f.dtype == np.float64
    assert model.batches == [3, 3, 1]
    assert model.modes == [False, False, False]
    assert model.training  # mode restored
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(f, expected, rtol=1e-6)
    assert frechet_distance(x, x[::-1].copy(), features=model) == pytest.approx(0.0, abs=1e-9)


def test_plain_callable_features(rng: np.random.Generator) -> None:
    x = rng.uniform(-1, 1, size=(5, 1, 3, 4))
    f = extract_features(x, lambda t: t.mean(dim=(2, 3)))
    np.testing.assert_allclose(f, x.mean(axis=(2, 3)), rtol=1e-6)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda t: t.flatten(), r"must return a \(b, d\) tensor"),
        (lambda t: t[:1].flatten(1), r"must return a \(b, d\) tensor"),
        (lambda t: t.flatten(1).numpy(), r"got ndarray"),
        (lambda t: t.flatten(1) * float("nan"), "returned NaN or inf"),
    ],
)
def test_bad_feature_function_output(fn: object, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        extract_features(torch.zeros(4, 1, 2, 2), fn)  # type: ignore[arg-type]


def test_bad_feature_names() -> None:
    x = torch.zeros(4, 1, 2, 2)
    with pytest.raises(ParameterError, match="not a known feature space"):
        extract_features(x, "vggish")
    with pytest.raises(ParameterError, match="needs the embedding model itself"):
        extract_features(x, "embedding")
    with pytest.raises(ParameterError, match="must be a name"):
        extract_features(x, 3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# inception (network mocked; one slow test against pytorch-fid's own module)
# ---------------------------------------------------------------------------------------------


class _FakeInception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return x.mean(dim=(1, 2, 3))[:, None].repeat(1, 2048)


def test_inception_features_mocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"weights")
    fake = _FakeInception()
    built: list[str] = []

    def build(path: str) -> nn.Module:
        built.append(path)
        return fake

    monkeypatch.setattr(metrics, "_build_fid_inception", build)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(weights))
    x = rng.uniform(-1, 1, size=(5, 1, 6, 20)).astype(np.float32)
    f = extract_features(x, "inception", batch_size=2)
    assert f.shape == (5, 2048)
    assert built == [str(weights.resolve())]
    assert [tuple(s.shape) for s in fake.seen] == [(2, 3, 299, 299)] * 2 + [(1, 3, 299, 299)]
    first = fake.seen[0]
    assert torch.equal(first[:, 0], first[:, 1]) and torch.equal(first[:, 0], first[:, 2])
    assert float(first.min()) >= -1.0 and float(first.max()) <= 1.0  # no rescaling
    # an explicit path wins over the environment variable
    InceptionFeatures(weights)
    assert built[-1] == str(weights.resolve())


def test_inception_missing_weights_say_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ParameterError) as info:
        extract_features(torch.zeros(2, 1, 4, 4), "inception")
    message = str(info.value)
    assert INCEPTION_WEIGHTS_URL in message
    assert INCEPTION_WEIGHTS_ENV in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    with pytest.raises(ParameterError, match="weights_path: .*nowhere.pth"):
        InceptionFeatures(tmp_path / "nowhere.pth")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(ParameterError, match=f"{INCEPTION_WEIGHTS_ENV}: .*missing.pth"):
        inception_weights_path()


def test_inception_found_in_torch_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cached = tmp_path / "checkpoints" / metrics.INCEPTION_WEIGHTS_FILENAME
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    assert inception_weights_path() == cached


def test_inception_foreign_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not pytorch-fid's FID Inception state dict"):
        InceptionFeatures(path)


@pytest.mark.slow
def test_inception_equals_pytorch_fid_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    """Our download-free build gives pytorch-fid's InceptionV3 pool features."""
    from pytorch_fid import inception as pfi

    torch.manual_seed(0)
    state = _random_fid_state_dict(pfi)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: state)
    reference = pfi.InceptionV3([3]).eval()
    try:
        ours = InceptionFeatures(path)
        x = torch.from_numpy(rng.uniform(-1, 1, size=(2, 1, 12, 40)).astype(np.float32))
        got = ours(x)
        with torch.no_grad():
            expected = reference(((x + 1) / 2).repeat(1, 3, 1, 1))[0].flatten(1)
        assert got.shape == (2, 2048)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    finally:
        metrics._build_fid_inception.cache_clear()


def _random_fid_state_dict(pfi: object) -> dict[str, torch.Tensor]:
    import torchvision

    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    )
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)  # type: ignore[attr-defined]
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)  # type: ignore[attr-defined]
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)  # type: ignore[attr-defined]
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)  # type: ignore[attr-defined]
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)  # type: ignore[attr-defined]
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)  # type: ignore[attr-defined]
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)  # type: ignore[attr-defined]
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)  # type: ignore[attr-defined]
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)  # type: ignore[attr-defined]
    return dict(net.state_dict())


# ---------------------------------------------------------------------------------------------
# floors and per-song quality
# ---------------------------------------------------------------------------------------------


def _songs(
    rng: np.random.Generator, sizes: dict[str, int], d: int = 3, offset: float = 0.0
) -> tuple[np.ndarray, list[str]]:
    centres = {s: np.full(d, 3.0 * i) for i, s in enumerate(sorted(sizes))}
    x = [rng.normal(size=(n, d)) + centres[s] + offset for s, n in sizes.items()]
    labels = [s for s, n in sizes.items() for _ in range(n)]
    return np.concatenate(x), labels


def test_per_song_floor_reads_as_a_ratio(rng: np.random.Generator) -> None:
    sizes = {"a": 60, "b": 40, "c": 50}
    real, real_labels = _songs(rng, sizes)
    good, good_labels = _songs(rng, sizes)
    bad, bad_labels = _songs(rng, sizes, offset=2.0)
    good_report = per_song_frechet(real, real_labels, good, good_labels, shrinkage=None)
    bad_report = per_song_frechet(real, real_labels, bad, bad_labels, shrinkage=None)
    assert [r.song for r in good_report.rows] == ["a", "b", "c"]
    row = good_report.rows[1]
    assert (row.n_real, row.n_fake, row.n_reference, row.n_compared) == (40, 40, 20, 20)
    assert good_report.floor_kind == "halves"
    assert good_report.feature_dim == 3
    assert 0.2 < good_report.ratio < 5.0
    assert bad_report.ratio > 10 * good_report.ratio
    assert bad_report.mean_distance == pytest.approx(np.mean([r.distance for r in bad_report.rows]))
    for r in bad_report.rows:
        assert r.ratio == pytest.approx(r.distance / r.floor)


def test_per_song_is_deterministic_and_per_song_independent(rng: np.random.Generator) -> None:
    real, real_labels = _songs(rng, {"a": 20, "b": 20, "c": 20})
    fake, fake_labels = _songs(rng, {"a": 20, "b": 20, "c": 20})
    one = per_song_frechet(real, real_labels, fake, fake_labels, seed=3)
    two = per_song_frechet(real, real_labels, fake, fake_labels, seed=3)
    other = per_song_frechet(real, real_labels, fake, fake_labels, seed=4)
    assert one == two
    assert one.rows != other.rows
    keep = [i for i, s in enumerate(real_labels) if s != "b"]
    keep_f = [i for i, s in enumerate(fake_labels) if s != "b"]
    without_b = per_song_frechet(
        real[keep], [real_labels[i] for i in keep], fake[keep_f], [fake_labels[i] for i in keep_f],
        seed=3,
    )  # fmt: skip
    assert without_b.rows == (one.rows[0], one.rows[2])


def test_per_song_skips_small_songs_and_reports_why(rng: np.random.Generator) -> None:
    real, real_labels = _songs(rng, {"a": 10, "b": 3, "c": 10})
    fake, fake_labels = _songs(rng, {"a": 10, "b": 10, "c": 1, "d": 5})
    report = per_song_frechet(real, np.array(real_labels), fake, fake_labels)
    assert [r.song for r in report.rows] == ["a"]
    assert "halves need >= 4" in report.skipped["b"]
    assert "1 synthetic samples" in report.skipped["c"]
    assert report.skipped["d"] == "no real (training) samples"
    table = report.to_markdown()
    assert table.startswith("| song | n real | n fake |")
    assert "**mean (1 songs)**" in table
    assert "Skipped: b:" in table


def test_per_song_heldout_floor(rng: np.random.Generator) -> None:
    train, train_labels = _songs(rng, {"a": 12, "b": 8})
    held, held_labels = _songs(rng, {"a": 6, "b": 5})
    fake, fake_labels = _songs(rng, {"a": 30, "b": 30})
    report = per_song_frechet(
        train, train_labels, fake, fake_labels, heldout=held, heldout_labels=held_labels
    )
    assert report.floor_kind == "heldout"
    assert [(r.n_reference, r.n_compared) for r in report.rows] == [(6, 12), (5, 8)]


def test_per_song_tensor_labels_and_cqt_input(rng: np.random.Generator) -> None:
    real = torch.from_numpy(rng.uniform(-1, 1, size=(16, 1, 3, 5)))
    fake = torch.from_numpy(rng.uniform(-1, 1, size=(8, 1, 3, 5)))
    labels = torch.tensor([0] * 8 + [1] * 8)
    with pytest.warns(CoverGANWarning, match=r"2 of 2 songs compare sets with n <= d=15"):
        report = per_song_frechet(real, labels, fake, torch.tensor([0] * 4 + [1] * 4))
    assert [r.song for r in report.rows] == [0, 1]
    assert report.feature_dim == 3 * 3 + CQT_STATS_EXTRA


def test_per_song_errors(rng: np.random.Generator) -> None:
    real, real_labels = _songs(rng, {"a": 10})
    with pytest.raises(ParameterError, match="real_labels has 9 labels for 10 samples"):
        per_song_frechet(real, real_labels[:-1], real, real_labels)
    with pytest.raises(ParameterError, match="given together"):
        per_song_frechet(real, real_labels, real, real_labels, heldout=real)
    with pytest.raises(ParameterError, match="min_samples=1"):
        per_song_frechet(real, real_labels, real, real_labels, min_samples=1)
    with pytest.raises(ParameterError, match="seed=-1"):
        per_song_frechet(real, real_labels, real, real_labels, seed=-1)
    with pytest.raises(ParameterError, match="dimension mismatch"):
        per_song_frechet(real, real_labels, real[:, :2], real_labels)
    with pytest.raises(DatasetError, match="no song has enough samples.*a: 10 real samples"):
        per_song_frechet(real, real_labels, real, real_labels, min_samples=6)


def test_frechet_with_floor(rng: np.random.Generator) -> None:
    data = _correlated(rng, 800, 4)
    real, good = data[:400], data[400:]
    bad = real + 3.0
    fair = frechet_with_floor(real, good, seed=1)
    assert (fair.n_reference, fair.n_compared) == (200, 200)
    assert frechet_with_floor(real, bad, seed=1).ratio > 20 * fair.ratio
    assert frechet_with_floor(real, good, seed=1) == fair
    held = frechet_with_floor(real[:300], good, heldout=real[300:])
    assert (held.n_reference, held.n_compared) == (100, 300)


def test_frechet_with_floor_errors(rng: np.random.Generator) -> None:
    with pytest.raises(ParameterError, match="needs at least 4"):
        frechet_with_floor(rng.normal(size=(3, 2)), rng.normal(size=(9, 2)))
    with pytest.raises(ParameterError, match="dimension mismatch"):
        frechet_with_floor(rng.normal(size=(9, 2)), rng.normal(size=(9, 3)))
    with pytest.raises(ParameterError, match="heldout d=3"):
        frechet_with_floor(
            rng.normal(size=(9, 2)), rng.normal(size=(9, 2)), heldout=rng.normal(size=(9, 3))
        )
    with pytest.warns(CoverGANWarning, match="n <= d=5"):
        frechet_with_floor(rng.normal(size=(8, 5)), rng.normal(size=(9, 5)))


# ---------------------------------------------------------------------------------------------
# memorisation
# ---------------------------------------------------------------------------------------------


def test_memorization_flags_copies(rng: np.random.Generator) -> None:
    train = rng.normal(size=(80, 6)) * [1, 10, 100, 1, 1, 1]
    heldout = rng.normal(size=(40, 6)) * [1, 10, 100, 1, 1, 1]
    copies_idx = rng.integers(0, 80, size=30)
    copies = train[copies_idx] + rng.normal(size=(30, 6)) * 1e-3
    fresh = rng.normal(size=(30, 6)) * [1, 10, 100, 1, 1, 1]
    copied = memorization_check(copies, train, heldout)
    assert copied.ratio < 0.05
    assert copied.copy_fraction == 1.0
    np.testing.assert_array_equal(copied.nearest_train, copies_idx)
    honest = memorization_check(fresh, train, heldout)
    assert 0.6 < honest.ratio < 1.6
    assert honest.copy_fraction < 0.2
    assert honest.synthetic_distances.shape == (30,)
    assert honest.heldout_distances.shape == (40,)


def test_memorization_errors(rng: np.random.Generator) -> None:
    x = rng.normal(size=(5, 3))
    with pytest.raises(ParameterError, match="heldout_real d=2"):
        memorization_check(x, x, x[:, :2])
    with pytest.raises(ParameterError, match="synthetic has 0 sample"):
        memorization_check(x[:0], x, x)


def test_gaussian_stats_returns_named_pair(rng: np.random.Generator) -> None:
    stats = gaussian_stats(rng.normal(size=(10, 2)))
    assert isinstance(stats, GaussianStats)
    mu, sigma = stats
    assert mu.shape == (2,) and sigma.shape == (2, 2)
    assert mu.dtype == sigma.dtype == np.float64
