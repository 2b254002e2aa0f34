from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from covergan.augment.classic import (
    Compose,
    FrequencyMask,
    Gain,
    OneOf,
    RollParams,
    SemitoneRoll,
    TempoChange,
    TimeMask,
    Transform,
)
from covergan.cqt import CQTNormalizer
from covergan.data import CQTDataset
from covergan.errors import NotFittedError, ParameterError


def _batch(b: int = 6, h: int = 24, t: int = 30, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 1, h, t, generator=torch.Generator().manual_seed(seed)) + 0.1


def _all_transforms(p: float, seed: int | None = 0) -> list[Transform[Any]]:
    return [
        SemitoneRoll(3, p=p, seed=seed),
        SemitoneRoll(3, mode="shift", p=p, seed=seed),
        TempoChange(0.7, 1.4, p=p, seed=seed),
        TimeMask(5, p=p, seed=seed),
        FrequencyMask(4, p=p, seed=seed),
        Gain(-6, 6, p=p, seed=seed),
        Compose([SemitoneRoll(2, p=1), TimeMask(3, p=1)], p=p, seed=seed),
        OneOf([Gain(3, 3, p=1), TimeMask(3, p=1)], p=p, seed=seed),
    ]


# -- probability, seeding --------------------------------------------------------------


@pytest.mark.parametrize("transform", _all_transforms(p=0.0), ids=repr)
def test_p0_is_identity(transform: Transform[Any]) -> None:
    x = _batch()
    torch.testing.assert_close(transform(x), x, rtol=0, atol=0)
    torch.testing.assert_close(transform(x[0]), x[0], rtol=0, atol=0)


@pytest.mark.parametrize("transform", _all_transforms(p=1.0), ids=repr)
def test_p1_changes_every_item(transform: Transform[Any]) -> None:
    x = _batch(b=8)
    params = transform.randomize(x)
    assert bool(params.applied.all())


def test_p1_always_applies_a_nonzero_roll() -> None:
    x = _batch(b=16)
    y = SemitoneRoll(2, min_semitones=2, p=1.0, seed=0)(x)
    assert all(not torch.equal(y[i], x[i]) for i in range(16))


def test_p_half_applies_to_about_half_the_items() -> None:
    params = Gain(p=0.5, seed=0).randomize(torch.zeros(2000, 1, 1, 1))
    assert 0.45 < params.applied.double().mean().item() < 0.55


