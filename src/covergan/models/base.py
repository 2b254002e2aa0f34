"""What :class:`~covergan.gan.ConditionalDCGAN` needs from a generator and a discriminator.

Any :class:`torch.nn.Module` with the call signatures below can be plugged in; the presets in
:mod:`covergan.models.thesis` and :mod:`covergan.models.dcgan` are two such pairs.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from covergan.errors import ParameterError

__all__ = [
    "ConditionalBatchNorm2d",
    "DiscriminatorModule",
    "GeneratorModule",
    "auto_stages",
    "check_pair",
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


def check_pair(
    generator: nn.Module,
    discriminator: nn.Module,
    *,
    z_dim: int,
    labels: Tensor | None,
    image_size: tuple[int, int],
    device: torch.device | str = "cpu",
) -> None:
    """A dry run of a (possibly user-supplied) generator and discriminator, in eval mode.

    Parameters
    ----------
    generator, discriminator : nn.Module
    z_dim : int
        Noise length the generator takes.
    labels : torch.LongTensor [shape=(b,)] or None
        Class indices of the dry-run batch (``None``: an unconditional pair); ``b`` sets the
        batch (2 when ``None``).
    image_size : tuple of int
        ``(H, W)`` the generator must produce.
    device : torch.device or str
        Where the modules are (the noise is made there).

    Raises
    ------
    ParameterError
        The generator fails on ``z`` or gives another shape than ``(b, 1, H, W)``; the
        discriminator fails on it or does not give one logit per sample.
    """
    b = 2 if labels is None else int(labels.shape[0])
    height, width = image_size
    modes = (generator.training, discriminator.training)
    generator.eval()
    discriminator.eval()
    try:
        z = torch.zeros(b, z_dim, device=device)
        with torch.no_grad():
            try:
                x = generator(z, labels)
            except Exception as exc:
                raise ParameterError(
                    f"the generator failed on a dry run with z of shape {tuple(z.shape)}: {exc}"
                ) from exc
            if not isinstance(x, Tensor) or tuple(x.shape) != (b, 1, height, width):
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ParameterError(
                    f"the generator produces {got} but config.image_size={image_size} "
                    f"needs ({b}, 1, {height}, {width})"
                )
            try:
                out = discriminator(x, labels)
            except Exception as exc:
                raise ParameterError(
                    f"the discriminator cannot take the generator's output of shape "
                    f"{tuple(x.shape)}: {exc}"
                ) from exc
            if not isinstance(out, Tensor) or tuple(out.shape) not in ((b,), (b, 1)):
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ParameterError(
                    f"the discriminator returns {got} for a batch of {b}; it must return "
                    f"one logit per sample, shape ({b},)"
                )
    finally:
        generator.train(modes[0])
        discriminator.train(modes[1])
