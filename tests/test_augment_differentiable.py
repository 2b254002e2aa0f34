"""Tests for covergan.augment.differentiable (DiffAugment-style CQT ops)."""

from __future__ import annotations

import pytest
import torch

from covergan.augment.differentiable import (
    DEFAULT_POLICY,
    FLOOR,
    OPS,
    DiffAugment,
    apply_freq_mask,
    apply_freq_shift,
    apply_gain,
    apply_time_mask,
    apply_time_shift,
)
from covergan.errors import ParameterError


def _batch(b: int = 6, h: int = 24, w: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, h, w, generator=g) * 1.8 - 0.9  # strictly inside (-1, 1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- apply functions


def test_freq_shift_moves_a_tone_by_whole_semitones() -> None:
    bins_per_semitone = 3
    x = torch.full((3, 1, 84, 10), FLOOR)
    x[:, :, 30, :] = 1.0  # one partial at bin 30
    semitones = torch.tensor([2, -1, 0])
    y = apply_freq_shift(x, semitones * bins_per_semitone)
    peaks = y[:, 0, :, 0].argmax(dim=1)
    assert peaks.tolist() == [36, 27, 30]
    assert torch.equal(y[2], x[2])
    # energy is conserved except for the filled edge, which is silence
    assert torch.all(y[0, :, :6] == FLOOR)
    assert torch.all(y[1, :, -3:] == FLOOR)


def test_freq_shift_fills_vacated_bins_with_silence_not_wrap() -> None:
    x = torch.arange(8.0).view(1, 1, 8, 1) / 8
    y = apply_freq_shift(x, torch.tensor([3]))
    assert y.flatten().tolist()[:3] == [FLOOR] * 3
    assert torch.equal(y[0, 0, 3:, 0], x[0, 0, :5, 0])


def test_time_shift_closed_form() -> None:
    x = torch.arange(10.0).view(1, 1, 1, 10).repeat(2, 1, 3, 1) / 10
    y = apply_time_shift(x, torch.tensor([2, -3]))
    assert torch.equal(y[0, 0, 0, 2:], x[0, 0, 0, :8])
    assert torch.all(y[0, ..., :2] == FLOOR)
    assert torch.equal(y[1, 0, 0, :7], x[1, 0, 0, 3:])
    assert torch.all(y[1, ..., 7:] == FLOOR)


def test_shift_larger_than_the_axis_gives_silence() -> None:
    x = _batch(2, 5, 7)
    y = apply_time_shift(x, torch.tensor([50, -50]))
    assert torch.all(y == FLOOR)


def test_masks_set_bands_to_silence() -> None:
    x = _batch(2, 12, 20)
    y = apply_time_mask(x, torch.tensor([3, 0]), torch.tensor([4, 0]))
    assert torch.all(y[0, :, :, 3:7] == FLOOR)
    assert torch.equal(y[0, :, :, :3], x[0, :, :, :3])
    assert torch.equal(y[0, :, :, 7:], x[0, :, :, 7:])
    assert torch.equal(y[1], x[1])
    z = apply_freq_mask(x, torch.tensor([10, 1]), torch.tensor([5, 2]))
    assert torch.all(z[0, :, 10:, :] == FLOOR)
    assert torch.equal(z[0, :, :10, :], x[0, :, :10, :])
    assert torch.all(z[1, :, 1:3, :] == FLOOR)


def test_gain_is_an_additive_offset_that_keeps_silence_silent() -> None:
    x = torch.tensor([FLOOR, -0.5, 0.0, 0.95]).view(1, 1, 1, 4).repeat(2, 1, 1, 1)
    y = apply_gain(x, torch.tensor([0.1, -0.6]))
    assert torch.allclose(y[0].flatten(), torch.tensor([FLOOR, -0.4, 0.1, 1.0]))
    assert torch.allclose(y[1].flatten(), torch.tensor([FLOOR, FLOOR, -0.6, 0.35]))


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (apply_time_shift, (torch.tensor([1]),)),
        (apply_freq_shift, (torch.tensor([1]),)),
        (apply_time_mask, (torch.tensor([0]), torch.tensor([1]))),
        (apply_freq_mask, (torch.tensor([0]), torch.tensor([1]))),
        (apply_gain, (torch.tensor([0.1]),)),
    ],
)
def test_apply_functions_reject_non_4d_input(fn, args) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParameterError, match="shape"):
        fn(torch.zeros(8, 8), *args)