@pytest.mark.parametrize("transform", _all_transforms(p=0.7, seed=None), ids=repr)
def test_seeded_determinism(transform: Transform[Any]) -> None:
    x = _batch()
    a = transform(x, generator=torch.Generator().manual_seed(5))
    b = transform(x, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_same_seed_replays_and_the_stream_advances() -> None:
    x = _batch()
    t1, t2 = TimeMask(10, p=1.0, seed=3), TimeMask(10, p=1.0, seed=3)
    first, second = t1(x), t1(x)
    torch.testing.assert_close(t2(x), first, rtol=0, atol=0)
    torch.testing.assert_close(t2(x), second, rtol=0, atol=0)
    assert not torch.equal(first, second)  # a new draw on each call
    assert not torch.equal(TimeMask(10, p=1.0, seed=4)(x), first)


def test_unseeded_transform_follows_torch_manual_seed() -> None:
    x = _batch()
    t = SemitoneRoll(5, p=0.5)
    torch.manual_seed(11)
    a = t(x)
    torch.manual_seed(11)
    torch.testing.assert_close(t(x), a, rtol=0, atol=0)


def test_seed_may_be_a_generator() -> None:
    x = _batch()
    a = Gain(p=1.0, seed=torch.Generator().manual_seed(9))(x)
    b = Gain(p=1.0, seed=9)(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# -- SemitoneRoll ------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "bps"), [(2, 1), (-3, 1), (1, 3), (-2, 3)])
def test_semitone_roll_moves_a_peak_by_k_times_bins_per_semitone(k: int, bps: int) -> None:
    x = torch.zeros(1, 84, 5)
    x[0, 40, :] = 1.0
    y = SemitoneRoll(k, min_semitones=k, bins_per_semitone=bps, p=1.0)(x)
    assert y.shape == x.shape
    assert int(y[0, :, 0].argmax()) == 40 + k * bps
    assert y.sum() == x.sum()


def test_roll_wraps_and_shift_fills() -> None:
    x = torch.arange(6.0).reshape(1, 6, 1).expand(1, 6, 2).clone()
    rolled = SemitoneRoll(2, min_semitones=2, p=1.0)(x)
    shifted = SemitoneRoll(2, min_semitones=2, mode="shift", fill=-1.0, p=1.0)(x)
    assert rolled[0, :, 0].tolist() == [4, 5, 0, 1, 2, 3]
    assert shifted[0, :, 0].tolist() == [-1, -1, 0, 1, 2, 3]
    down = SemitoneRoll(-1, min_semitones=-1, mode="shift", p=1.0)(x)
    assert down[0, :, 0].tolist() == [1, 2, 3, 4, 5, 0]


def test_roll_shifts_are_drawn_in_range() -> None:
    params = SemitoneRoll(4, min_semitones=-2, p=1.0, seed=0).randomize(torch.zeros(500, 1, 1, 1))
    assert params.semitones.min() == -2 and params.semitones.max() == 4


def test_batch_equals_item_by_item() -> None:
    x = _batch(b=5, h=36)
    t = SemitoneRoll(4, bins_per_semitone=3, mode="shift", p=0.6, seed=1)
    params = t.randomize(x)
    batched = t.apply(x, params)
    for i in range(5):
        one = RollParams(applied=params.applied[i : i + 1], semitones=params.semitones[i : i + 1])
        torch.testing.assert_close(batched[i], t.apply(x[i], one), rtol=0, atol=0)


# -- TempoChange -------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.5, 0.8, 1.0, 1.25, 2.0])
def test_tempo_change_length_is_t_over_rate(rate: float) -> None:
    x = torch.rand(1, 12, 40)
    y = TempoChange(rate, rate, keep_length=False, p=1.0)(x)
    assert y.shape == (1, 12, round(40 / rate))


def test_tempo_change_resamples_a_ramp_linearly() -> None:
    ramp = torch.arange(10.0).expand(1, 3, 10).clone()
    fast = TempoChange(2.0, 2.0, keep_length=False, p=1.0)(ramp)
    torch.testing.assert_close(fast[0, 0], torch.tensor([0.5, 2.5, 4.5, 6.5, 8.5]))
    slow = TempoChange(0.5, 0.5, keep_length=False, p=1.0)(ramp)
    expected = ((torch.arange(20.0) + 0.5) / 2 - 0.5).clamp(0, 9)
    torch.testing.assert_close(slow[0, 0], expected)
    # Same grid as torch's own linear interpolation.
    ref = torch.nn.functional.interpolate(ramp, size=20, mode="linear", align_corners=False)
    torch.testing.assert_close(slow, ref)


def test_tempo_change_keep_length_crops_a_window_of_the_resampled_item() -> None:
    x = torch.rand(1, 8, 30)
    full = TempoChange(0.6, 0.6, keep_length=False, p=1.0)(x)  # 50 frames
    t = TempoChange(0.6, 0.6, keep_length=True, p=1.0, seed=2)
    params = t.randomize(x)
    y = t.apply(x, params)
    assert y.shape == x.shape
    start = math.floor(float(params.offsets[0]) * (50 - 30 + 1))
    torch.testing.assert_close(y, full[..., start : start + 30])


def test_tempo_change_keep_length_pads_a_sped_up_item() -> None:
    ramp = torch.arange(10.0).expand(1, 2, 10).clone()
    wrapped = TempoChange(2.0, 2.0, p=1.0)(ramp)[0, 0]
    torch.testing.assert_close(wrapped, torch.tensor([0.5, 2.5, 4.5, 6.5, 8.5] * 2))
    padded = TempoChange(2.0, 2.0, pad_mode="constant", fill=-1.0, p=1.0)(ramp)[0, 0]
    torch.testing.assert_close(padded, torch.tensor([0.5, 2.5, 4.5, 6.5, 8.5] + [-1.0] * 5))


def test_tempo_change_on_batches_keeps_shape_with_per_item_rates() -> None:
    x = _batch(b=7)
    t = TempoChange(0.7, 1.4, p=1.0, seed=0)
    params = t.randomize(x)
    assert len(set(params.rates.tolist())) == 7
    assert t.apply(x, params).shape == x.shape


def test_tempo_change_without_keep_length_rejects_batches() -> None:
    with pytest.raises(ParameterError, match="batch of 4"):
        TempoChange(keep_length=False, p=1.0)(_batch(b=4))


# -- masks -------------------------------------------------------------------------------


def test_time_mask_masks_exactly_the_drawn_width() -> None:
    x = _batch(b=10, t=40)
    y = TimeMask(7, min_frames=7, p=1.0, seed=0)(x)
    masked = (y == 0).all(dim=2).squeeze(1)  # (B, T) columns set to the fill
    assert masked.sum(dim=1).tolist() == [7] * 10
    for row in masked:  # one run of consecutive frames
        idx = torch.nonzero(row).flatten()
        assert int(idx[-1] - idx[0]) == 6


def test_frequency_mask_masks_exactly_the_drawn_width_with_fill() -> None:
    x = _batch(b=10, h=24)
    y = FrequencyMask(5, min_bins=5, fill=-1.0, p=1.0, seed=0)(x)
    masked = (y == -1).all(dim=3).squeeze(1)  # (B, H) rows set to the fill
    assert masked.sum(dim=1).tolist() == [5] * 10
    untouched = ~masked[:, None, :, None].expand_as(x)
    torch.testing.assert_close(y[untouched], x[untouched], rtol=0, atol=0)


def test_several_masks_and_widths_wider_than_the_input() -> None:
    x = _batch(b=20, t=30)
    y = TimeMask(4, min_frames=4, n_masks=3, p=1.0, seed=0)(x)
    counts = (y == 0).all(dim=2).squeeze(1).sum(dim=1)
    assert counts.min() >= 4 and counts.max() <= 12
    z = TimeMask(50, min_frames=50, p=1.0)(x)  # clipped to the 30 frames
    assert bool((z == 0).all())


def test_mask_widths_are_drawn_in_range() -> None:
    params = FrequencyMask(6, min_bins=0, p=1.0, seed=0).randomize(torch.zeros(400, 1, 1, 1))
    assert params.widths.min() == 0 and params.widths.max() == 6


# -- Gain --------------------------------------------------------------------------------


def test_gain_in_feature_space_multiplies() -> None:
    x = _batch()
    t = Gain(-12, 12, p=1.0, seed=0)
    params = t.randomize(x)
    y = t.apply(x, params)
    factors = 10 ** (params.gains_db / 20)
    torch.testing.assert_close(y, x * factors.float()[:, None, None, None])
    torch.testing.assert_close(Gain(20, 20, p=1.0)(x), 10 * x)


def test_gain_in_db_space_adds() -> None:
    x = _batch() - 40
    torch.testing.assert_close(Gain(-3, -3, space="db", p=1.0)(x), x - 3)


def test_gain_in_model_space_is_a_feature_gain_seen_through_the_normaliser() -> None:
    rng = np.random.default_rng(0)
    feats = [rng.uniform(0.05, 1.0, (12, 50)) for _ in range(4)]
    norm = CQTNormalizer(clip=5.0).fit(feats)
    x = norm.forward(torch.from_numpy(np.stack(feats)[:, None]).float())
    y = Gain(6, 6, space="model", normalizer=norm, p=1.0)(x)
    inside = (y.abs() < 0.999) & (x.abs() < 0.999)
    ratio = norm.inverse(y)[inside] / norm.inverse(x)[inside]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 10 ** (6 / 20)), rtol=1e-3, atol=0)
    assert bool((y >= -1).all() and (y <= 1).all())


