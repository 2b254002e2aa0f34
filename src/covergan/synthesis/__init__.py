"""Synthesis models an :class:`~covergan.Augmenter` can fit, behind one protocol.

:class:`~covergan.synthesis.base.SynthesisModel` is the protocol;
:data:`REGISTRY` names the implementations (``Augmenter(model=...)`` takes these names):

- ``"versions"``: :class:`~covergan.synthesis.version_model.VersionModel`, the
  reference-conditioned version model and its reference bank (the default);
- ``"gan"``: :class:`~covergan.synthesis.class_gan.ClassGANModel`, the class-conditional GAN.

To add a model, implement the protocol in a new module and add it here.
"""

from __future__ import annotations

from covergan.synthesis.base import FitContext, SynthesisModel
from covergan.synthesis.class_gan import ClassGANModel
from covergan.synthesis.version_model import MIN_VERSION_WORKS, VersionModel, check_version_data

__all__ = [
    "MIN_VERSION_WORKS",
    "REGISTRY",
    "ClassGANModel",
    "FitContext",
    "SynthesisModel",
    "VersionModel",
    "check_version_data",
]

#: The synthesis models by name, in the order an augmenter file lists them.
REGISTRY: dict[str, type[SynthesisModel]] = {
    VersionModel.name: VersionModel,
    ClassGANModel.name: ClassGANModel,
}