# ----------------------------------------------------------------------------- the policy


@pytest.mark.parametrize("policy", [*OPS, DEFAULT_POLICY])
@pytest.mark.parametrize("shape", [(4, 1, 84, 200), (3, 1, 8, 8), (2, 1, 13, 37)])
def test_shapes_dtype_and_range_are_kept(policy: str, shape: tuple[int, ...]) -> None:
    x = torch.rand(shape) * 2 - 1
    y = DiffAugment(policy=policy)(x, _gen())
    assert y.shape == x.shape
    assert y.dtype == x.dtype
    assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize("policy", [*OPS, DEFAULT_POLICY])
def test_same_generator_state_gives_the_same_output(policy: str) -> None:
    x = _batch()
    aug = DiffAugment(policy=policy)
    assert torch.equal(aug(x, _gen(3)), aug(x, _gen(3)))
    assert not torch.equal(aug(x, _gen(3)), aug(x, _gen(4)))


@pytest.mark.parametrize("policy", [*OPS, DEFAULT_POLICY])
def test_gradients_flow_to_the_input(policy: str) -> None:
    x = _batch().requires_grad_(True)
    y = DiffAugment(policy=policy, strength=0.5)(x, _gen())
    (y * torch.linspace(0, 1, y.shape[-1])).sum().backward()
    assert x.grad is not None
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "aug",
    [DiffAugment(policy=""), DiffAugment(strength=0.0), DiffAugment(p=0.0)],
    ids=["empty-policy", "strength-0", "p-0"],
)
def test_identity_settings_return_the_input(aug: DiffAugment) -> None:
    x = _batch()
    assert aug.is_identity
    assert torch.equal(aug(x, _gen()), x)


def test_semitone_op_shifts_by_multiples_of_bins_per_semitone() -> None:
    bins_per_semitone = 2
    x = torch.full((64, 1, 48, 4), FLOOR)
    x[:, :, 20, :] = 1.0
    aug = DiffAugment(policy="semitone", strength=1.0, bins_per_semitone=bins_per_semitone)
    peaks = aug(x, _gen(1))[:, 0, :, 0].argmax(dim=1)
    shifts = peaks - 20
    assert torch.all(shifts % bins_per_semitone == 0)
    assert shifts.abs().max() <= 2 * bins_per_semitone  # 2 semitones at strength 1
    assert len(set(shifts.tolist())) > 1  # it does move things


def test_p_applies_each_op_to_a_fraction_of_samples() -> None:
    x = _batch(400, 16, 16)
    y = DiffAugment(policy="gain", p=0.5)(x, _gen())
    changed = (y != x).flatten(1).any(dim=1).float().mean()
    assert 0.35 < changed < 0.65


def test_translation_magnitude_scales_with_strength() -> None:
    x = torch.full((200, 1, 2, 80), FLOOR)
    x[..., 40] = 1.0
    for strength, limit in ((0.5, 5), (1.0, 10)):
        y = DiffAugment(policy="translation", strength=strength)(x, _gen())
        shift = y[:, 0, 0, :].argmax(dim=1) - 40
        assert shift.abs().max() == limit


def test_masks_respect_their_maximum_width() -> None:
    x = _batch(100, 40, 80)
    y = DiffAugment(policy="timemask")(x, _gen())
    masked = (y == FLOOR).all(dim=2).squeeze(1).sum(dim=1)  # masked frames per sample
    assert masked.max() <= 10 and masked.max() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": "translation,color"}, "color"),
        ({"policy": "gain,gain"}, "twice"),
        ({"strength": -1.0}, "strength"),
        ({"strength": float("nan")}, "strength"),
        ({"p": 1.5}, "p="),
        ({"bins_per_semitone": 0}, "bins_per_semitone"),
        ({"bins_per_semitone": True}, "bins_per_semitone"),
    ],
)
def test_invalid_settings_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        DiffAugment(**kwargs)  # type: ignore[arg-type]


def test_call_rejects_non_4d_input() -> None:
    with pytest.raises(ParameterError, match="shape"):
        DiffAugment()(torch.zeros(3, 84, 200))
