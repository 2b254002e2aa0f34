"""The ``"default"`` preset: a small class-conditional DCGAN built to train fast on a CPU.

Generator (:class:`DCGANGenerator`)
    ``z`` -> linear -> a seed map of about 4 cells on its short side -> ``n_stages - 1`` blocks of
    ``ConvTranspose2d(4, stride 2) -> conditional BatchNorm -> ReLU`` halving the channels ->
    a sub-pixel layer (``Conv2d(3)`` to 4 channels, pixel shuffle x2) straight to one channel ->
    tanh -> centre crop to (H, W).
    Any (H, W) works: the seed is ``ceil(H / 2**n) x ceil(W / 2**n)`` and the surplus is cropped
    (84 x 200: seed 6 x 13, output 96 x 208, crop 6 bins top and bottom, 4 frames each side).
    The last layer goes from ``width`` channels (16 in the default preset) at half resolution
    directly to the image, so no multi-channel tensor ever exists at full resolution: on a CPU
    the full-resolution layers are memory-bound, and this is what makes generation fast. The
    inner layers are ConvTranspose 4 x 4 / 2 (4 MACs per output cell and channel pair, 2.25 x
    less than upsample + 3 x 3 conv);
    the last is a sub-pixel convolution because a one-channel ConvTranspose runs at a fraction
    of the speed of a four-channel Conv2d on oneDNN (measured 2x in ``channels_last``).
    Classes enter BigGAN-style through a shared class embedding ``e`` (unit-variance entries):
    ``[z, e]`` feeds the linear layer and ``e`` sets the scale and shift of every batch norm
    (:class:`~covergan.models.base.ConditionalBatchNorm2d`).

Discriminator (:class:`ProjectionDiscriminator`)
    ``n_stages`` spectral-normalised ``Conv2d(4, stride 2)`` + LeakyReLU(0.2) doubling the channels,
    a spectral-normalised 3 x 3 conv at the coarsest scale, sum pooling, and the projection head of
    Miyato & Koyama (2018): ``linear(h) + <embed(y), h>``. The class embedding is not spectrally
    normalised (its spectral norm would cap how far class vectors can separate; on the digits
    control the conditioning appeared 2x sooner without it).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from covergan.errors import ParameterError
from covergan.models.base import ConditionalBatchNorm2d, auto_stages

__all__ = ["ConvEncoder", "DCGANGenerator", "ProjectionDiscriminator"]


def _check_size(image_size: tuple[int, int], n_stages: int | None) -> int:
    height, width = image_size
    if height < 2 or width < 2:
        raise ParameterError(f"image_size={image_size!r} must be at least 2 x 2")
    n = auto_stages(height, width) if n_stages is None else n_stages
    if n < 1:
        raise ParameterError(f"n_stages={n_stages!r} must be >= 1")
    return n


class DCGANGenerator(nn.Module):
    """Class-conditional transposed-convolution generator (see the module docstring).

    Parameters
    ----------
    n_classes : int
        Number of classes (0 = unconditional: plain batch norm).
    image_size : tuple of int
        Output ``(H, W)``.
    z_dim : int
        Noise length.
    embed_dim : int
        Length of the shared class embedding (unused when ``n_classes=0``).
    width : int
        Channels of the last hidden stage; each stage towards the seed doubles it.
    max_width : int
        Channel cap.
    n_stages : int, optional
        Number of 2x upsampling layers; default :func:`~covergan.models.base.auto_stages`.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        image_size: tuple[int, int] = (84, 200),
        z_dim: int = 128,
        embed_dim: int = 128,
        width: int = 32,
        max_width: int = 256,
        n_stages: int | None = None,
    ) -> None:
        super().__init__()
        n = _check_size(image_size, n_stages)
        self.n_classes = n_classes
        self.z_dim = z_dim
        cond_dim = embed_dim if n_classes > 0 else 0
        self.embed: nn.Embedding | None = None
        if n_classes > 0:
            self.embed = nn.Embedding(n_classes, embed_dim)  # N(0, 1) entries
        self.image_size = (int(image_size[0]), int(image_size[1]))
        scale = 2**n
        self.seed_size = (math.ceil(image_size[0] / scale), math.ceil(image_size[1] / scale))
        chans = [min(max_width, width * 2 ** (n - 1 - k)) for k in range(n)]
        self.seed_channels = chans[0]
        seed_cells = chans[0] * self.seed_size[0] * self.seed_size[1]
        self.fc = nn.Linear(z_dim + cond_dim, seed_cells, bias=False)
        self.norms = nn.ModuleList([ConditionalBatchNorm2d(chans[0], cond_dim)])
        self.ups = nn.ModuleList()
        for c_in, c_out in itertools.pairwise(chans):
            self.ups.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False))
            self.norms.append(ConditionalBatchNorm2d(c_out, cond_dim))
        # sub-pixel output layer (Shi et al. 2016): 3 x 3 conv to 4 channels, pixel shuffle x2
        self.out = nn.Conv2d(chans[-1], 4, 3, padding=1)

    def forward(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """Generate a batch.

        Parameters
        ----------
        z : torch.Tensor [shape=(B, z_dim)]
        labels : torch.LongTensor [shape=(B,)] or None

        Returns
        -------
        torch.Tensor [shape=(B, 1, H, W)]
            Values in [-1, 1].
        """
        cond: Tensor | None = None
        if self.embed is not None:
            if labels is None:
                raise ParameterError("a conditional generator needs labels")
            cond = self.embed(labels)
            z = torch.cat([z, cond], dim=1)
        h = self.fc(z).view(z.shape[0], self.seed_channels, *self.seed_size)
        if self.out.weight.is_contiguous(memory_format=torch.channels_last):
            h = h.contiguous(memory_format=torch.channels_last)
        h = torch.relu_(self.norms[0](h, cond))
        for up, norm in zip(self.ups, self.norms[1:], strict=True):
            h = torch.relu_(norm(up(h), cond))
        x = torch.tanh(nn.functional.pixel_shuffle(self.out(h), 2))
        height, width = self.image_size
        top = (x.shape[2] - height) // 2
        left = (x.shape[3] - width) // 2
        return x[:, :, top : top + height, left : left + width]


def conv_trunk(
    width: int, max_width: int, n_stages: int, *, spectral: bool = True
) -> tuple[nn.Sequential, int]:
    """The discriminators' and the encoder's feature trunk: ``n_stages`` ``Conv2d(4, stride 2)``
    + LeakyReLU(0.2) from one channel, doubling from ``width`` up to ``max_width``, then a
    3 x 3 conv + LeakyReLU; every conv spectral-normalised when ``spectral``. Returns the
    trunk and its output channels."""

    def conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Module:
        layer = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1)
        return spectral_norm(layer) if spectral else layer

    layers: list[nn.Module] = []
    c_in = 1
    for k in range(n_stages):
        c_out = min(max_width, width * 2**k)
        layers += [conv(c_in, c_out, 4, 2), nn.LeakyReLU(0.2)]
        c_in = c_out
    layers += [conv(c_in, c_in, 3, 1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers), c_in


class ProjectionDiscriminator(nn.Module):
    """Spectral-norm convolutional discriminator with a projection head (see module docstring).

    Parameters
    ----------
    n_classes : int
        Number of classes (0 = unconditional: no projection term).
    image_size : tuple of int
        Input ``(H, W)``; any size works (the features are sum-pooled).
    width : int
        Channels of the first stage; each stage doubles it.
    max_width : int
        Channel cap.
    n_stages : int, optional
        Number of stride-2 convolutions; default :func:`~covergan.models.base.auto_stages`.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        image_size: tuple[int, int] = (84, 200),
        width: int = 16,
        max_width: int = 256,
        n_stages: int | None = None,
    ) -> None:
        super().__init__()
        n = _check_size(image_size, n_stages)
        self.n_classes = n_classes
        self.features, c_in = conv_trunk(width, max_width, n)
        self.linear = spectral_norm(nn.Linear(c_in, 1))
        self.embed: nn.Embedding | None = None
        if n_classes > 0:
            self.embed = nn.Embedding(n_classes, c_in)
            nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """Score a batch.

        Parameters
        ----------
        x : torch.Tensor [shape=(B, 1, H, W)]
        labels : torch.LongTensor [shape=(B,)] or None

        Returns
        -------
        torch.Tensor [shape=(B,)]
            Logits (higher = more real).
        """
        h = self.features(x).sum(dim=(2, 3))
        out: Tensor = self.linear(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ParameterError("a conditional discriminator needs labels")
            out = out + (self.embed(labels) * h).sum(dim=1)
        return out


class ConvEncoder(nn.Module):
    """Image -> Gaussian posterior over the noise: the encoder of the autoencoder pre-training.

    The discriminator's trunk without spectral norm (``n_stages`` stride-2 convolutions and a
    3 x 3 conv with LeakyReLU), mean pooling and a linear layer to ``(mu, log_var)``.

    Parameters
    ----------
    image_size : tuple of int
        Input ``(H, W)``.
    z_dim : int
        Latent length (the generator's ``z_dim``).
    width, max_width, n_stages
        As in :class:`ProjectionDiscriminator`.
    """

    def __init__(
        self,
        *,
        image_size: tuple[int, int],
        z_dim: int,
        width: int = 16,
        max_width: int = 256,
        n_stages: int | None = None,
    ) -> None:
        super().__init__()
        n = _check_size(image_size, n_stages)
        self.features, c_in = conv_trunk(width, max_width, n, spectral=False)
        self.head = nn.Linear(c_in, 2 * z_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x : [B, 1, H, W]`` -> ``(mu, log_var)``, each ``[B, z_dim]``."""
        h = self.features(x).mean(dim=(2, 3))
        mu, log_var = self.head(h).chunk(2, dim=1)
        return mu, log_var
