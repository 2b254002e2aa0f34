"""The seed thesis's conditional DCGAN (2021), layer for layer: the baseline preset.

Generator (appendix A of the thesis, unconditional form, 6,030,913 parameters)::

    z [B, 100, 1, 1]
    ConvTranspose2d(100, 256, (8, 20), stride 1)  BN ReLU   ->  8 x 20
    ConvTranspose2d(256, 128, (5, 10), stride 2)  BN ReLU   -> 19 x 48
    ConvTranspose2d(128,  64, (6, 6),  stride 2)  BN ReLU   -> 42 x 100
    ConvTranspose2d( 64,   1, (2, 2),  stride 2)  Tanh      -> 84 x 200

Discriminator (5,350,209 parameters)::

    x [B, 1, 84, 200]
    Conv2d(  1,  64, (10, 54), stride 2)  BN LeakyReLU(0.2)  -> 38 x 74
    Conv2d( 64, 128, (17, 38), stride 2)  BN LeakyReLU(0.2)  -> 11 x 19
    Conv2d(128,   1, (10, 18), stride 2)                     ->  1 x 1

Conditioning as in section 3.7.2 of the thesis: a one-hot class vector is concatenated to the
noise (``100 + n_classes`` input channels), and the discriminator receives the label as
``n_classes`` extra input planes (the one-hot vector broadcast over H x W). The discriminator
returns logits; the thesis's final sigmoid lives in the BCE-with-logits loss.
The kernel sizes only fit 84 x 200 inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from covergan.errors import ParameterError
from covergan.models.base import one_hot

__all__ = ["THESIS_IMAGE_SIZE", "ThesisDiscriminator", "ThesisGenerator"]

#: The only image size the thesis kernels produce and accept.
THESIS_IMAGE_SIZE = (84, 200)


class ThesisGenerator(nn.Module):
    """The thesis generator, conditioned by a one-hot vector concatenated to the noise.

    Parameters
    ----------
    n_classes : int
        Number of classes (0 = unconditional, the appendix-A form).
    z_dim : int
        Noise length (100 in the thesis).
    """

    def __init__(self, n_classes: int, z_dim: int = 100) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.z_dim = z_dim
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim + n_classes, 256, (8, 20), stride=1),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(256, 128, (5, 10), stride=2),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(128, 64, (6, 6), stride=2),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(64, 1, (2, 2), stride=2),
            nn.Tanh(),
        )

    def forward(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """``z : [B, z_dim]``, ``labels : [B]`` -> ``[B, 1, 84, 200]`` in [-1, 1]."""
        h = z
        if self.n_classes > 0:
            if labels is None:
                raise ParameterError("a conditional generator needs labels")
            h = torch.cat([z, one_hot(labels, self.n_classes, z.dtype)], dim=1)
        out: Tensor = self.net(h[:, :, None, None])
        return out


class ThesisDiscriminator(nn.Module):
    """The thesis discriminator, conditioned by one-hot label planes as extra input channels.

    Parameters
    ----------
    n_classes : int
        Number of classes (0 = unconditional).
    """

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.net = nn.Sequential(
            nn.Conv2d(1 + n_classes, 64, (10, 54), stride=2),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, 128, (17, 38), stride=2),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(128, 1, (10, 18), stride=2),
        )

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """``x : [B, 1, 84, 200]``, ``labels : [B]`` -> logits ``[B]``."""
        h = x
        if self.n_classes > 0:
            if labels is None:
                raise ParameterError("a conditional discriminator needs labels")
            planes = one_hot(labels, self.n_classes, x.dtype)[:, :, None, None]
            planes = planes.expand(-1, -1, x.shape[2], x.shape[3])
            h = torch.cat([x, planes.contiguous(memory_format=_format_of(x))], dim=1)
        out: Tensor = self.net(h)
        return out.reshape(x.shape[0], -1).mean(dim=1)


def _format_of(x: Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
