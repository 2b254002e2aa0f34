"""The reference-conditioned version model (covergan.versions) and Augmenter.sample_like."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from covergan.augment.classic import Compose, OneOf, SemitoneRoll
from covergan.augmenter import Augmenter
from covergan.cqt import CQTConfig, CQTNormalizer
from covergan.csi import CSINet, train_csi
from covergan.data import CQTDataset
from covergan.errors import (
    CheckpointError,
    DatasetError,
    NotFittedError,
    ParameterError,
    UnknownSongError,
)
from covergan.models.reference import (
    PairDiscriminator,
    VersionGenerator,
    chroma_correlation,
    pitch_class_profile,
    version_transform,
    warp_silence,
)
from covergan.synthesis import VersionModel
from covergan.versions import (
    VersionAugment,
    VersionCheck,
    VersionConfig,
    VersionGAN,
    check_versions,
    sample_versions,
)

N_BINS, WINDOW = 24, 16
CFG = CQTConfig(n_bins=N_BINS)
TINY: dict[str, Any] = {
    "image_size": (N_BINS, WINDOW),
    "z_dim": 8,
    "g_width": 4,
    "d_width": 4,
    "max_width": 16,
    "batch_size": 4,
    # the optional terms, so that their code runs
    "mismatch_weight": 0.5,
    "copy_weight": 0.5,
    "diversity_weight": 0.05,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_works(seed: int = 0, counts: tuple[int, ...] = (3, 2, 2, 1)) -> CQTDataset:
    """Works with a per-work pitch pattern, each recording transposed and re-timbred."""
    rng = np.random.default_rng(seed)
    feats, songs = [], []
    for w, n in enumerate(counts):
        pattern = rng.integers(4, 16, size=8)
        for _ in range(n):
            frames = int(rng.integers(18, 30))
            shift = int(rng.integers(-3, 4))
            x = 0.05 * rng.random((N_BINS, frames))
            for t in range(frames):
                x[pattern[(t // 4) % 8] + shift, t] += rng.uniform(0.5, 1.0)
            feats.append((x / x.max()).astype(np.float32))
            songs.append(f"work-{w}")
    return CQTDataset.from_arrays(feats, songs, config=CFG)


@pytest.fixture(scope="module")
def data() -> CQTDataset:
    return toy_works()


@pytest.fixture(scope="module")
def normalizer(data: CQTDataset) -> CQTNormalizer:
    return CQTNormalizer.for_config(CFG).fit(data)


def windows(data: CQTDataset, normalizer: CQTNormalizer) -> CQTDataset:
    return data.windows(WINDOW, crop="random", seed=0, transform=normalizer)


@pytest.fixture(scope="module")
def model(data: CQTDataset, normalizer: CQTNormalizer) -> VersionGAN:
    return VersionGAN(VersionConfig(**TINY), device="cpu", seed=0).fit(
        windows(data, normalizer), steps=3, progress=False
    )


def first_windows(data: CQTDataset, n: int) -> torch.Tensor:
    """The first ``WINDOW`` frames of the first ``n`` recordings, ``[n, 1, N_BINS, WINDOW]``."""
    return torch.stack([torch.from_numpy(f[:, :WINDOW]) for f in data.features[:n]])[:, None]


def weights(m: VersionGAN) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.generator.parameters()]


# ----------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", (2, 16)),
        ("z_dim", 0),
        ("batch_size", 1),
        ("max_semitones", -1),
        ("tempo_range", (1.2, 0.8)),
        ("tempo_range", (0.0, 1.0)),
        ("lr_g", float("nan")),
        ("betas", (0.5, 1.0)),
        ("ema_decay", 1.0),
        ("copy_weight", -1.0),
        ("g_stages", 5),
        ("augment", "flip"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ParameterError, match=field.split("_")[0]):
        VersionConfig(**{**TINY, field: value})


def test_config_round_trip_and_source_width() -> None:
    cfg = VersionConfig(**TINY)
    assert VersionConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.source_width == int(np.ceil(WINDOW * 1.25)) + 1  # 21
    with pytest.raises(ParameterError, match="unknown VersionConfig fields"):
        VersionConfig.from_dict({**cfg.to_dict(), "wings": 2})


def test_config_draw_changes_covers_its_ranges_seeded() -> None:
    cfg = VersionConfig(**{**TINY, "max_semitones": 3, "tempo_range": (0.8, 1.25)})
    semis, rates = cfg.draw_changes(4000, torch.Generator().manual_seed(0))
    assert semis.dtype == torch.long and semis.shape == rates.shape == (4000,)
    assert set(semis.tolist()) == set(range(-3, 4))  # every key, none beyond
    assert float(rates.min()) >= 0.8 and float(rates.max()) <= 1.25
    # log-uniform: as many draws slower as faster
    assert abs(float((rates < 1).float().mean()) - 0.5) < 0.03
    again = cfg.draw_changes(4000, torch.Generator().manual_seed(0))
    assert torch.equal(semis, again[0]) and torch.equal(rates, again[1])
    still = VersionConfig(**{**TINY, "max_semitones": 0, "tempo_range": (1.0, 1.0)})
    semis, rates = still.draw_changes(50, torch.Generator().manual_seed(1))
    assert not semis.any() and torch.equal(rates, torch.ones(50))


# ----------------------------------------------------------------------------------- modules


def test_version_transform_closed_forms() -> None:
    ref = torch.arange(2 * 6 * 10, dtype=torch.float32).reshape(2, 1, 6, 10) / 120
    zero = torch.zeros(2, dtype=torch.long)
    for mode in ("nearest", "linear"):
        same = version_transform(ref, zero, torch.ones(2), width=4, interpolation=mode)
        assert torch.equal(same, ref[..., :4])
        double = version_transform(ref, zero, torch.full((2,), 2.0), width=4, interpolation=mode)
        assert torch.allclose(double, ref[..., [0, 2, 4, 6]])
    # half as fast: frame 1 reads position 0.5, blended (linear) or frame 1 (nearest, halves
    # round up); every nearest frame is a source frame, repeated
    half = version_transform(ref, zero, torch.full((2,), 0.5), width=3, interpolation="linear")
    assert torch.allclose(half[..., 1], (ref[..., 0] + ref[..., 1]) / 2)
    half = version_transform(ref, zero, torch.full((2,), 0.5), width=5)
    assert torch.equal(half, ref[..., [0, 1, 1, 2, 2]])
    slow = version_transform(ref, zero, torch.full((2,), 0.8), width=6)
    assert torch.equal(slow, ref[..., [0, 1, 2, 2, 3, 4]])  # 0, .8, 1.6, 2.4, 3.2, 4.0
    up = version_transform(ref, torch.tensor([1, -2]), torch.ones(2), width=4, bins_per_semitone=1)
    assert torch.equal(up[0, 0, 1:], ref[0, 0, :5, :4]) and bool((up[0, 0, 0] == -1).all())
    assert torch.equal(up[1, 0, :4], ref[1, 0, 2:, :4]) and bool((up[1, 0, 4:] == -1).all())
    with pytest.raises(ParameterError, match="interpolation="):
        version_transform(ref, zero, torch.ones(2), width=4, interpolation="cubic")  # type: ignore[arg-type]


def test_nearest_tempo_change_keeps_the_frame_to_frame_change() -> None:
    # white noise over time: blending neighbours averages its flicker away, nearest does not
    ref = torch.randn(64, 1, 4, 300, generator=torch.Generator().manual_seed(0))
    rates = torch.full((64,), 0.9)
    zero = torch.zeros(64, dtype=torch.long)

    def flicker(x: torch.Tensor) -> float:
        return float(x.diff(dim=-1).abs().mean())

    near = version_transform(ref, zero, rates, width=200)
    linear = version_transform(ref, zero, rates, width=200, interpolation="linear")
    assert flicker(near) > 0.85 * flicker(ref[..., :200])  # 10% repeated frames
    assert flicker(linear) < 0.75 * flicker(ref[..., :200])


def test_warp_silence_follows_the_tempo_change() -> None:
    silent = torch.zeros(3, 10, dtype=torch.bool)
    silent[:, 6:] = True  # the last four frames are padding
    same = warp_silence(silent, torch.ones(3), 8)
    assert same[0].tolist() == [False] * 6 + [True] * 2
    # twice as fast: frame t reads frame 2t
    fast = warp_silence(silent, torch.full((3,), 2.0), 8)
    assert fast[0].tolist() == [False] * 3 + [True] * 5
    # half as fast: frame 11 reads 5.5, i.e. frame 6 (nearest) or frames 5 and 6 (linear)
    slow = warp_silence(silent, torch.full((3,), 0.5), 16)
    assert slow[0].tolist() == [False] * 11 + [True] * 5
    slow = warp_silence(silent, torch.full((3,), 0.5), 16, "linear")
    assert slow[0].tolist() == [False] * 12 + [True] * 4
    # the frames a silent mask gives are the frames version_transform makes silent
    ref = torch.rand(3, 1, 4, 10)
    ref[..., 6:] = -1.0
    rates = torch.tensor([0.7, 1.0, 1.3])
    zero = torch.zeros(3, dtype=torch.long)
    for mode in ("nearest", "linear"):
        out = version_transform(ref, zero, rates, width=8, interpolation=mode)
        expect = (out == -1.0).all(dim=2)[:, 0]
        assert torch.equal(warp_silence(silent, rates, 8, mode), expect)
    with pytest.raises(ParameterError, match="silent"):
        warp_silence(silent.float(), rates, 8)


def test_generate_keeps_the_references_silence(
    model: VersionGAN, normalizer: CQTNormalizer
) -> None:
    rng = np.random.default_rng(2)
    track = rng.random((N_BINS, WINDOW // 2)).astype(np.float32)  # padded to source_width
    free = sample_versions(model, normalizer, track, 8, seed=0, crop="center")
    kept = sample_versions(model, normalizer, track, 8, seed=0, crop="center", silence=0.0)
    assert torch.equal(free, kept)  # silence=0.0 is the default
    # the padded frames of every version are silence (0 in features), and so are the last
    # frames, which read the padding at every tempo; the first frames are the model's
    silent = (kept[:, 0] <= 1e-6).all(dim=1)  # [n, W]
    assert bool(silent[:, -1].all()) and not bool(silent[:, 0].any())
    refs = normalizer.forward(torch.from_numpy(np.pad(track, ((0, 0), (0, 13)))))[None, None]
    refs = refs.expand(8, 1, N_BINS, -1).float()
    floor = torch.from_numpy(normalizer.floor).float()
    plain = model.generate(refs, generator=5)
    masked = model.generate(refs, generator=5, silence=floor)
    differs = (plain != masked).any(dim=2)[:, 0]
    assert bool(differs.any()) and torch.equal(
        masked[~differs[:, None, None, :].expand_as(masked)],
        plain[~differs[:, None, None, :].expand_as(plain)],
    )
    with pytest.raises(ParameterError, match="silence"):
        model.generate(refs, silence=floor[:3])
    with pytest.raises(ParameterError, match="NaN"):
        model.generate(refs, silence=torch.full((N_BINS,), float("nan")))


def test_version_transform_fills_vacated_bins_from_the_octave() -> None:
    ref = torch.arange(2 * 24 * 4, dtype=torch.float32).reshape(2, 1, 24, 4) / 200
    moved = version_transform(ref, torch.tensor([2, -3]), torch.ones(2), width=4)
    # up 2: bins 0-1 take pitch classes 10-11 from the octave above, the rest move up
    assert torch.equal(moved[0, 0, :2], ref[0, 0, 10:12])
    assert torch.equal(moved[0, 0, 2:], ref[0, 0, :22])
    # down 3: bins 21-23 take pitch classes 0-2 of the top octave
    assert torch.equal(moved[1, 0, :21], ref[1, 0, 3:])
    assert torch.equal(moved[1, 0, 21:], ref[1, 0, 12:15])
    silent = version_transform(ref, torch.tensor([2, -3]), torch.ones(2), width=4, fill="silence")
    assert bool((silent[0, 0, :2] == -1).all()) and bool((silent[1, 0, 21:] == -1).all())
    assert torch.equal(silent[0, 0, 2:], moved[0, 0, 2:])
    # keep: the vacated bins hold the reference's own, unmoved content
    kept = version_transform(ref, torch.tensor([2, -3]), torch.ones(2), width=4, fill="keep")
    assert torch.equal(kept[0, 0, :2], ref[0, 0, :2]) and torch.equal(
        kept[0, 0, 2:], moved[0, 0, 2:]
    )
    assert torch.equal(kept[1, 0, 21:], ref[1, 0, 21:]) and torch.equal(
        kept[1, 0, :21], moved[1, 0, :21]
    )
    with pytest.raises(ParameterError, match="fill="):
        version_transform(ref, torch.zeros(2, dtype=torch.long), torch.ones(2), width=4, fill="x")


def test_config_from_before_the_refine_stage_octave_fill_and_nearest_tempo() -> None:
    old = dict(VersionConfig(**TINY).to_dict())
    del old["g_refine"], old["key_fill"], old["tempo_interpolation"]
    cfg = VersionConfig.from_dict(old)
    assert cfg.g_refine == 0 and cfg.key_fill == "silence"
    assert cfg.tempo_interpolation == "linear"
    assert VersionConfig(**TINY).tempo_interpolation == "nearest"
    model = VersionGAN(cfg)
    assert model.generator.final is None
    assert VersionGAN(VersionConfig(**TINY)).generator.final is not None
    with pytest.raises(ParameterError, match="key_fill"):
        VersionConfig(**TINY, key_fill="noise")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="g_refine"):
        VersionConfig(**TINY, g_refine=-1)
    with pytest.raises(ParameterError, match="tempo_interpolation"):
        VersionConfig(**TINY, tempo_interpolation="cubic")  # type: ignore[arg-type]


def test_pitch_class_profile_folds_octaves_and_semitone_bins() -> None:
    x = torch.full((1, 1, 30, 2), -1.0)  # 2 bins per semitone: 1.25 octaves, top one padded
    x[0, 0, 2, 0] = 1.0  # pitch class 1, octave 0
    x[0, 0, 27, 0] = 1.0  # bin 27 -> semitone 13 -> pitch class 1, octave 1
    p = pitch_class_profile(x, bins_per_semitone=2)
    assert p.shape == (1, 12, 2)
    silence = -1.0 * 2 * 2  # two octaves (one padded) x two bins per class
    assert p[0, 1, 0] == silence + 4 and bool((p[0, 0] == silence).all())
    assert bool((p[..., 1] == silence).all())
    with pytest.raises(ParameterError, match=r"\[B, 1, H, W\]"):
        pitch_class_profile(torch.zeros(1, 30, 2))


def test_chroma_correlation_ignores_octave_and_level_but_not_notes() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 36, 8, generator=gen) * 2 - 1
    same = chroma_correlation(a, a)
    assert torch.allclose(same, torch.ones(3), atol=1e-4)
    # the same pitch classes an octave higher and at another level: still correlated 1
    moved = torch.full_like(a, -1.0)
    moved[:, :, 12:] = 0.5 * a[:, :, :24] + 0.2
    ref = torch.full_like(a, -1.0)
    ref[:, :, :24] = a[:, :, :24]
    assert torch.allclose(chroma_correlation(moved, ref), torch.ones(3), atol=1e-4)
    # a semitone shift is a different chord: clearly lower
    shifted = torch.roll(ref, 1, dims=2)
    assert float(chroma_correlation(shifted, ref).max()) < 0.9
    # silence against anything counts 0, with a finite gradient
    silent = torch.full_like(a, -1.0).requires_grad_(True)
    corr = chroma_correlation(silent, a)
    assert torch.allclose(corr, torch.zeros(3))
    corr.sum().backward()  # type: ignore[no-untyped-call]
    assert silent.grad is not None and bool(torch.isfinite(silent.grad).all())
    with pytest.raises(ParameterError, match="same shape"):
        chroma_correlation(a, a[..., :4])


def test_content_weight_keeps_the_reference_notes(
    data: CQTDataset, normalizer: CQTNormalizer
) -> None:
    """Same seed, same steps: the content term raises the logged correlation."""
    logged = {}
    for w in (0.0, 5.0):
        cfg = VersionConfig(**{**TINY, "lr_g": 5e-3}, content_weight=w)
        m = VersionGAN(cfg, device="cpu", seed=0).fit(
            windows(data, normalizer), steps=40, progress=False
        )
        logged[w] = float(np.mean(m.history["content"][-5:]))
    assert logged[5.0] > logged[0.0] + 0.1  # about 0.12 against -0.01
    with pytest.raises(ParameterError, match="content_weight"):
        VersionConfig(**TINY, content_weight=-1.0)


def test_generator_and_discriminator_shapes() -> None:
    for refine in (0, 3):
        g = VersionGenerator(
            image_size=(21, 14), z_dim=8, width=4, n_stages=2, n_blocks=1, refine=refine
        )
        x = g(torch.rand(3, 1, 21, 14) * 2 - 1, torch.randn(3, 8)).detach()
        assert x.shape == (3, 1, 21, 14) and float(x.abs().max()) <= 1.0
    d = PairDiscriminator(image_size=(21, 14), width=4)
    assert d(torch.randn(3, 1, 21, 20), x).shape == (3,)
    with pytest.raises(ParameterError, match="takes"):
        g(torch.zeros(3, 1, 20, 14), torch.randn(3, 8))


# ----------------------------------------------------------------------------------- training


def test_fit_logs_and_is_deterministic(
    model: VersionGAN, data: CQTDataset, normalizer: CQTNormalizer
) -> None:
    assert model.step == 3
    assert set(model.history) == {
        "loss_d", "loss_g", "d_real", "d_fake", "d_mismatch", "d_copy", "diversity", "content",
    }  # fmt: skip
    assert all(len(v) == 3 and np.isfinite(v).all() for v in model.history.values())
    again = VersionGAN(VersionConfig(**TINY), device="cpu", seed=0)
    again.fit(windows(data, normalizer), steps=3, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(model), weights(again), strict=True))
    # resuming in two calls equals one run
    split = VersionGAN(VersionConfig(**TINY), device="cpu", seed=0)
    split.fit(windows(data, normalizer), steps=1, progress=False)
    split.fit(windows(data, normalizer), steps=2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(model), weights(split), strict=True))
    assert split.history == model.history


def test_pretrain_autoencoder(data: CQTDataset, normalizer: CQTNormalizer) -> None:
    m = VersionGAN(VersionConfig(**TINY), device="cpu", seed=0)
    m.pretrain_autoencoder(windows(data, normalizer), steps=2, progress=False)
    assert set(m.pretrain_history) == {"ae_l1", "ae_kl"} and m.step == 0
    assert m.generator_ema is not None
    ema = dict(m.generator_ema.state_dict())
    assert all(torch.equal(v, ema[k]) for k, v in m.generator.state_dict().items())
    again = VersionGAN(VersionConfig(**TINY), device="cpu", seed=0)
    again.pretrain_autoencoder(windows(data, normalizer), steps=2, progress=False)
    assert again.pretrain_history == m.pretrain_history
    m.fit(windows(data, normalizer), steps=1, progress=False)
    with pytest.raises(ParameterError, match="untrained"):
        m.pretrain_autoencoder(windows(data, normalizer), steps=1)
    with pytest.raises(ParameterError, match="kl_weight"):
        again.pretrain_autoencoder(windows(data, normalizer), steps=1, kl_weight=-1.0)


def test_fit_errors(data: CQTDataset, normalizer: CQTNormalizer) -> None:
    m = VersionGAN(VersionConfig(**TINY), device="cpu", seed=0)
    singles = data.subset([0, 3, 5, 7])  # one recording of each work
    with pytest.raises(DatasetError, match="two or more recordings"):
        m.fit(windows(singles, normalizer), steps=1, progress=False)
    with pytest.raises(ParameterError, match="CQTDataset"):
        m.fit([(np.zeros((N_BINS, 20)), "a")], steps=1)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="bins"):
        VersionGAN(VersionConfig(**{**TINY, "image_size": (12, WINDOW)}), device="cpu").fit(
            windows(data, normalizer), steps=1
        )
    with pytest.raises(ParameterError, match="steps"):
        m.fit(windows(data, normalizer), steps=-1)
    with pytest.raises(ParameterError, match="config"):
        VersionGAN({"z_dim": 3}, device="cpu")  # type: ignore[arg-type]


def test_generate_is_seeded_and_in_range(model: VersionGAN) -> None:
    refs = torch.rand(5, 1, N_BINS, 21) * 2 - 1
    a = model.generate(refs, generator=3)
    assert a.shape == (5, 1, N_BINS, WINDOW) and a.dtype == torch.float32
    assert float(a.abs().max()) <= 1.0
    assert torch.equal(a, model.generate(refs, generator=3))
    assert not torch.equal(a, model.generate(refs, generator=4))
    with pytest.raises(ParameterError, match="refs"):
        model.generate(torch.zeros(5, N_BINS, 21))


def test_generate_truncation(model: VersionGAN) -> None:
    refs = torch.rand(6, 1, N_BINS, 21) * 2 - 1
    semis, rates, z = model._draw(200, torch.Generator().manual_seed(1), torch.device("cpu"))
    t_semis, t_rates, t_z = model._draw(
        200, torch.Generator().manual_seed(1), torch.device("cpu"), truncation=0.5
    )
    # the key and tempo of each sample are unchanged; only the style latent is truncated
    assert torch.equal(semis, t_semis) and torch.equal(rates, t_rates)
    assert float(z.abs().max()) > 0.5 >= float(t_z.abs().max())
    assert torch.equal(t_z[z.abs() <= 0.5], z[z.abs() <= 0.5])
    # a threshold no entry reaches changes nothing
    assert torch.equal(
        model.generate(refs, generator=3, truncation=1e9), model.generate(refs, generator=3)
    )
    for bad in (0, -1.0, "1"):
        with pytest.raises(ParameterError, match="truncation"):
            model.generate(refs, truncation=bad)  # type: ignore[arg-type]


def test_save_load_round_trip_and_errors(model: VersionGAN, tmp_path: Path) -> None:
    path = model.save(tmp_path / "versions.pt")
    same = VersionGAN.load(path, device="cpu")
    refs = torch.rand(3, 1, N_BINS, 21) * 2 - 1
    assert torch.equal(same.generate(refs, generator=0), model.generate(refs, generator=0))
    assert same.step == model.step and same.history == model.history
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format_version": 2}, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="newer"):
        VersionGAN.load(tmp_path / "newer.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a covergan version-model"):
        VersionGAN.load(tmp_path / "foreign.pt")
    torch.save({**state, "generator": {"w": torch.zeros(1)}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="inconsistent"):
        VersionGAN.load(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable"):
        VersionGAN.load(tmp_path / "junk.pt")


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/covergan-pwned-versions",))


def test_load_never_runs_pickled_code(tmp_path: Path) -> None:
    marker = Path("/tmp/covergan-pwned-versions")
    marker.unlink(missing_ok=True)
    torch.save({"format": "covergan.versions", "payload": _Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights-only"):
        VersionGAN.load(tmp_path / "evil.pt")
    assert not marker.exists()


# ----------------------------------------------------------------------------------- sampling


def test_sample_versions_format_and_seeds(model: VersionGAN, normalizer: CQTNormalizer) -> None:
    track = np.random.default_rng(1).random((N_BINS, 40)).astype(np.float32)
    x = sample_versions(model, normalizer, track, 6, seed=0)
    assert x.shape == (6, 1, N_BINS, WINDOW) and bool((x >= 0).all())
    assert torch.equal(x, sample_versions(model, normalizer, torch.from_numpy(track), 6, seed=0))
    assert not torch.equal(x, sample_versions(model, normalizer, track, 6, seed=1))
    m = sample_versions(model, normalizer, track[None], 2, seed=0, space="model", crop="center")
    assert m.shape == (2, 1, N_BINS, WINDOW) and float(m.abs().max()) <= 1.0
    short = sample_versions(model, normalizer, track[:, : WINDOW // 4], 2, seed=0)  # padded
    assert short.shape == (2, 1, N_BINS, WINDOW)


@pytest.mark.parametrize(
    ("features", "n", "kwargs", "match"),
    [
        (np.zeros((12, 30), np.float32), 2, {}, "bins"),
        (np.full((N_BINS, 30), np.nan, np.float32), 2, {}, "NaN"),
        (np.zeros((N_BINS, 3), np.float32), 2, {}, "at least 4"),
        (np.zeros((N_BINS,), np.float32), 2, {}, r"\[n_bins, n_frames\]"),
        (-np.ones((N_BINS, 30), np.float32), 2, {}, "non-negative"),
        ([[0.0] * 30] * N_BINS, 2, {}, "numpy array or torch tensor"),
        (np.zeros((N_BINS, 30), np.float32), 0, {}, "n=0"),
        (np.zeros((N_BINS, 30), np.float32), 2, {"space": "audio"}, "space"),
        (np.zeros((N_BINS, 30), np.float32), 2, {"crop": "left"}, "crop"),
        (np.zeros((N_BINS, 30), np.float32), 2, {"seed": -1}, "seed"),
    ],
)
def test_sample_versions_errors(
    model: VersionGAN,
    normalizer: CQTNormalizer,
    features: Any,
    n: int,
    kwargs: dict[str, Any],
    match: str,
) -> None:
    with pytest.raises(ParameterError, match=match):
        sample_versions(model, normalizer, features, n, **kwargs)


def test_version_augment_replaces_chosen_windows(
    model: VersionGAN, data: CQTDataset, normalizer: CQTNormalizer
) -> None:
    x = first_windows(data, 6)
    none = VersionAugment(model, normalizer, p=0.0, seed=0)
    assert torch.equal(none(x), x)
    every = VersionAugment(model, normalizer, p=1.0, seed=0)
    y = every(x)
    assert y.shape == x.shape and bool((y >= 0).all()) and bool(torch.isfinite(y).all())
    assert all(not torch.equal(a, b) for a, b in zip(y, x, strict=True))
    assert torch.equal(y, VersionAugment(model, normalizer, p=1.0, seed=0)(x))  # seeded
    assert not torch.equal(y, every(x))  # the stream advances
    # one item, NumPy in and out, a constant pad, and inside a Compose
    one = VersionAugment(model, normalizer, p=1.0, pad_mode="constant", seed=1)(x[0].numpy())
    assert isinstance(one, np.ndarray) and one.shape == (1, N_BINS, WINDOW)
    half = VersionAugment(model, normalizer, p=0.5, truncation=0.5)
    params = half.randomize(x, torch.Generator().manual_seed(3))
    mixed = half.apply(x, params)
    kept = ~params.applied
    assert bool(kept.any()) and bool(params.applied.any())
    assert torch.equal(mixed[kept], x[kept]) and not torch.equal(mixed[~kept], x[~kept])
    composed = Compose([half, SemitoneRoll(2, p=0.5)], seed=0)
    assert composed(x).shape == x.shape
    assert "truncation=0.5" in repr(half)


def test_version_augment_trains_a_csi_model(
    model: VersionGAN, data: CQTDataset, normalizer: CQTNormalizer
) -> None:
    net = CSINet(n_classes=data.n_songs, n_bins=N_BINS, channels=(4, 8), seed=0)
    augment = VersionAugment(model, normalizer, p=0.5)
    hist = train_csi(
        net, data.windows(WINDOW, seed=0), steps=2, batch_size=4, augment=augment,
        seed=0, progress=False, log_every=0,
    )  # fmt: skip
    assert len(hist.loss) == 2 and np.isfinite(hist.loss).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 1.5}, "p=1.5"),
        ({"pad_mode": "reflect"}, "pad_mode"),
        ({"truncation": 0.0}, "truncation"),
        ({"silence": float("nan")}, "silence"),
        ({"seed": "zero"}, "seed"),
    ],
)
def test_version_augment_errors(
    model: VersionGAN, normalizer: CQTNormalizer, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        VersionAugment(model, normalizer, **kwargs)


def test_version_augment_needs_the_models_window(
    model: VersionGAN, normalizer: CQTNormalizer
) -> None:
    with pytest.raises(ParameterError, match="VersionGAN"):
        VersionAugment(object(), normalizer)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="fitted CQTNormalizer"):
        VersionAugment(model, CQTNormalizer())
    # bad input fails on every call, whether or not a window is drawn (p=0: none is), also
    # inside a chain that draws none
    chains = [
        VersionAugment(model, normalizer, p=1.0),
        VersionAugment(model, normalizer, p=0.0),
        Compose([VersionAugment(model, normalizer)], p=0.0),
        OneOf([SemitoneRoll(2), VersionAugment(model, normalizer)], p=0.0),
    ]
    for augment in chains:
        with pytest.raises(ParameterError, match=r"\(B, 1, 24, 16\)"):
            augment(torch.rand(2, 1, N_BINS, WINDOW + 1))
        with pytest.raises(ParameterError, match=r"\(B, 1, 24, 16\)"):
            augment(torch.rand(4, N_BINS, WINDOW))  # (C, H, W): one item of 4 channels
        bad = torch.rand(2, 1, N_BINS, WINDOW)
        bad[1, 0, 3, 4] = float("nan")
        with pytest.raises(ParameterError, match="NaN"):
            augment(bad)
        with pytest.raises(ParameterError, match="non-negative"):
            augment(-torch.rand(2, 1, N_BINS, WINDOW))


# ----------------------------------------------------------------------------------- Augmenter


def make(**kwargs: Any) -> Augmenter:
    params: dict[str, Any] = {
        "model": ("gan", "versions"),
        "steps": 2,
        "pretrain_steps": 0,
        "seed": 0,
        "progress": False,
        "window": WINDOW,
        "gan": {"g_width": 4, "d_width": 4, "batch_size": 4, "max_width": 16},
        "versions": {k: v for k, v in TINY.items() if k != "image_size"},
        "version_steps": 2,
    }
    params.update(kwargs)
    return Augmenter(**params)


@pytest.fixture(scope="module")
def aug(data: CQTDataset) -> Augmenter:
    return make().fit(data)


def test_augmenter_version_augment(aug: Augmenter, data: CQTDataset) -> None:
    augment = aug.version_augment(1.0, seed=0)
    assert isinstance(augment, VersionAugment) and augment.model is aug.versions_
    x = first_windows(data, 3)
    y = augment(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    with pytest.raises(ParameterError, match="p="):
        aug.version_augment(-0.1)


def test_augmenter_sample_like_any_song(aug: Augmenter, data: CQTDataset) -> None:
    assert aug.versions_ is not None and aug.versions_.step == 2
    assert aug.versions_.config.image_size == (N_BINS, WINDOW)
    new_song = toy_works(seed=5, counts=(1,)).features[0]  # a song the augmenter never saw
    x = aug.sample_like(new_song, 4, seed=0)
    assert x.shape == (4, 1, N_BINS, WINDOW) and bool((x >= 0).all())
    assert torch.equal(x, aug.sample_like(new_song, 4, seed=0))
    assert aug.sample_like(new_song, 2, seed=0, space="model").abs().max() <= 1.0
    narrow = torch.from_numpy(new_song).to(torch.bfloat16)  # any real dtype, NumPy's or not
    assert aug.sample_like(narrow, 2, seed=0).shape == (2, 1, N_BINS, WINDOW)
    with pytest.raises(ParameterError, match="real numbers"):
        aug.sample_like(torch.from_numpy(new_song).to(torch.complex64), 2)
    near = aug.sample_like(new_song, 4, seed=0, truncation=0.25)
    assert near.shape == x.shape and not torch.equal(near, x)
    with pytest.raises(ParameterError, match="truncation"):
        aug.sample_like(new_song, 4, truncation=0.0)
    with pytest.raises(ParameterError, match="n=0"):
        aug.sample_like(new_song, 0)
    with pytest.raises(ParameterError, match="bins"):
        aug.sample_like(np.zeros((12, 30), np.float32), 2)
    for bad in (np.nan, np.inf, -np.inf):
        broken = new_song.copy()
        broken[3, 4] = bad
        with pytest.raises(ParameterError, match="NaN or inf"):
            aug.sample_like(broken, 2)


def test_augmenter_without_version_model(data: CQTDataset, tmp_path: Path) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        make().sample_like(data.features[0], 2)
    plain = make(model="gan", versions=None).fit(data)
    assert plain.versions_ is None
    with pytest.raises(NotFittedError, match="no version model"):
        plain.sample_like(data.features[0], 2)
    with pytest.raises(NotFittedError, match="no version model"):
        plain.version_augment(0.5)
    path = plain.save(tmp_path / "plain.pt")
    assert torch.load(path, weights_only=True)["format_version"] == 1  # older covergan reads it
    loaded = Augmenter.load(path, device="cpu")
    with pytest.raises(NotFittedError, match="fit_versions"):
        loaded.sample_like(data.features[0], 2)
    loaded.fit_versions(data, steps=1)
    assert loaded.sample_like(data.features[0], 2, seed=0).shape == (2, 1, N_BINS, WINDOW)


def test_augmenter_versions_errors(data: CQTDataset) -> None:
    with pytest.raises(ParameterError, match="versions must be"):
        make(versions="yes").fit(data)
    with pytest.raises(ParameterError, match="version_steps"):
        make(version_steps=0).fit(data)
    with pytest.raises(ParameterError, match="unknown VersionConfig fields"):
        make(versions={"wings": 2}).fit(data)
    with pytest.raises(DatasetError, match="two or more recordings"):
        make().fit(data.subset([0, 3, 5, 7]))


def test_augmenter_save_load_keeps_the_version_model(aug: Augmenter, tmp_path: Path) -> None:
    path = aug.save(tmp_path / "aug.pt")
    state = torch.load(path, weights_only=True)
    assert state["format_version"] == 3 and state["versions"]["format"] == "covergan.versions"
    assert state["params"]["model"] == ["gan", "versions"] and "references" in state
    same = Augmenter.load(path, device="cpu")
    track = toy_works(seed=7, counts=(1,)).features[0]
    assert torch.equal(same.sample_like(track, 3, seed=1), aug.sample_like(track, 3, seed=1))
    assert same.version_steps == 2 and same.versions_ is not None
    # versions of the bank keep its padded silence, after a load too
    for model in (aug.models_["versions"], same.models_["versions"]):
        assert isinstance(model, VersionModel) and model.silence == aug.config_.silence_value
    assert torch.equal(same.sample("work-1", 4, seed=2), aug.sample("work-1", 4, seed=2))
    state["versions"]["format_version"] = 9
    torch.save(state, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="newer"):
        Augmenter.load(tmp_path / "newer.pt")


def test_balance_with_versions_reaches_unseen_songs(aug: Augmenter, data: CQTDataset) -> None:
    new = toy_works(seed=9, counts=(4, 1))  # two songs the augmenter never saw
    mixed = aug.balance(new, target="max", method="versions", seed=0)
    assert mixed.class_counts(synthetic=True) == {"work-0": 0, "work-1": 3}
    x, label, synthetic = mixed[len(mixed) - 1]
    assert x.shape == (1, N_BINS, WINDOW) and label == 1 and synthetic
    with pytest.raises(ParameterError, match="method"):
        aug.balance(new, method="magic")  # type: ignore[arg-type]


def test_balance_with_versions_uses_recordings_long_enough_and_names_a_song_without(
    aug: Augmenter,
) -> None:
    new = toy_works(seed=9, counts=(4, 1))
    tiny = np.full((N_BINS, 2), 0.5, dtype=np.float32)  # under a quarter window (4 frames)
    songs = [*new.song_ids, "work-1"]
    both = CQTDataset.from_arrays([*new.features, tiny], songs, config=CFG)
    mixed = aug.balance(both, target="max", method="versions", seed=0)
    assert mixed.class_counts(synthetic=True)["work-1"] == 2  # from its long recording
    songs = [*new.song_ids, "short"]
    only_short = CQTDataset.from_arrays([*new.features, tiny], songs, config=CFG)
    with pytest.raises(
        DatasetError, match=r"song 'short' needs .* shorter than 4 frames \(the longest has 2\)"
    ):
        aug.balance(only_short, target="max", method="versions")


def test_balance_with_versions_into_a_bank(
    aug: Augmenter, data: CQTDataset, tmp_path: Path
) -> None:
    """With bank_dir, versions come from the reference bank: fitted songs only."""
    mixed = aug.balance(data, target="max", method="versions", seed=0, bank_dir=tmp_path / "b")
    counts = mixed.class_counts(synthetic=True)
    assert counts == {"work-0": 0, "work-1": 1, "work-2": 1, "work-3": 2}
    expected = aug.sample_many({"work-3": 2}, method="versions", seed=0)["work-3"]
    assert torch.allclose(mixed[len(mixed) - 1][0], expected[1], atol=1e-6)
    unseen = toy_works(seed=9, counts=(4, 1)).windows(WINDOW)
    unseen.song_ids = ["new-0"] * 4 + ["new-1"]
    with pytest.raises(UnknownSongError, match="new-1"):
        aug.balance(
            CQTDataset.from_arrays(unseen.features, unseen.song_ids, config=CFG),
            target="max",
            method="versions",
            bank_dir=tmp_path / "c",
        )


# ----------------------------------------------------------------------------------- checks


def test_check_versions_tells_copies_from_versions(data: CQTDataset, aug: Augmenter) -> None:
    csi = CSINet(n_classes=4, n_bins=N_BINS, channels=(4, 8), embedding_dim=8, seed=0)
    rng = np.random.default_rng(0)

    def copier(features: np.ndarray, n: int, seed: int = 0) -> torch.Tensor:
        """A 'generator' that copies windows of its reference."""
        start = rng.integers(0, max(1, features.shape[1] - WINDOW), size=n)
        return torch.stack([torch.from_numpy(features[:, s : s + WINDOW]) for s in start])[:, None]

    copies = check_versions(copier, data, csi, n=2, seed=0)
    assert isinstance(copies, VersionCheck) and copies.n_references == 7
    assert copies.n_samples == 14
    assert copies.distance_synthetic == pytest.approx(copies.distance_copy, abs=0.05)
    assert 0 < copies.map_chance < 1 and 0 <= copies.top1_synthetic <= 1
    real = check_versions(aug.sample_like, data, csi, n=2, seed=0)
    assert all(np.isfinite(v) for v in real.as_dict().values())
    assert "synthetic MAP" in str(real)
    with pytest.raises(DatasetError, match="two works"):
        check_versions(copier, data.subset([0, 1, 2, 7]), csi)