def test_gain_model_space_needs_a_fitted_normalizer() -> None:
    with pytest.raises(ParameterError, match="needs normalizer=.*got None"):
        Gain(space="model")
    with pytest.raises(NotFittedError, match="not fitted"):
        Gain(space="model", normalizer=CQTNormalizer())


# -- combinators -------------------------------------------------------------------------


def test_compose_applies_in_order() -> None:
    x = torch.ones(1, 6, 4)
    shift = SemitoneRoll(2, min_semitones=2, mode="shift", fill=0.0, p=1.0)
    add = Gain(6, 6, space="db", p=1.0)
    shift_then_add = Compose([shift, add])(x)
    add_then_shift = Compose([add, shift])(x)
    assert shift_then_add[0, :, 0].tolist() == [6, 6, 7, 7, 7, 7]
    assert add_then_shift[0, :, 0].tolist() == [0, 0, 7, 7, 7, 7]


def test_compose_seed_drives_every_child() -> None:
    x = _batch()

    def chain(seed: int) -> Compose:
        return Compose([SemitoneRoll(4, p=0.5), TimeMask(5, p=0.5), Gain(p=0.5)], seed=seed)

    torch.testing.assert_close(chain(1)(x), chain(1)(x), rtol=0, atol=0)
    assert not torch.equal(chain(1)(x), chain(2)(x))


def test_compose_with_a_length_change_on_an_item() -> None:
    x = torch.rand(1, 12, 40)
    y = Compose([TempoChange(2.0, 2.0, keep_length=False, p=1.0), TimeMask(3, p=1.0)])(x)
    assert y.shape == (1, 12, 20)


