"""The class-conditional GAN as an augmenter's model (``model="gan"``).

It learns each song's windows from that song's recordings alone
(:class:`~covergan.ConditionalDCGAN`, the 2021 thesis's approach); its samples measured no
better for a CSI model than other crops of the same recordings (``docs/benchmarks.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from covergan.cqt import CQTConfig, CQTNormalizer
from covergan.data import CQTDataset, SongId, SongIndex
from covergan.errors import CheckpointError
from covergan.gan import ConditionalDCGAN, GANConfig
from covergan.synthesis.base import FitContext, Space, SynthesisModel

__all__ = ["ClassGANModel"]


class ClassGANModel(SynthesisModel):
    """:class:`~covergan.ConditionalDCGAN` behind the :class:`SynthesisModel` protocol.

    Reads ``params``: ``preset``, ``gan`` (a :class:`~covergan.GANConfig` or overrides of
    the preset's), ``steps``, ``pretrain_steps`` (default ``steps // 5``, 0 for the thesis
    preset) and ``batch_size`` (default the config's).
    """

    name = "gan"
    label = "class GAN"

    def __init__(self, network: ConditionalDCGAN) -> None:
        self.network: ConditionalDCGAN = network

    @staticmethod
    def config(params: Mapping[str, Any], n_bins: int, window: int, config: CQTConfig) -> GANConfig:
        """The GAN config for windows of ``n_bins x window`` in the feature format ``config``
        (``ParameterError`` if bad)."""
        preset, gan = params["preset"], params["gan"]
        overrides: dict[str, Any] = {"image_size": (n_bins, window)}
        if preset != "thesis":
            overrides["bins_per_semitone"] = config.bins_per_semitone
        if isinstance(gan, GANConfig):
            return dataclasses.replace(gan, **overrides)
        return GANConfig.for_preset(preset, **{**dict(gan or {}), **overrides})

    @classmethod
    def check(
        cls, params: Mapping[str, Any], data: CQTDataset, *, window: int, config: CQTConfig
    ) -> None:
        cls.config(params, data.n_bins, window, config)

    @classmethod
    def build(cls, params: Mapping[str, Any], ctx: FitContext) -> ClassGANModel:
        network = ConditionalDCGAN(
            ctx.data.n_songs,
            preset=params["preset"],
            config=cls.config(params, ctx.data.n_bins, ctx.window, ctx.config),
            classes=list(ctx.data.index.ids),
            device=ctx.device,
            seed=ctx.seed,
        )
        return cls(network)

    @staticmethod
    def planned_steps(params: Mapping[str, Any]) -> int:
        return int(params["steps"])

    @staticmethod
    def default_pretrain(params: Mapping[str, Any]) -> int:
        if params["pretrain_steps"] is not None:
            return int(params["pretrain_steps"])
        return int(params["steps"]) // 5 if params["preset"] == "default" else 0

    def batch_size(self, params: Mapping[str, Any], ctx: FitContext) -> int:
        batch = params["batch_size"]
        batch = batch if batch is not None else self.network.config.batch_size
        return int(min(batch, len(ctx.data)))

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
        """Every song's samples in one batched pass of the generator."""
        flat = [labels[s] for s, n in counts.items() for _ in range(int(n))]
        x = self.network.generate(flat, generator=seed, truncation=truncation)
        if space == "features":
            x = normalizer.inverse(x)
        bounds = np.cumsum([0, *(int(n) for n in counts.values())])
        return {song: x[a:b] for song, a, b in zip(counts, bounds[:-1], bounds[1:], strict=True)}

    def state_dict(self) -> dict[str, Any]:
        return {"gan": self.network.state_dict()}

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
    ) -> ClassGANModel | None:
        if state.get("gan") is None:
            return None
        network = ConditionalDCGAN.from_state_dict(state["gan"], device=device, source=source)
        if network.n_classes != len(songs) or network.image_size != (config.n_bins, window):
            raise CheckpointError(f"{source}: the GAN does not match the stored songs or window")
        return cls(network)
