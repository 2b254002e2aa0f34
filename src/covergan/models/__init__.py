"""Generator and discriminator families for :class:`~covergan.gan.ConditionalDCGAN`.

Any module pair that satisfies :class:`GeneratorModule` and :class:`DiscriminatorModule` can be
plugged in; the two presets are built from the classes here:

- ``"default"``: :class:`DCGANGenerator` + :class:`ProjectionDiscriminator`
  (:mod:`covergan.models.dcgan`);
- ``"thesis"``: :class:`ThesisGenerator` + :class:`ThesisDiscriminator`
  (:mod:`covergan.models.thesis`).
"""

from __future__ import annotations

from covergan.models.base import (
    ConditionalBatchNorm2d,
    DiscriminatorModule,
    GeneratorModule,
    auto_stages,
)
from covergan.models.dcgan import ConvEncoder, DCGANGenerator, ProjectionDiscriminator
from covergan.models.thesis import THESIS_IMAGE_SIZE, ThesisDiscriminator, ThesisGenerator

__all__ = [
    "THESIS_IMAGE_SIZE",
    "ConditionalBatchNorm2d",
    "ConvEncoder",
    "DCGANGenerator",
    "DiscriminatorModule",
    "GeneratorModule",
    "ProjectionDiscriminator",
    "ThesisDiscriminator",
    "ThesisGenerator",
    "auto_stages",
]
