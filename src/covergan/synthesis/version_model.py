"""The version model as an augmenter's model (``model="versions"``, the default).

A :class:`~covergan.versions.VersionGAN` learns, from the works with two or more
recordings, how versions of a work differ; a song's new versions are that model applied to
windows of the song's own training recordings, kept in a bounded
:class:`~covergan.references.ReferenceBank` saved with the augmenter.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from covergan._checks import check_known_fields
from covergan.cqt import CQTConfig, CQTNormalizer
from covergan.data import CQTDataset, SongId, SongIndex
from covergan.errors import CheckpointError, DatasetError, NotFittedError
from covergan.references import ReferenceBank
from covergan.synthesis.base import FitContext, Space, SynthesisModel
from covergan.training import derive_seed
from covergan.versions import (
    VersionConfig,
    VersionGAN,
    generate_versions,
    min_reference_frames,
)

__all__ = ["MIN_VERSION_WORKS", "NO_REFERENCE_BANK", "VersionModel", "check_version_data"]

logger = logging.getLogger(__name__)

#: Works with two or more recordings the version model needs to learn from.
MIN_VERSION_WORKS = 2
#: What sampling a version model without a reference bank says (a file of augmenter format 2).
NO_REFERENCE_BANK = (
    "this augmenter's version model has no reference bank (a file written before reference "
    "banks, augmenter format 2), so it cannot draw versions of a song by its id: refit it on "
    "its training data (Python: aug.fit_versions(dataset); command line: covergan fit DATA "
    "OUT), or make versions of given windows with sample_like(features)"
)


def check_version_data(data: CQTDataset) -> None:
    """Enough works with two or more recordings for the version model to learn from.

    Raises
    ------
    DatasetError
        Fewer than :data:`MIN_VERSION_WORKS` such works (the message names the counts and
        the way out).
    """
    counts = data.class_counts()
    multi = sum(1 for c in counts.values() if c >= 2)
    if multi < MIN_VERSION_WORKS:
        raise DatasetError(
            f"the version model learns how versions differ from works with two or more "
            f"recordings and needs at least {MIN_VERSION_WORKS}; this dataset has {multi} "
            f"among its {len(counts)} songs ({len(data)} recordings). Add recordings of "
            "more works, or fit the class-conditional GAN: Augmenter(model='gan') (command "
            "line: covergan fit DATA OUT --model gan)"
        )


class VersionModel(SynthesisModel):
    """:class:`~covergan.versions.VersionGAN` and its reference bank behind the protocol.

    Reads ``params``: ``versions`` (a :class:`~covergan.versions.VersionConfig` or
    overrides of the defaults), ``version_steps`` (default ``steps``), ``steps`` and
    ``references`` (windows kept per song).
    """

    name = "versions"
    label = "versions"

    def __init__(
        self, network: VersionGAN, references: ReferenceBank | None, silence: float
    ) -> None:
        self.network: VersionGAN = network
        #: ``None`` only for a model loaded from a format-2 augmenter file (written before
        #: reference banks).
        self.references = references
        #: Feature value of silence: reference frames at it stay silent in the versions.
        self.silence = float(silence)

    @staticmethod
    def config(
        params: Mapping[str, Any], n_bins: int, window: int, config: CQTConfig
    ) -> VersionConfig:
        """The model config for windows of ``n_bins x window`` in the feature format
        ``config`` (``ParameterError`` if bad)."""
        fixed: dict[str, Any] = {
            "image_size": (n_bins, window),
            "bins_per_semitone": config.bins_per_semitone,
        }
        versions = params["versions"]
        if isinstance(versions, VersionConfig):
            return dataclasses.replace(versions, **fixed)
        if isinstance(versions, Mapping):
            check_known_fields(VersionConfig, versions)
            return VersionConfig(**{**dict(versions), **fixed})
        return VersionConfig(**fixed)

    @classmethod
    def check(
        cls, params: Mapping[str, Any], data: CQTDataset, *, window: int, config: CQTConfig
    ) -> None:
        check_version_data(data)
        cls.config(params, data.n_bins, window, config)
        min_frames = min_reference_frames(window)
        longest = int(data.lengths().max())
        if longest < min_frames:
            raise DatasetError(
                f"every recording is shorter than {min_frames} frames (the longest has "
                f"{longest}), a quarter of the {window}-frame window, so the version model "
                "would keep no reference windows to make versions of: fit with a window of at "
                f"most {4 * longest} frames (window=...), or with longer recordings"
            )

    @classmethod
    def build(cls, params: Mapping[str, Any], ctx: FitContext) -> VersionModel:
        network = VersionGAN(
            cls.config(params, ctx.data.n_bins, ctx.window, ctx.config),
            device=ctx.device,
            seed=ctx.seed,
        )
        min_frames = min_reference_frames(ctx.window)
        bank = ReferenceBank.build(
            ctx.data,
            width=network.config.source_width,
            per_song=params["references"],
            min_frames=min_frames,
            seed=ctx.seed,
        )
        if bank.skipped:
            logger.warning(
                "songs with no recording of %d frames or more, so no reference windows: %d "
                "(sample_like a longer recording of them, or fit the class GAN too and sample "
                "them with method='gan'): %s",
                min_frames,
                len(bank.skipped),
                bank.skipped[:5],
            )
        return cls(network, bank, ctx.config.silence_value)

    @staticmethod
    def planned_steps(params: Mapping[str, Any]) -> int:
        steps = params["version_steps"]
        return int(steps if steps is not None else params["steps"])

    @staticmethod
    def default_pretrain(params: Mapping[str, Any]) -> int:
        return VersionModel.planned_steps(params) // 5

    def batch_size(self, params: Mapping[str, Any], ctx: FitContext) -> int:
        pairs = sum(c for c in ctx.data.class_counts().values() if c >= 2)
        return min(self.network.config.batch_size, max(2, pairs))

    def sample(
        self,
        counts: Mapping[SongId, int],
        labels: Mapping[SongId, int],
        normalizer: CQTNormalizer,
        *,
        space: Space,
        seed: int | None,
        truncation: float | None,
    ) -> dict[SongId, torch.Tensor]:
        """Versions of each song's reference windows (used in turn, in a seeded shuffled
        order), each song from its own seed."""
        if self.references is None:
            raise NotFittedError(NO_REFERENCE_BANK)
        out: dict[SongId, torch.Tensor] = {}
        for song, n in counts.items():
            song_seed = None if seed is None else int(derive_seed(seed, labels[song]))
            windows = self.references.draw(song, int(n), rng=np.random.default_rng(song_seed))
            out[song] = generate_versions(
                self.network,
                normalizer,
                windows,
                seed=song_seed,
                space=space,
                truncation=truncation,
                silence=self.silence,
            )
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"versions": self.network.state_dict()}
        if self.references is not None:
            state["references"] = self.references.state_dict()
        return state

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        *,
        songs: SongIndex,
        config: CQTConfig,
        window: int,
        device: str | torch.device,
        source: str,
    ) -> VersionModel | None:
        if state.get("versions") is None:
            return None
        network = VersionGAN.from_state_dict(
            state["versions"], device=device, source=f"{source} (version model)"
        )
        if network.image_size != (config.n_bins, window):
            raise CheckpointError(f"{source}: the version model does not match the window")
        references = None
        if state.get("references") is not None:
            references = ReferenceBank.from_state_dict(state["references"], source=source)
            if any(s not in songs for s in references.windows):
                raise CheckpointError(
                    f"{source}: the reference bank names songs the augmenter lacks"
                )
        return cls(network, references, config.silence_value)
