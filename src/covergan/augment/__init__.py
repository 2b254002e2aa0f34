"""CQT-domain augmentation: differentiable ops for GAN training and classic CSI transforms.

:mod:`covergan.augment.classic` holds the transforms every CSI team already uses (key change,
tempo change, masking, gain) for a training loop; :mod:`covergan.augment.differentiable` holds
the batched, differentiable ops the GAN applies to discriminator inputs.
"""

from __future__ import annotations

from covergan.augment.classic import (
    Compose,
    FrequencyMask,
    Gain,
    OneOf,
    SemitoneRoll,
    TempoChange,
    TimeMask,
)
from covergan.augment.differentiable import DiffAugment

__all__ = [
    "Compose",
    "DiffAugment",
    "FrequencyMask",
    "Gain",
    "OneOf",
    "SemitoneRoll",
    "TempoChange",
    "TimeMask",
]
