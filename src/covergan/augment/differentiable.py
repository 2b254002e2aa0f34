"""Differentiable CQT-domain augmentation for GAN training (DiffAugment-style).

A discriminator that sees ~1,000 spectrograms memorises them. Augmenting *both* the real and the
fake inputs of the discriminator, with differentiable ops so the generator still receives a
gradient, stops that without the augmentation leaking into the samples (Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training"). Colour jitter and flips are
meaningless on a one-channel CQT; the ops here are the ones that are natural in the CQT domain:

========== ================================================================================
name       what it does to ``x [B, 1, H, W]`` (H = frequency bins, W = time frames)
========== ================================================================================
translation time shift by up to ``0.125 * strength * W`` frames; vacated frames are silence
semitone   key transposition: frequency shift by up to ``round(2 * strength)`` whole semitones
           (``bins_per_semitone`` bins each); vacated bins are silence
timemask   one band of up to ``0.125 * strength * W`` frames set to silence (SpecAugment)
freqmask   one band of up to ``0.125 * strength * H`` bins set to silence (SpecAugment)
gain       level change: an additive offset in ``[-0.2, 0.2] * strength`` on the non-silent
           cells (model space is log-magnitude), clamped to ``[-1, 1]``
========== ================================================================================

Silence is the model-space floor ``-1``. Shifts fill with silence instead of wrapping: a
transposition moves content out of the analysed range and leaves the other edge empty, whereas
a wrap would put the top octave under the bass, which no recording does.

Every op draws its per-sample randomness on the input's device from an optional
:class:`torch.Generator` (randomise), then applies a deterministic function (apply), so the same
generator state gives the same output bit for bit and each ``apply`` function can be tested on
its own. Each op is applied to each sample with probability ``p``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from covergan._checks import check_count
from covergan.errors import ParameterError

__all__ = [
    "DEFAULT_POLICY",
    "FLOOR",
    "OPS",
    "DiffAugment",
    "apply_freq_mask",
    "apply_freq_shift",
    "apply_gain",
    "apply_time_mask",
    "apply_time_shift",
]

#: Model-space value of silence (the log-magnitude floor).
FLOOR = -1.0

#: Policy of the ``"default"`` GAN preset.
DEFAULT_POLICY = "translation,semitone,timemask,freqmask,gain"

# Magnitudes at strength 1.
_TRANSLATION_RATIO = 0.125
_SEMITONES = 2.0
_MASK_RATIO = 0.125
_GAIN = 0.2


def _check_batch(x: Tensor) -> None:
    if x.dim() != 4:
        raise ParameterError(f"expected x of shape (B, C, H, W), got {tuple(x.shape)}")


def _shift(x: Tensor, shifts: Tensor, dim: int, limit: int | None = None) -> Tensor:
    """Shift each sample of ``x`` along ``dim`` by ``shifts[b]`` cells, filling with FLOOR.

    ``limit`` bounds ``|shifts|``; the ops pass it so no device sync is needed to find it.
    """
    n = x.shape[dim]
    if limit is None:
        limit = int(shifts.abs().max().item()) if shifts.numel() else 0
    max_shift = min(limit, n)
    if max_shift == 0:
        return x
    pad = [0, 0, 0, 0]  # F.pad order: (W_left, W_right, H_top, H_bottom)
    side = 0 if dim == 3 else 2
    pad[side] = pad[side + 1] = max_shift
    padded = torch.nn.functional.pad(x, pad, value=FLOOR)
    # output[i] = input[i - shift]  ->  padded[i - shift + max_shift]
    index = torch.arange(n, device=x.device).unsqueeze(0) - shifts.clamp(-n, n).unsqueeze(1)
    index = index + max_shift  # [B, n], every entry in [0, n + 2 * max_shift)
    shape = [x.shape[0], 1, 1, 1]
    shape[dim] = n
    index = index.view(shape).expand(*(x.shape[:dim]), n, *(x.shape[dim + 1 :]))
    return torch.gather(padded, dim, index)


def apply_time_shift(x: Tensor, frames: Tensor) -> Tensor:
    """Shift each sample in time, filling the vacated frames with silence.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, C, H, W)]
        Batch in model space.
    frames : torch.LongTensor [shape=(B,)]
        Shift per sample; positive moves content later (to larger frame indices).

    Returns
    -------
    torch.Tensor [shape=(B, C, H, W)]
        ``y[..., t] = x[..., t - frames[b]]`` where that index exists, else ``-1``.
    """
    _check_batch(x)
    return _shift(x, frames.to(device=x.device, dtype=torch.long), 3)


def apply_freq_shift(x: Tensor, bins: Tensor) -> Tensor:
    """Shift each sample along the frequency axis, filling the vacated bins with silence.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, C, H, W)]
        Batch in model space, bin 0 the lowest frequency.
    bins : torch.LongTensor [shape=(B,)]
        Shift per sample in bins; positive transposes up (content moves to higher bins).
        A transposition by ``k`` semitones is ``k * bins_per_semitone`` bins.

    Returns
    -------
    torch.Tensor [shape=(B, C, H, W)]
        ``y[..., f, :] = x[..., f - bins[b], :]`` where that bin exists, else ``-1``.
    """
    _check_batch(x)
    return _shift(x, bins.to(device=x.device, dtype=torch.long), 2)


def _band_mask(n: int, start: Tensor, width: Tensor, device: torch.device) -> Tensor:
    """[B, n] bool, True inside ``[start, start + width)``."""
    pos = torch.arange(n, device=device).unsqueeze(0)
    start = start.to(device=device, dtype=torch.long).unsqueeze(1)
    width = width.to(device=device, dtype=torch.long).unsqueeze(1)
    return (pos >= start) & (pos < start + width)


def apply_time_mask(x: Tensor, start: Tensor, width: Tensor) -> Tensor:
    """Set frames ``[start[b], start[b] + width[b])`` of each sample to silence.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, C, H, W)]
    start, width : torch.LongTensor [shape=(B,)]
        First masked frame and number of masked frames (0 masks nothing).

    Returns
    -------
    torch.Tensor [shape=(B, C, H, W)]
    """
    _check_batch(x)
    band = _band_mask(x.shape[3], start, width, x.device)[:, None, None, :]
    return torch.where(band, torch.full_like(x, FLOOR), x)


def apply_freq_mask(x: Tensor, start: Tensor, width: Tensor) -> Tensor:
    """Set bins ``[start[b], start[b] + width[b])`` of each sample to silence.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, C, H, W)]
    start, width : torch.LongTensor [shape=(B,)]
        First masked bin and number of masked bins (0 masks nothing).

    Returns
    -------
    torch.Tensor [shape=(B, C, H, W)]
    """
    _check_batch(x)
    band = _band_mask(x.shape[2], start, width, x.device)[:, None, :, None]
    return torch.where(band, torch.full_like(x, FLOOR), x)


def apply_gain(x: Tensor, offset: Tensor) -> Tensor:
    """Change the level of each sample by an additive log-magnitude offset.

    Silent cells (at the floor ``-1``) stay silent; the others move by ``offset[b]`` and are
    clamped to ``[-1, 1]``.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, C, H, W)]
    offset : torch.Tensor [shape=(B,)]
        Offset per sample in model-space units.

    Returns
    -------
    torch.Tensor [shape=(B, C, H, W)]
    """
    _check_batch(x)
    shifted = (x + offset.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)).clamp(FLOOR, 1.0)
    return torch.where(x > FLOOR, shifted, x)


# ----------------------------------------------------------------------------- randomise + apply


@dataclass(frozen=True)
class _Ctx:
    strength: float
    p: float
    bins_per_semitone: int
    generator: torch.Generator | None


def _rand(n: int, x: Tensor, ctx: _Ctx) -> Tensor:
    return torch.rand(n, generator=ctx.generator, device=x.device)


def _randint(low: Tensor | int, high: Tensor | int, x: Tensor, ctx: _Ctx) -> Tensor:
    """Integers uniform in ``[low, high]`` (inclusive), one per sample, per-sample bounds."""
    u = _rand(x.shape[0], x, ctx)
    low_t = torch.as_tensor(low, device=x.device, dtype=torch.float32)
    high_t = torch.as_tensor(high, device=x.device, dtype=torch.float32)
    return torch.floor(low_t + u * (high_t - low_t + 1)).long().clamp(max=high_t.long())


def _applied(x: Tensor, ctx: _Ctx) -> Tensor:
    """Per-sample Bernoulli(p) draw: which samples get this op (drawn even at p=1 so the
    random stream does not depend on ``p``)."""
    return _rand(x.shape[0], x, ctx) < ctx.p


def _op_translation(x: Tensor, ctx: _Ctx) -> Tensor:
    limit = min(round(_TRANSLATION_RATIO * ctx.strength * x.shape[3]), x.shape[3])
    on = _applied(x, ctx)
    shift = _randint(-limit, limit, x, ctx) * on
    return _shift(x, shift, 3, limit)


def _op_semitone(x: Tensor, ctx: _Ctx) -> Tensor:
    limit = min(round(_SEMITONES * ctx.strength), x.shape[2] // ctx.bins_per_semitone)
    on = _applied(x, ctx)
    semitones = _randint(-limit, limit, x, ctx) * on
    return _shift(x, semitones * ctx.bins_per_semitone, 2, limit * ctx.bins_per_semitone)


def _mask_params(n: int, x: Tensor, ctx: _Ctx) -> tuple[Tensor, Tensor]:
    limit = min(round(_MASK_RATIO * ctx.strength * n), n)
    on = _applied(x, ctx)
    width = _randint(0, limit, x, ctx) * on
    start = _randint(0, n - width, x, ctx)
    return start, width


def _op_timemask(x: Tensor, ctx: _Ctx) -> Tensor:
    start, width = _mask_params(x.shape[3], x, ctx)
    return apply_time_mask(x, start, width)


def _op_freqmask(x: Tensor, ctx: _Ctx) -> Tensor:
    start, width = _mask_params(x.shape[2], x, ctx)
    return apply_freq_mask(x, start, width)


def _op_gain(x: Tensor, ctx: _Ctx) -> Tensor:
    on = _applied(x, ctx)
    offset = (_rand(x.shape[0], x, ctx) * 2 - 1) * (_GAIN * ctx.strength) * on
    return apply_gain(x, offset)


#: Registry of policy names to ops; each op takes ``(x, ctx)`` and returns an augmented batch.
OPS: dict[str, Callable[[Tensor, _Ctx], Tensor]] = {
    "translation": _op_translation,
    "semitone": _op_semitone,
    "timemask": _op_timemask,
    "freqmask": _op_freqmask,
    "gain": _op_gain,
}


def _parse_policy(policy: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ParameterError(
            f"unknown augmentation op(s) {unknown} in policy {policy!r}; known ops: {sorted(OPS)}"
        )
    if len(set(names)) != len(names):
        raise ParameterError(f"augmentation policy {policy!r} names an op twice")
    return names


@dataclass(frozen=True, kw_only=True)
class DiffAugment:
    """A differentiable augmentation policy for discriminator inputs.

    Parameters
    ----------
    policy : str
        Comma-separated op names applied in order (see the module docstring); ``""`` is the
        identity. Default ``"translation,semitone,timemask,freqmask,gain"``.
    strength : float
        Scales every op's magnitude (0 is the identity, 1 the documented magnitudes).
    p : float
        Probability that an op is applied to a sample, drawn per op and per sample.
    bins_per_semitone : int
        Frequency bins per semitone of the input (``CQTConfig.bins_per_semitone``).

    Examples
    --------
    >>> aug = DiffAugment(policy="semitone,gain", strength=0.5)
    >>> y = aug(torch.zeros(4, 1, 84, 200), generator=torch.Generator().manual_seed(0))
    """

    policy: str = DEFAULT_POLICY
    strength: float = 1.0
    p: float = 1.0
    bins_per_semitone: int = 1
    ops: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", _parse_policy(self.policy))
        if not (math.isfinite(self.strength) and self.strength >= 0):
            raise ParameterError(f"augmentation strength={self.strength!r} must be >= 0")
        if not (0.0 <= self.p <= 1.0):
            raise ParameterError(f"augmentation p={self.p!r} must be in [0, 1]")
        check_count("bins_per_semitone", self.bins_per_semitone, 1)

    @property
    def is_identity(self) -> bool:
        """True when calling this policy returns its input unchanged."""
        return not self.ops or self.strength == 0 or self.p == 0

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a batch.

        Parameters
        ----------
        x : torch.Tensor [shape=(B, C, H, W)]
            Batch in model space ([-1, 1], -1 = silence).
        generator : torch.Generator, optional
            Source of randomness, on ``x``'s device; ``None`` uses torch's global generator.

        Returns
        -------
        torch.Tensor [shape=(B, C, H, W)]
            Augmented batch; differentiable with respect to ``x``.
        """
        _check_batch(x)
        if self.is_identity:
            return x
        ctx = _Ctx(self.strength, self.p, self.bins_per_semitone, generator)
        for name in self.ops:
            x = OPS[name](x, ctx)
        return x
