"""The synthesis-model protocol: what :class:`~covergan.Augmenter` asks of a model.

A synthesis model wraps one trainable network (a GAN with ``step``, ``history``,
``pretrain_autoencoder``, ``fit`` and ``state_dict``) and whatever it needs besides to
sample a song (the version model's reference bank). The augmenter owns what every model
shares: the feature format, the normaliser, the window, the seed and the song index
(:class:`FitContext`), and it calls, for each model it fits::

    cls.check(params, data, window=..., config=...)   # fails before any training
    model = cls.build(params, ctx)         # untrained
    model.pretrain(params, ctx, cls.default_pretrain(params))
    model.train(params, ctx, callbacks)    # up to planned_steps(params), resumable
    model.sample(counts, labels, normalizer, space=..., seed=..., truncation=...)
    model.state_dict() / cls.from_state(file_state, ...)

``params`` is the augmenter's constructor arguments (:meth:`Augmenter.get_params`); each
model reads its own. Adding a model is one new module implementing :class:`SynthesisModel`
and one entry in :data:`covergan.synthesis.REGISTRY`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from covergan.cqt import CQTConfig, CQTNormalizer
from covergan.data import CQTDataset, SongId, SongIndex
from covergan.training import Callback

__all__ = ["FitContext", "Method", "Space", "SynthesisModel"]

Space = Literal["features", "model"]
#: A synthesis model's registry name (``"versions"``, ``"gan"``, ...).
Method = str


@dataclass(frozen=True)
class FitContext:
    """What every model of one augmenter is fitted with.

    Attributes
    ----------
    data : CQTDataset
        The recordings, in the feature format.
    config : CQTConfig
        Their feature format (that of samples in ``space="features"``).
    normalizer : CQTNormalizer
        Features <-> the models' ``[-1, 1]`` space, fitted on ``data``.
    window : int
        Frames of a training window and of a sample.
    seed : int
        Seed of crops, initialisation and training.
    device : str or torch.device
    progress : bool
        Progress bars.
    """

    data: CQTDataset
    config: CQTConfig
    normalizer: CQTNormalizer
    window: int
    seed: int
    device: str | torch.device
    progress: bool

    @property
    def train(self) -> CQTDataset:
        """Seeded random-crop windows of ``window`` frames of ``data``, in model space."""
        return self.data.windows(
            self.window, crop="random", seed=self.seed, transform=self.normalizer
        )


class SynthesisModel(ABC):
    """One synthesis model of an augmenter (see the module docstring for the call order)."""

    #: Registry key: the value of ``Augmenter(model=...)`` and ``sample(method=...)``.
    name: ClassVar[str]
    #: How reports and figures name the model.
    label: ClassVar[str]
    #: The trainable network (``step``, ``history``, ``fit``, ``state_dict``, ...).
    network: Any

    # ------------------------------------------------------------------------- building

    @classmethod
    @abstractmethod
    def check(
        cls, params: Mapping[str, Any], data: CQTDataset, *, window: int, config: CQTConfig
    ) -> None:
        """Raise ``ParameterError``/``DatasetError`` for a config or data it cannot fit."""

    @classmethod
    @abstractmethod
    def build(cls, params: Mapping[str, Any], ctx: FitContext) -> SynthesisModel:
        """A new, untrained model for ``ctx``."""

    @staticmethod
    @abstractmethod
    def planned_steps(params: Mapping[str, Any]) -> int:
        """Adversarial steps the model trains for in all."""

    @staticmethod
    @abstractmethod
    def default_pretrain(params: Mapping[str, Any]) -> int:
        """Autoencoder steps before the adversarial ones."""

    @abstractmethod
    def batch_size(self, params: Mapping[str, Any], ctx: FitContext) -> int:
        """Batch of both pretraining and training."""

    # ------------------------------------------------------------------------- training

    @property
    def step(self) -> int:
        """Adversarial steps taken."""
        return int(self.network.step)

    @property
    def history(self) -> dict[str, list[float]]:
        """Per-step logs of the network."""
        return dict(self.network.history)

    def pretrain(self, params: Mapping[str, Any], ctx: FitContext, steps: int) -> None:
        """``steps`` autoencoder steps (nothing for 0)."""
        if steps:
            self.network.pretrain_autoencoder(
                ctx.train,
                steps=steps,
                batch_size=self.batch_size(params, ctx),
                progress=ctx.progress,
                seed=ctx.seed,
                workers=params["workers"],
            )

    def train(
        self, params: Mapping[str, Any], ctx: FitContext, callbacks: Sequence[Callback] = ()
    ) -> None:
        """Train up to :meth:`planned_steps` (the steps still to do; none when done)."""
        remaining = self.planned_steps(params) - self.step
        if remaining <= 0:
            return
        self.network.fit(
            ctx.train,
            steps=remaining,
            batch_size=self.batch_size(params, ctx),
            callbacks=callbacks,
            progress=ctx.progress,
            seed=ctx.seed,
            workers=params["workers"],
        )

    # ------------------------------------------------------------------------- sampling

    @abstractmethod
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
        """``counts[song]`` samples of every song (>= 1 each), ``[n, 1, n_bins, window]``.

        ``labels`` maps each song to its class index in the augmenter's song index; with a
        seed, a song's samples do not depend on the other songs asked for.
        """

    # ------------------------------------------------------------------------- files

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The model's entries of the augmenter file (plain containers and tensors)."""

    @classmethod
    @abstractmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        *,
        songs: SongIndex,
        config: CQTConfig,
        window: int,
        device: str | torch.device,
        source: str,
    ) -> SynthesisModel | None:
        """Rebuild from an augmenter file's entries; ``None`` when the file has none.

        Raises ``CheckpointError`` for entries that do not match the songs or window.
        """
