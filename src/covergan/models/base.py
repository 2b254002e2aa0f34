"""What :class:`~covergan.gan.ConditionalDCGAN` needs from a generator and a discriminator.

Any :class:`torch.nn.Module` with the call signatures below can be plugged in; the presets in
:mod:`covergan.models.thesis` and :mod:`covergan.models.dcgan` are two such pairs.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = [
    "ConditionalBatchNorm2d",
    "DiscriminatorModule",
    "GeneratorModule",
    "auto_stages",
]


@runtime_checkable
class GeneratorModule(Protocol):
    """A generator: ``(z, labels) -> x``.

    Attributes
    ----------
    z_dim : int
        Length of the noise vector.

    The call takes ``z : torch.Tensor [shape=(B, z_dim)]`` and
    ``labels : torch.LongTensor [shape=(B,)]`` (class indices) or ``None`` for an unconditional
    model, and returns ``torch.Tensor [shape=(B, 1, H, W)]`` with values in ``[-1, 1]``.
    """

    z_dim: int

    def __call__(self, z: Tensor, labels: Tensor | None) -> Tensor: ...


@runtime_checkable
class DiscriminatorModule(Protocol):
    """A discriminator: ``(x, labels) -> logits``.

    The call takes ``x : torch.Tensor [shape=(B, 1, H, W)]`` and
    ``labels : torch.LongTensor [shape=(B,)]`` or ``None`` and returns raw scores
    ``torch.Tensor [shape=(B,)]`` (no sigmoid: the losses take logits).
    """

    def __call__(self, x: Tensor, labels: Tensor | None) -> Tensor: ...


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are linear functions of a class embedding.

    ``y = BN(x) * (1 + W_g e) + W_b e`` with ``e`` the class embedding (BigGAN's shared-embedding
    conditional batch norm; de Vries et al. 2017 for the per-class form). ``W_g`` and ``W_b``
    start at zero, so the layer starts as a plain batch norm. Because ``W_g`` and ``W_b`` are
    shared by every class and ``e`` has unit-variance entries, the class-specific part learns
    about ``sqrt(embed_dim)`` times faster under Adam than per-class scale and shift tables
    would: on the digits control this made conditioning appear within 100-200 steps instead of
    after 600. With ``cond_dim=0`` this is an ordinary affine :class:`torch.nn.BatchNorm2d`.

    Parameters
    ----------
    num_features : int
        Channels ``C``.
    cond_dim : int
        Length of the conditioning vector (0 = unconditional).
    """

    def __init__(self, num_features: int, cond_dim: int) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.bn = nn.BatchNorm2d(num_features, affine=cond_dim == 0)
        self.gain: nn.Linear | None = None
        self.bias: nn.Linear | None = None
        if cond_dim > 0:
            self.gain = nn.Linear(cond_dim, num_features, bias=False)
            self.bias = nn.Linear(cond_dim, num_features, bias=False)
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        """Normalise ``x : [B, C, H, W]`` given ``cond : [B, cond_dim]``.

        The conditional affine is one fused multiply-add; in eval mode the running statistics
        are folded into it, so the layer is a single pass over ``x`` (on a CPU the
        full-resolution element-wise passes cost about as much as the convolutions).
        """
        if self.gain is None or self.bias is None or cond is None:
            plain: Tensor = self.bn(x)
            return plain
        gain = 1.0 + self.gain(cond)
        bias = self.bias(cond)
        bn = self.bn
        if not self.training and bn.running_var is not None and bn.running_mean is not None:
            scale = gain * torch.rsqrt(bn.running_var + bn.eps)
            shift = bias - bn.running_mean * scale
            return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])
        h: Tensor = bn(x)
        return torch.addcmul(bias[:, :, None, None], h, gain[:, :, None, None])


def auto_stages(height: int, width: int) -> int:
    """Number of 2x up/down-sampling stages for an ``height x width`` image.

    The coarsest feature map is about 4 cells on its short side: ``floor(log2(min / 4))``,
    at least 2. For 84 x 200 this is 4 (a 6 x 13 seed); for 8 x 8 digits it is 2 (2 x 2).
    """
    short = min(height, width)
    return max(2, math.floor(math.log2(max(short, 1) / 4)))


def one_hot(labels: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    """``[B]`` class indices -> ``[B, n_classes]`` one-hot in ``dtype``."""
    return torch.nn.functional.one_hot(labels, n_classes).to(dtype)
