"""The augmenter file: writing it, reading it, and reading the layouts of earlier releases.

One ``torch.save`` dictionary, read back with ``weights_only=True`` (tensors and plain
containers only, so a crafted file cannot run code). Its ``format`` is
``"covergan.augmenter"``; ``format_version``:

1. class GAN only (covergan 0.1): ``params``, ``cqt_config``, ``songs``, ``normalizer``,
   ``window_``, ``seed_``, ``gan``. Still written for an augmenter with only a class GAN,
   so older covergan reads it.
2. 1 plus ``versions`` (the version model, no reference bank; the class GAN was always
   fitted and was what ``sample`` returned).
3. any set of models: ``params["model"]`` names them in order (the first is the sampling
   default), ``gan`` and ``versions`` are present when fitted, ``references`` holds the
   reference bank (:class:`~covergan.references.ReferenceBank`).

Files of versions 1 and 2 load as what they were, ``model=("gan",)`` and
``model=("gan", "versions")``; a version-2 augmenter gets a reference bank (and ``sample``
versions) from :meth:`~covergan.Augmenter.fit_versions`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from covergan._io import atomic_torch_save, check_header, header, read_checkpoint
from covergan.cqt import CQTConfig, CQTExtractor, CQTNormalizer
from covergan.data import SongIndex
from covergan.distributed import resolve_device
from covergan.errors import CheckpointError
from covergan.gan import CHECKPOINT_FORMAT
from covergan.references import DEFAULT_REFERENCES
from covergan.synthesis import REGISTRY, SynthesisModel, VersionModel

if TYPE_CHECKING:
    from covergan.augmenter import Augmenter

__all__ = ["AUGMENTER_FORMAT", "AUGMENTER_FORMAT_VERSION", "load_augmenter", "save_augmenter"]

logger = logging.getLogger(__name__)

AUGMENTER_FORMAT = "covergan.augmenter"
#: Newest layout read and written (see the module doc for 1 and 2).
AUGMENTER_FORMAT_VERSION = 3


def save_augmenter(aug: Augmenter, path: str | os.PathLike[str]) -> Path:
    """Write a fitted augmenter atomically (see :meth:`covergan.Augmenter.save`)."""
    gan_only = aug.models == ("gan",)
    params: dict[str, Any] = {
        "preset": aug.preset,
        "window": aug.window,
        "steps": aug.steps,
        "pretrain_steps": aug.pretrain_steps,
        "batch_size": aug.batch_size,
        "seed": aug.seed,
    }
    state: dict[str, Any] = {
        **header(AUGMENTER_FORMAT, 1 if gan_only else AUGMENTER_FORMAT_VERSION),
        "params": params,
        "cqt_config": aug.config_.to_dict(),
        "songs": aug.songs_.to_dict(),
        "normalizer": aug.normalizer_.state_dict(),
        "window_": aug.window_,
        "seed_": aug.seed_,
    }
    for model in aug.models_.values():
        state.update(model.state_dict())
    if not gan_only:
        params.update(
            model=list(aug.models), version_steps=aug.version_steps, references=aug.references
        )
    return atomic_torch_save(state, path, make_parents=True)


def load_augmenter(
    cls: type[Augmenter], path: str | os.PathLike[str], *, device: str | torch.device = "auto"
) -> Augmenter:
    """Read :func:`save_augmenter` output (see :meth:`covergan.Augmenter.load`)."""
    source = Path(path).expanduser()
    device = resolve_device(device)  # before reading: a bad device is not a bad file
    state = read_checkpoint(source, "augmenter")
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{source} is not a covergan augmenter file; it is a GAN checkpoint: use "
            "ConditionalDCGAN.load"
        )
    state = check_header(
        state, AUGMENTER_FORMAT, AUGMENTER_FORMAT_VERSION, str(source), "augmenter"
    )
    try:
        params = dict(state["params"])
        config = CQTConfig.from_dict(state["cqt_config"])
        songs = SongIndex.from_dict(state["songs"])
        normalizer = CQTNormalizer.from_state_dict(state["normalizer"])
        window, seed = int(state["window_"]), int(state["seed_"])
        fitted: dict[str, SynthesisModel] = {}
        for name, model_cls in REGISTRY.items():
            model = model_cls.from_state(
                state, songs=songs, config=config, window=window, device=device, source=str(source)
            )
            if model is not None:
                fitted[name] = model
        if state["format_version"] >= 3:
            names = tuple(params["model"])
        else:  # earlier releases: the class GAN was always fitted, and sampled
            names = ("gan",) if "versions" not in fitted else ("gan", "versions")
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{source} is an incomplete augmenter file: {error!r}; fit an Augmenter on the "
            "training data again and save it"
        ) from error
    if not names or any(m not in REGISTRY for m in names):
        raise CheckpointError(f"{source}: unknown models {names!r}")
    if not fitted:
        raise CheckpointError(f"{source} holds no model")
    if not normalizer.is_fitted:
        raise CheckpointError(f"{source}: the normaliser statistics are missing")
    gan, versions = fitted.get("gan"), fitted.get("versions")
    if isinstance(versions, VersionModel) and versions.references is None:
        logger.warning(  # format 2, or a file saved from one without fit_versions
            "%s holds a version model without a reference bank (augmenter format 2, of an "
            "earlier release, or saved from one): sample() draws its class GAN, as it did "
            "then. Today's default, new versions of a song (method='versions'), needs the "
            "bank: refit on the training data (Python: aug.fit_versions(dataset); command "
            "line: covergan fit DATA OUT)",
            source,
        )
    aug = cls(
        model=names,
        extractor=CQTExtractor(config),
        preset=params.get("preset", gan.network.preset if gan is not None else "default"),
        gan=None if gan is None else gan.network.config,
        versions=None if versions is None else versions.network.config,
        window=params.get("window"),
        steps=params.get("steps", 3000),
        pretrain_steps=params.get("pretrain_steps"),
        version_steps=params.get("version_steps"),
        references=params.get("references", DEFAULT_REFERENCES),
        batch_size=params.get("batch_size"),
        device=device,
        seed=params.get("seed"),
    )
    aug.songs_, aug.config_, aug.normalizer_ = songs, config, normalizer
    aug.window_, aug.seed_ = window, seed
    aug.models_ = {name: fitted[name] for name in REGISTRY if name in fitted}
    return aug