def test_one_of_applies_exactly_one_child_per_item() -> None:
    x = torch.ones(200, 1, 1, 1)
    t = OneOf([Gain(20, 20, p=1.0), Gain(-20, -20, p=1.0)], seed=0)
    y = t(x).flatten()
    up, down = torch.isclose(y, torch.tensor(10.0)), torch.isclose(y, torch.tensor(0.1))
    assert bool((up ^ down).all())
    n_up = int(up.sum())
    assert 70 < n_up < 130
    only_first = OneOf([Gain(20, 20, p=1.0), Gain(-20, -20, p=1.0)], weights=[1, 0], seed=0)
    assert bool((only_first(x) > 1).all())


# -- integration -------------------------------------------------------------------------


def test_works_as_a_dataset_transform() -> None:
    rng = np.random.default_rng(0)
    feats = [rng.random((24, 50)).astype(np.float32) for _ in range(4)]
    augment = Compose([SemitoneRoll(2, p=0.5), TempoChange(p=0.5), TimeMask(5, p=0.5)], seed=0)
    ds = CQTDataset(feats, ["a", "a", "b", "b"], window=16, transform=augment)
    x, y = ds[0]
    assert x.shape == (1, 24, 16) and y == 0
    full = ds.windows(None, transform=TempoChange(2.0, 2.0, keep_length=False, p=1.0))
    assert full[1][0].shape == (1, 24, 25)


def test_numpy_in_numpy_out() -> None:
    x = np.zeros((1, 12, 8), dtype=np.float32)
    x[0, 3] = 1
    y = SemitoneRoll(1, min_semitones=1, p=1.0)(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert int(y[0, :, 0].argmax()) == 4


def test_repr_names_the_settings() -> None:
    assert "bins_per_semitone=3" in repr(SemitoneRoll(bins_per_semitone=3))
    assert repr(Compose([Gain()])).startswith("Compose([Gain(")


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Gain(p=1.5), "p=1.5"),
        (lambda: Gain(p="high"), "p='high'"),
        (lambda: Gain(seed="x"), "seed='x'"),
        (lambda: Gain(min_db=3, max_db=-3), "min_db=3"),
        (lambda: Gain(min_db=float("nan")), "min_db=nan"),
        (lambda: Gain(space="linear"), "space='linear'"),
        (lambda: SemitoneRoll(1.5), "max_semitones=1.5"),
        (lambda: SemitoneRoll(2, min_semitones=3), "min_semitones=3"),
        (lambda: SemitoneRoll(bins_per_semitone=0), "bins_per_semitone=0"),
        (lambda: SemitoneRoll(mode="wrap"), "mode='wrap'"),
        (lambda: SemitoneRoll(mode="shift", fill=float("inf")), "fill=inf"),
        (lambda: TempoChange(0.0, 1.2), "min_rate=0.0"),
        (lambda: TempoChange(1.3, 1.2), "max_rate=1.2"),
        (lambda: TempoChange(pad_mode="reflect"), "pad_mode='reflect'"),
        (lambda: TimeMask(0), "max_frames=0"),
        (lambda: TimeMask(5, min_frames=6), "min_frames=6"),
        (lambda: TimeMask(5, min_frames=-1), "min_frames=-1"),
        (lambda: FrequencyMask(4, n_masks=0), "n_masks=0"),
        (lambda: FrequencyMask(2.5), "max_bins=2.5"),
        (lambda: Compose([]), "must not be empty"),
        (lambda: Compose([lambda x: x]), "is not a covergan"),
        (lambda: OneOf([Gain()], weights=[1, 2]), "weights=\\[1, 2\\]"),
        (lambda: OneOf([Gain(), Gain()], weights=[0, 0]), "not all be zero"),
        (lambda: OneOf([Gain(), Gain()], weights=[1, -1]), "weights=\\[1, -1\\]"),
    ],
)
def test_bad_parameters_raise_with_the_value(make: Any, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        make()


def test_bad_inputs_raise() -> None:
    t = Gain(p=1.0)
    with pytest.raises(ParameterError, match=r"got shape \(4, 5\)"):
        t(torch.zeros(4, 5))
    with pytest.raises(ParameterError, match="floating-point"):
        t(torch.zeros(1, 4, 5, dtype=torch.int64))
    with pytest.raises(ParameterError, match="got list"):
        t([1.0, 2.0])  # type: ignore[call-overload]
    params = t.randomize(torch.zeros(3, 1, 4, 5))
    with pytest.raises(ParameterError, match="drawn for 3 items, the input has 2"):
        t.apply(torch.zeros(2, 1, 4, 5), params)
