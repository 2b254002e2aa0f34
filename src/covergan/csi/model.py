"""A compact CQTNet-style cover-song identification network, sized for CPU training.

:class:`CSINet` follows the shape of CQTNet (Yu et al., ICASSP 2020): an octave-tall
first convolution over the CQT, convolutions dilated along time, max pooling, a global
temporal pooling that accepts any number of frames, and an embedding read by a
classification head during training. It is much narrower (about 0.43M parameters instead
of about 5M) and downsamples early, so a few hundred steps on a few hundred recordings take
minutes on a laptop CPU.

The L2-normalised embedding (:meth:`CSINet.embed`) is what retrieval compares (cosine
distance) and what :func:`embedding_features` hands to :mod:`covergan.metrics` as the
``"embedding"`` feature space.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from covergan._checks import check_count, config_from_dict, config_to_dict
from covergan._io import atomic_torch_save, check_header, header, read_checkpoint
from covergan.errors import CheckpointError, ParameterError

__all__ = ["CSIConfig", "CSINet", "EmbeddingFeatures", "embedding_features"]

_CHECKPOINT_FORMAT = "covergan.csi.CSINet"
_CHECKPOINT_VERSION = 1
_STEM_BINS = 12  # the first convolution spans one octave at 12 bins per octave


@dataclass(frozen=True, kw_only=True)
class CSIConfig:
    """Architecture of a :class:`CSINet`.

    Parameters
    ----------
    n_classes : int
        Songs (classes) the classification head tells apart, >= 2.
    n_bins : int
        Frequency bins of the input, >= 12 (84 for the CQTNet recipe).
    channels : tuple of int
        Widths of the stem and of each following stage (>= 2 entries). A 2x2 max pool
        (halving frequency and time) precedes every stage after the stem.
    stem_bins : int
        Height of the stem convolution in bins (12: one octave at 12 bins per octave;
        use ``bins_per_octave`` for finer CQTs).
    stem_stride : int
        Stride of the stem in frequency and time (2: a quarter of the positions, about 3x
        faster training than CQTNet's 1 for a similar accuracy in our tests).
    dilation : int
        Time dilation of the stage convolutions (CQTNet alternates 1 and 2).
    embedding_dim : int
        Size of the embedding used for retrieval.
    dropout : float
        Dropout on the pooled features during training, in ``[0, 1)``.
    gem_p : float
        Initial exponent of the generalised-mean pooling over time (learned; 1 = mean,
        large = max).
    logit_scale : float
        Scale ``s`` of the cosine classification head: ``logits = s * cos(embedding, w_c)``.
    """

    n_classes: int
    n_bins: int = 84
    channels: tuple[int, ...] = (32, 64, 128, 256)
    stem_bins: int = _STEM_BINS
    stem_stride: int = 2
    dilation: int = 2
    embedding_dim: int = 128
    dropout: float = 0.1
    gem_p: float = 3.0
    logit_scale: float = 16.0

    def __post_init__(self) -> None:
        for name in (
            "n_classes",
            "n_bins",
            "stem_bins",
            "stem_stride",
            "dilation",
            "embedding_dim",
        ):
            check_count(f"CSIConfig.{name}", getattr(self, name), 1)
        if self.n_classes < 2:
            raise ParameterError(f"CSIConfig.n_classes={self.n_classes} must be at least 2")
        if self.stem_bins > self.n_bins:
            raise ParameterError(
                f"CSIConfig.stem_bins={self.stem_bins} must not exceed n_bins={self.n_bins}"
            )
        channels = tuple(self.channels) if isinstance(self.channels, (list, tuple)) else None
        if channels is None or len(channels) < 2:
            raise ParameterError(
                f"CSIConfig.channels={self.channels!r} must be a tuple of at least 2 widths"
            )
        for c in channels:
            check_count("CSIConfig.channels", c, 1)
        object.__setattr__(self, "channels", tuple(int(c) for c in channels))
        if not (np.isfinite(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ParameterError(f"CSIConfig.dropout={self.dropout!r} must be in [0, 1)")
        if not (np.isfinite(self.gem_p) and self.gem_p >= 1.0):
            raise ParameterError(f"CSIConfig.gem_p={self.gem_p!r} must be >= 1")
        if not (np.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise ParameterError(f"CSIConfig.logit_scale={self.logit_scale!r} must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (``torch.load(weights_only=True)`` safe)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CSIConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error."""
        result: CSIConfig = config_from_dict(cls, data)
        return result


def _conv_block(
    c_in: int, c_out: int, kernel: tuple[int, int], *, dilation: int = 1, stride: int = 1
) -> nn.Sequential:
    # Frequency: "valid" for the octave-tall stem, "same" for 3x3; time: always "same".
    pad_f = 0 if kernel[0] > 3 else kernel[0] // 2
    pad_t = (kernel[1] // 2) * dilation
    return nn.Sequential(
        nn.Conv2d(
            c_in,
            c_out,
            kernel,
            stride=stride,
            dilation=(1, dilation),
            padding=(pad_f, pad_t),
            bias=False,
        ),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class CSINet(nn.Module):
    """Compact CQTNet-style CSI model: CQT in, song logits or an embedding out.

    Layers: a stem convolution ``stem_bins x 3`` (valid in frequency, stride
    ``stem_stride``), then per stage a ``2 x 2`` max pool (``ceil_mode``) and a ``3 x 3``
    convolution dilated ``dilation`` times along time, each convolution followed by batch
    norm and ReLU; max over the remaining frequency rows (some invariance to key),
    generalised-mean (GeM) pooling over time (any number of frames), dropout, a linear
    embedding with batch norm, and a cosine classification head
    ``logits = logit_scale * cos(embedding, w_c)``. Convolutions zero-pad in time, so any
    ``T >= 1`` works. With the defaults (84 bins, widths 32-64-128-256, embedding 128) it
    has about 0.43M parameters plus ``128 x n_classes`` in the head.

    Parameters
    ----------
    config : CSIConfig
        Architecture; ``CSINet(n_classes=80)`` builds a default one.
    seed : int
        Seed of the weight initialisation (torch's global generator is left untouched).
    **overrides
        Fields of ``config`` to replace, or all fields when ``config`` is None.

    Examples
    --------
    >>> model = CSINet(n_classes=train.n_songs)
    >>> logits = model(x)              # x: [B, 1, 84, T] -> [B, n_classes]
    >>> z = model.embed(x)             # [B, 128], unit norm
    """

    def __init__(self, config: CSIConfig | None = None, *, seed: int = 0, **overrides: Any):
        super().__init__()
        if config is None:
            config = CSIConfig(**overrides)
        elif not isinstance(config, CSIConfig):
            raise ParameterError(f"config must be a CSIConfig, got {type(config).__name__}")
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ParameterError(f"seed={seed!r} must be an int")
        self.config = config
        cfg = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            stem = _conv_block(1, cfg.channels[0], (cfg.stem_bins, 3), stride=cfg.stem_stride)
            stages: list[nn.Module] = [stem]
            for c_in, c_out in zip(cfg.channels[:-1], cfg.channels[1:], strict=True):
                stages.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                stages.append(_conv_block(c_in, c_out, (3, 3), dilation=cfg.dilation))
            self.features = nn.Sequential(*stages)
            self.gem_p = nn.Parameter(torch.tensor(float(cfg.gem_p)))
            self.dropout = nn.Dropout(cfg.dropout)
            self.embedding = nn.Linear(cfg.channels[-1], cfg.embedding_dim, bias=False)
            self.embedding_norm = nn.BatchNorm1d(cfg.embedding_dim)
            self.head = nn.Parameter(torch.empty(cfg.n_classes, cfg.embedding_dim))
            nn.init.normal_(self.head, std=cfg.embedding_dim**-0.5)

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ParameterError(f"CSINet expects a batch [B, 1, n_bins, n_frames], got {got}")
        if x.shape[2] != self.config.n_bins:
            raise ParameterError(
                f"CSINet was built for n_bins={self.config.n_bins}, the input has "
                f"{x.shape[2]} rows (shape {tuple(x.shape)}); features are [n_bins, n_frames]"
            )
        if x.shape[3] < 1 or x.shape[0] < 1:
            raise ParameterError(f"CSINet got an empty batch of shape {tuple(x.shape)}")

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional trunk and pooling: ``[B, 1, n_bins, T] -> [B, channels[-1]]``."""
        self._check_input(x)
        h = self.features(x)  # [B, C, H', T']
        h = h.amax(dim=2)  # max over frequency: [B, C, T']
        p = self.gem_p.clamp(min=1.0)
        pooled: torch.Tensor = h.clamp(min=1e-6).pow(p).mean(dim=-1).pow(1.0 / p)
        return pooled

    def embed(self, x: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """Embedding of a batch.

        Parameters
        ----------
        x : torch.Tensor [shape=(B, 1, n_bins, T)]
            CQT windows or full tracks (any ``T >= 1``) in the value space the model was
            trained on.
        normalize : bool
            Return unit-norm vectors (what cosine retrieval uses).

        Returns
        -------
        torch.Tensor [shape=(B, embedding_dim)]

        Raises
        ------
        ParameterError
            ``x`` is not ``[B, 1, n_bins, T]`` with the configured ``n_bins``.
        """
        z = self.embedding_norm(self.embedding(self.dropout(self.pooled(x))))
        return F.normalize(z, dim=1) if normalize else z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``s * cos(embedding, w_c)``.

        Parameters
        ----------
        x : torch.Tensor [shape=(B, 1, n_bins, T)]

        Returns
        -------
        torch.Tensor [shape=(B, n_classes)]
        """
        z = self.embed(x, normalize=True)
        return self.config.logit_scale * (z @ F.normalize(self.head, dim=1).t())

    # -- checkpoints -------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """Plain dict with the config and weights (``torch.load(weights_only=True)`` safe)."""
        return {
            **header(_CHECKPOINT_FORMAT, _CHECKPOINT_VERSION),
            "config": self.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`checkpoint` to ``path`` atomically (temporary file + rename)."""
        atomic_torch_save(self.checkpoint(), path)

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any], *, source: str = "checkpoint") -> CSINet:
        """Rebuild a model from :meth:`checkpoint` output (``source`` names it in errors).

        Raises
        ------
        CheckpointError
            Not a CSINet checkpoint, a newer format version, or weights that do not match
            the stored config.
        """
        if isinstance(state, dict) and "format_version" not in state and "version" in state:
            state = {**state, "format_version": state["version"]}  # written before header()
        state = check_header(state, _CHECKPOINT_FORMAT, _CHECKPOINT_VERSION, source, "CSINet")
        try:
            model = cls(CSIConfig.from_dict(state["config"]))
            model.load_state_dict(state["state_dict"])
        except (KeyError, TypeError, RuntimeError, ParameterError) as error:
            raise CheckpointError(f"{source} is a corrupt CSINet checkpoint: {error}") from error
        return model.eval()

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, map_location: str = "cpu") -> CSINet:
        """Read a model written by :meth:`save` (``weights_only=True``), in eval mode, on
        ``map_location``.

        Raises
        ------
        CheckpointError
            The file is missing, unreadable, or not a valid CSINet checkpoint.
        """
        p = Path(path).expanduser()
        model = cls.from_checkpoint(read_checkpoint(p, "CSINet checkpoint"), source=str(p))
        return model.to(map_location)


class EmbeddingFeatures(nn.Module):
    """A trained :class:`CSINet` seen as a feature map ``[n, 1, H, W] -> [n, D]``.

    Runs the model in eval mode and without gradients, ``batch_size`` items at a time,
    on the model's device, and restores the model's training mode afterwards. Pass it as
    ``features=`` to :mod:`covergan.metrics` (the ``"embedding"`` feature space); the input
    must be in the value space the model was trained on.

    Parameters
    ----------
    model : CSINet
    batch_size : int
    normalize : bool
        Unit-norm embeddings (default), as retrieval uses them.
    """

    def __init__(self, model: CSINet, *, batch_size: int = 64, normalize: bool = True) -> None:
        super().__init__()
        if not isinstance(model, CSINet):
            raise ParameterError(f"model must be a CSINet, got {type(model).__name__}")
        self.model = model
        self.batch_size = check_count("batch_size", batch_size, 1)
        self.normalize = normalize

    @property
    def dim(self) -> int:
        """Size ``D`` of the features."""
        return self.model.config.embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed ``x`` [shape=(n, 1, H, W)] into float32 [shape=(n, D)] on ``x``'s device."""
        was_training = self.model.training
        device = next(self.model.parameters()).device
        self.model.eval()
        try:
            with torch.no_grad():
                out = [
                    self.model.embed(
                        x[i : i + self.batch_size].to(device, torch.float32),
                        normalize=self.normalize,
                    )
                    for i in range(0, x.shape[0], self.batch_size)
                ]
        finally:
            self.model.train(was_training)
        if not out:
            return torch.empty(0, self.dim, device=x.device)
        return torch.cat(out).to(x.device)


def embedding_features(
    model: CSINet, *, batch_size: int = 64, normalize: bool = True
) -> EmbeddingFeatures:
    """The ``"embedding"`` feature space of a trained model, for :mod:`covergan.metrics`.

    Parameters
    ----------
    model : CSINet
        A trained model.
    batch_size : int
        Items per forward pass.
    normalize : bool
        Unit-norm embeddings.

    Returns
    -------
    EmbeddingFeatures
        Callable ``torch.Tensor [shape=(n, 1, H, W)] -> torch.Tensor [shape=(n, D)]``.

    Examples
    --------
    >>> feats = embedding_features(model)
    >>> covergan.metrics.frechet_with_floor(real, fake, features=feats)
    """
    return EmbeddingFeatures(model, batch_size=batch_size, normalize=normalize)
