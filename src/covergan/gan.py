"""ConditionalDCGAN: a class-conditional GAN over model-space CQT windows.

The object holds a generator, a discriminator, an EMA copy of the generator for sampling, the two
optimisers and the training state, and knows how to train (:meth:`ConditionalDCGAN.fit`), sample
(:meth:`ConditionalDCGAN.generate`) and checkpoint itself (:meth:`ConditionalDCGAN.save`,
:meth:`ConditionalDCGAN.load`). Two presets exist (see ``docs/gan.md``):

- ``"thesis"``: the 2021 thesis's DCGAN, layer for layer, with its training recipe (BCE, Adam at
  0.002, batch 10). The baseline.
- ``"default"``: a small conditional DCGAN for small data that trains fast on a CPU (conditional
  batch norm, spectral-norm projection discriminator, hinge loss, differentiable CQT augmentation,
  EMA generator with a ramped decay).

Randomness in training is derived from ``(seed, step)``: every step re-seeds its noise and
augmentation generator from the step counter, and the data order of every epoch is a permutation
seeded from the epoch number. A checkpoint therefore only needs the counters to resume exactly.

Under ``torchrun`` (an initialised :mod:`torch.distributed` process group, see
:func:`init_distributed`), :meth:`ConditionalDCGAN.fit` trains data-parallel: each rank takes a
disjoint shard of every epoch's permutation and its own noise, gradients are averaged over the
ranks before every optimiser step, so the weights stay identical on every rank (see
``docs/scaling.md``).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from covergan._checks import (
    check_adam,
    check_count,
    check_image_size,
    check_ints,
    check_known_fields,
    check_reals,
    config_from_dict,
    config_to_dict,
)
from covergan._checks import is_int as _is_int
from covergan._checks import is_real as _is_real
from covergan._io import atomic_torch_save, check_header, header, read_checkpoint
from covergan.augment.differentiable import DEFAULT_POLICY, DiffAugment
from covergan.batches import batch_stream, batches_per_epoch
from covergan.distributed import (
    _average_buffers,
    _average_gradients,
    _average_logs,
    _broadcast_modules,
    _rank_world,
    init_distributed,
    is_main_process,
    rank_key,
    resolve_device,
)
from covergan.errors import (
    CheckpointError,
    CoverGANWarning,
    ParameterError,
)
from covergan.models.base import GeneratorModule, check_pair
from covergan.models.dcgan import ConvEncoder, DCGANGenerator, ProjectionDiscriminator
from covergan.models.thesis import THESIS_IMAGE_SIZE, ThesisDiscriminator, ThesisGenerator
from covergan.training import (
    AdversarialModel,
    Callback,
    CheckpointCallback,
    check_pretrain,
    check_truncation,
    derive_seed,
    noise_source,
    truncated_normal,
    vae_loss,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "PRESETS",
    "Callback",
    "CheckpointCallback",
    "ConditionalDCGAN",
    "GANConfig",
    "SampleSnapshotCallback",
    "init_distributed",
    "is_main_process",
    "resolve_device",
]

logger = logging.getLogger(__name__)

LossName = Literal["hinge", "bce", "wgan-gp"]
PresetName = Literal["default", "thesis"]

#: Preset names accepted by :class:`ConditionalDCGAN`.
PRESETS: tuple[str, ...] = ("default", "thesis")
#: ``format`` field of a checkpoint written by :meth:`ConditionalDCGAN.save`.
CHECKPOINT_FORMAT = "covergan.gan"
#: Newest checkpoint layout this version reads and the one it writes.
CHECKPOINT_FORMAT_VERSION = 1

_LOSSES = ("hinge", "bce", "wgan-gp")
_RANGE_TOLERANCE = 1e-3
_DRY_RUN_BATCH = 2


# ----------------------------------------------------------------------------------- config


@dataclass(frozen=True, kw_only=True)
class GANConfig:
    """Architecture and training hyper-parameters of a :class:`ConditionalDCGAN`.

    ``GANConfig()`` is the ``"default"`` preset; :meth:`for_preset` gives each preset's values.
    Sizes and widths only shape the ``"default"`` modules (the thesis architecture is fixed).

    Parameters
    ----------
    image_size : tuple of int
        ``(H, W)`` of a sample: frequency bins x time frames. Default ``(84, 200)``.
    z_dim : int
        Noise length (128; the thesis used 100).
    embed_dim : int
        Length of the generator's shared class embedding (default preset).
    g_width : int
        Generator channels at its last hidden stage (doubling towards the seed). 16 by
        default: 2.8 M generator parameters and over 400 generated 84 x 200 CQTs/s on two CPU
        cores; 32 doubles the cost for a slightly closer per-song distance
        (``benchmarks/gan_width.py``).
    d_width : int
        Discriminator channels at its first stage (doubling at every stage).
    max_width : int
        Channel cap of both networks.
    n_stages : int, optional
        Number of 2x scale changes in both networks; ``None`` picks one from ``image_size``
        (4 for 84 x 200, see :func:`covergan.models.auto_stages`).
    loss : {"hinge", "bce", "wgan-gp"}
        Adversarial loss. ``"bce"`` is the non-saturating logistic loss.
    gp_weight : float
        Gradient-penalty weight for ``"wgan-gp"``.
    lr_g, lr_d : float
        Adam learning rates of generator and discriminator.
    betas : tuple of float
        Adam betas (both networks).
    batch_size : int
        Real samples per discriminator step.
    d_steps : int
        Discriminator updates per generator update (each draws a new real batch).
    ema_decay : float or None
        Decay of the generator's exponential moving average, ramped as
        ``min(ema_decay, (1 + t) / (10 + t))`` at step ``t`` so a short run is not dominated by
        the random initialisation. ``None`` disables the EMA (sampling uses the generator).
    augment : str
        Differentiable augmentation policy applied to every discriminator input, real and fake,
        in both steps (see :mod:`covergan.augment.differentiable`); ``""`` disables it.
    augment_strength : float
        Magnitude scale of the augmentation ops (0 = off).
    augment_p : float
        Per-op, per-sample probability of applying an op.
    bins_per_semitone : int
        Frequency bins per semitone of the data (``CQTConfig.bins_per_semitone``).
    lecam_weight : float
        Weight of the LeCam regulariser on discriminator outputs (Tseng et al. 2021); 0 = off.
    lecam_decay : float
        Decay of the moving averages of the discriminator outputs LeCam anchors to.
    amp : bool
        Mixed precision on CUDA (bfloat16 where supported, else float16 with gradient scaling).
        Ignored on other devices.
    channels_last : bool
        Keep convolution weights and activations in ``channels_last`` memory format (faster
        transposed convolutions on CPU and tensor cores on CUDA).
    """

    image_size: tuple[int, int] = (84, 200)
    z_dim: int = 128
    embed_dim: int = 128
    g_width: int = 16
    d_width: int = 16
    max_width: int = 256
    n_stages: int | None = None
    loss: LossName = "hinge"
    gp_weight: float = 10.0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)
    batch_size: int = 32
    d_steps: int = 1
    ema_decay: float | None = 0.999
    augment: str = DEFAULT_POLICY
    augment_strength: float = 1.0
    augment_p: float = 1.0
    bins_per_semitone: int = 1
    lecam_weight: float = 0.0
    lecam_decay: float = 0.99
    amp: bool = True
    channels_last: bool = True

    def __post_init__(self) -> None:
        check_image_size(self, 2)
        check_ints(
            self, ("z_dim", "embed_dim", "g_width", "d_width", "max_width", "batch_size", "d_steps")
        )
        check_count("GANConfig.n_stages", self.n_stages, 1, optional=True)
        if self.n_stages is not None and 2**self.n_stages > 4 * max(self.image_size):
            raise ParameterError(
                f"GANConfig.n_stages={self.n_stages} is too many for image_size={self.image_size}"
            )
        if self.loss not in _LOSSES:
            raise ParameterError(f"GANConfig.loss={self.loss!r} must be one of {list(_LOSSES)}")
        check_reals(self, ("lr_g", "lr_d"), positive=True)
        check_reals(self, ("gp_weight", "lecam_weight", "augment_strength"), positive=False)
        check_adam(self)
        if not (_is_real(self.lecam_decay) and 0.0 <= self.lecam_decay < 1.0):
            raise ParameterError(f"GANConfig.lecam_decay={self.lecam_decay!r} must be in [0, 1)")
        for name in ("amp", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"GANConfig.{name}={getattr(self, name)!r} must be a bool")
        if not isinstance(self.augment, str):
            raise ParameterError(f"GANConfig.augment={self.augment!r} must be a policy string")
        self.augmentation()  # validates policy, p and bins_per_semitone

    def augmentation(self) -> DiffAugment:
        """The :class:`~covergan.augment.differentiable.DiffAugment` this config describes."""
        return DiffAugment(
            policy=self.augment,
            strength=float(self.augment_strength),
            p=float(self.augment_p),
            bins_per_semitone=self.bins_per_semitone,
        )

    @classmethod
    def for_preset(cls, preset: str, **overrides: Any) -> GANConfig:
        """The configuration of a preset, with some fields replaced.

        Parameters
        ----------
        preset : {"default", "thesis"}
        **overrides
            Fields to change, e.g. ``lr_g=1e-4``.

        Returns
        -------
        GANConfig
        """
        _check_preset(preset)
        base: dict[str, Any] = {}
        if preset == "thesis":
            base = {
                "image_size": THESIS_IMAGE_SIZE,
                "z_dim": 100,
                "loss": "bce",
                "lr_g": 0.002,
                "lr_d": 0.002,
                "betas": (0.5, 0.999),
                "batch_size": 10,
                "ema_decay": None,
                "augment": "",
                "channels_last": False,
            }
        check_known_fields(cls, overrides)
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict of the fields (safe for ``torch.load(weights_only=True)``)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GANConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error."""
        result: GANConfig = config_from_dict(cls, data)
        return result


def _check_preset(preset: object) -> None:
    if preset not in PRESETS:
        raise ParameterError(f"preset={preset!r} must be one of {list(PRESETS)}")


def _build_modules(preset: str, n_classes: int, config: GANConfig) -> tuple[nn.Module, nn.Module]:
    if preset == "thesis":
        return ThesisGenerator(n_classes, z_dim=config.z_dim), ThesisDiscriminator(n_classes)
    generator = DCGANGenerator(
        n_classes,
        image_size=config.image_size,
        z_dim=config.z_dim,
        embed_dim=config.embed_dim,
        width=config.g_width,
        max_width=config.max_width,
        n_stages=config.n_stages,
    )
    discriminator = ProjectionDiscriminator(
        n_classes,
        image_size=config.image_size,
        width=config.d_width,
        max_width=config.max_width,
        n_stages=config.n_stages,
    )
    return generator, discriminator


_STREAM_STEP = 1
_STREAM_DATA = 2
_STREAM_AE_STEP = 3
_STREAM_AE_DATA = 4
_STREAM_AE_INIT = 5


# ----------------------------------------------------------------------------------- losses


def _d_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    if kind == "hinge":
        return torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean()
    if kind == "bce":
        return nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean()
    return fake.mean() - real.mean()  # wgan-gp (the penalty is added separately)


def _g_loss(kind: str, fake: Tensor) -> Tensor:
    if kind == "bce":
        return nn.functional.softplus(-fake).mean()
    return -fake.mean()  # hinge and wgan


# ----------------------------------------------------------------------------------- callbacks


class SampleSnapshotCallback:
    """Generate a fixed set of samples every ``every`` steps (to watch training progress).

    Under ``torchrun`` only rank 0 takes (and writes) snapshots; on the other ranks
    ``snapshots`` stays empty.

    Parameters
    ----------
    every : int
        Interval in steps.
    labels : sequence of int, optional
        Class indices to sample (conditional models).
    n : int, optional
        Number of samples (unconditional models).
    path : str or Path, optional
        If given, each snapshot is also written with :func:`torch.save` to
        ``path.format(step=step)``.
    seed : int
        Noise seed, fixed so snapshots at different steps are comparable.

    Attributes
    ----------
    snapshots : list of (int, torch.Tensor [shape=(n, 1, H, W)])
        ``(step, samples)`` pairs in the order they were taken.
    """

    def __init__(
        self,
        every: int,
        labels: Sequence[int] | Tensor | None = None,
        *,
        n: int | None = None,
        path: str | os.PathLike[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.every = check_count("every", every, 1)
        self.labels = labels
        self.n = n
        self.path = None if path is None else str(path)
        self.seed = seed
        self.snapshots: list[tuple[int, Tensor]] = []

    def on_step_end(self, gan: ConditionalDCGAN, step: int, logs: dict[str, float]) -> None:
        """Take a snapshot when ``step`` is a multiple of ``every`` (main process only)."""
        if step % self.every or not is_main_process():
            return
        samples = gan.generate(self.labels, n=self.n, generator=self.seed)
        self.snapshots.append((step, samples))
        if self.path is not None:
            atomic_torch_save(samples, self.path.format(step=step))


# ----------------------------------------------------------------------------------- the model


class ConditionalDCGAN(AdversarialModel):
    """A class-conditional GAN over CQT windows (or any one-channel image).

    Parameters
    ----------
    n_classes : int
        Number of classes (songs); 0 gives an unconditional GAN.
    preset : {"default", "thesis"}
        Architecture and recipe (see ``docs/gan.md``). The thesis preset only supports 84 x 200.
    generator : nn.Module, optional
        A user generator satisfying :class:`~covergan.models.GeneratorModule`; replaces the
        preset's. It must have a ``z_dim`` attribute.
    discriminator : nn.Module, optional
        A user discriminator satisfying :class:`~covergan.models.DiscriminatorModule`.
    config : GANConfig, optional
        Hyper-parameters; default ``GANConfig.for_preset(preset)``.
    classes : sequence of str or int, optional
        The song id of each class index (``len == n_classes``), stored in checkpoints.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU) or an explicit device.
    seed : int, optional
        Seeds the weight initialisation (without touching torch's global RNG) and is the default
        training seed of :meth:`fit`. ``None`` initialises from torch's global RNG.

    Attributes
    ----------
    generator, discriminator : nn.Module
        The trained networks.
    generator_ema : nn.Module or None
        Moving average of the generator used for sampling (``None`` if ``ema_decay`` is None).
    step : int
        Generator updates done so far.
    history : dict of str to list of float
        Per-step logs: ``loss_d``, ``loss_g``, ``d_real``, ``d_fake`` (mean logits) and, when
        active, ``lecam`` and ``gp``.

    Raises
    ------
    ParameterError
        Invalid arguments, or the dry run at construction found that the generator's output does
        not have shape ``(B, 1, H, W)`` with ``(H, W) = config.image_size`` or does not fit the
        discriminator.

    Examples
    --------
    >>> gan = ConditionalDCGAN(70, device="cpu", seed=0)
    >>> gan.fit(dataset, steps=2000)                    # doctest: +SKIP
    >>> fakes = gan.generate([3, 3, 5], generator=0)    # [3, 1, 84, 200] in [-1, 1]
    """

    config: GANConfig

    def __init__(
        self,
        n_classes: int,
        *,
        preset: str = "default",
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        config: GANConfig | None = None,
        classes: Sequence[str | int] | None = None,
        device: str | torch.device = "auto",
        seed: int | None = None,
    ) -> None:
        check_count("n_classes", n_classes, 0)
        _check_preset(preset)
        if config is None:
            config = GANConfig.for_preset(preset)
        elif not isinstance(config, GANConfig):
            raise ParameterError(f"config must be a GANConfig, got {type(config).__name__}")
        check_count("seed", seed, 0, optional=True)
        self.n_classes = int(n_classes)
        self.preset = preset
        self.config = config
        self.classes: list[str | int] | None = _check_classes(classes, self.n_classes)
        self.device = resolve_device(device)
        self.seed = None if seed is None else int(seed)
        self.custom_generator = generator is not None
        self.custom_discriminator = discriminator is not None
        self.generator, self.discriminator = _networks(
            preset, self.n_classes, config, generator, discriminator, self.seed
        )
        self._format = torch.channels_last if config.channels_last else torch.contiguous_format
        for module in (self.generator, self.discriminator):
            module.to(self.device)
            module.to(memory_format=self._format)
        check_pair(
            self.generator,
            self.discriminator,
            z_dim=self.z_dim,
            labels=_dry_run_labels(self.n_classes, self.device),
            image_size=self.image_size,
            device=self.device,
        )
        self._init_training(config)
        self._amp_dtype = _amp_dtype(config, self.device)
        use_scaler = self._amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.batches_seen = 0
        # moving averages of D's mean output on real and fake, the LeCam anchors
        self._lecam = torch.zeros(2, dtype=torch.float64)
        self._warned_range = False  # warned once per fit that data is outside [-1, 1]

    # ------------------------------------------------------------------ properties and checks

    @property
    def z_dim(self) -> int:
        """Noise length of the generator."""
        return int(cast(GeneratorModule, self.generator).z_dim)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of a sample."""
        return self.config.image_size

    def __repr__(self) -> str:
        return (
            f"ConditionalDCGAN(n_classes={self.n_classes}, preset={self.preset!r}, "
            f"image_size={self.image_size}, step={self.step}, device={str(self.device)!r})"
        )

    # ------------------------------------------------------------------ training

    def fit(
        self,
        data: Dataset[Any] | DataLoader[Any],
        *,
        steps: int | None = None,
        epochs: float | None = None,
        batch_size: int | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        seed: int | None = None,
        workers: int = 0,
    ) -> ConditionalDCGAN:
        """Train; calling ``fit`` again continues where the last call (or checkpoint) stopped.

        Parameters
        ----------
        data : Dataset or DataLoader
            Items (or batches) ``(x, label)`` with ``x : torch.Tensor [shape=(1, H, W)]``
            (batches ``[B, 1, H, W]``) in model space ``[-1, 1]`` (attach a ``CQTNormalizer``
            as the dataset's transform) and integer class indices; a bare ``x`` is accepted for
            unconditional models. With a Dataset, the data order is a seeded permutation per
            epoch (a dataset's ``set_epoch`` is called, so ``CQTDataset`` draws new random
            crops every epoch) and resuming is exact. A DataLoader is used as is (its order,
            its workers); resuming then restarts it from its beginning.
        steps : int, optional
            Generator updates to run in this call.
        epochs : float, optional
            Alternatively, passes over the data (a Dataset's length / global batch size batches
            each, ``d_steps`` batches per step). Give exactly one of ``steps`` and ``epochs``.
        batch_size : int, optional
            Samples per rank and discriminator step; default ``config.batch_size``. Under
            ``torchrun`` the global batch is ``batch_size * world_size``. Ignored for a
            DataLoader.
        callbacks : sequence of Callback
            Each gets ``on_step_end(gan, step, logs)`` after every step (on every rank).
        progress : bool
            Show a tqdm bar with the losses (on rank 0 only).
        seed : int, optional
            Training seed (noise, augmentation, data order). Default: the constructor's seed, or
            the seed of the previous ``fit`` / the checkpoint, or a fresh random one (kept in
            ``self.seed`` so a run can be resumed exactly). Under ``torchrun``, rank 0's seed
            is used by all ranks.
        workers : int
            Processes that read a Dataset's batches ahead of the training step (0: this
            process); the batches are the same either way. Ignored for a DataLoader.

        Returns
        -------
        ConditionalDCGAN
            ``self``.

        Raises
        ------
        ParameterError
            Bad ``steps``/``epochs``/``batch_size``, samples of the wrong shape, or labels
            outside ``[0, n_classes)``.
        DatasetError
            A dataset smaller than one batch, or an empty DataLoader.

        Warns
        -----
        CoverGANWarning
            When inputs fall outside ``[-1, 1]`` (the data is not in model space), or under
            ``torchrun`` when a DataLoader has no ``DistributedSampler`` (every rank would
            then see the same batches).

        Notes
        -----
        In an initialised :mod:`torch.distributed` process group with more than one rank
        (``torchrun``, :func:`init_distributed`), training is data-parallel: ``fit`` first
        copies rank 0's weights to every rank; each rank then draws its own noise and, for a
        Dataset, takes a disjoint shard of each epoch's permutation (a DataLoader must shard
        itself, with a ``DistributedSampler``); gradients are averaged over the ranks before
        every optimiser step, and batch-norm statistics and the logged losses after it. Every
        rank thus ends each step with the same weights, EMA, optimiser state and history, and a
        checkpoint written by any rank loads in a single process. Resuming is exact with the
        same world size. Every rank must call ``fit`` with the same arguments.
        """
        return _fit(self, data, steps, epochs, batch_size, callbacks, progress, seed, workers)

    def pretrain_autoencoder(
        self,
        data: Dataset[Any] | DataLoader[Any],
        *,
        steps: int,
        batch_size: int | None = None,
        lr: float = 1e-3,
        kl_weight: float = 0.1,
        progress: bool = True,
        seed: int | None = None,
        workers: int = 0,
    ) -> ConditionalDCGAN:
        """Initialise the generator as the decoder of a conditional VAE (BAGAN-style).

        A :class:`~covergan.models.ConvEncoder` maps each real window to a Gaussian over the
        noise; the generator decodes a sample of it with the window's label. The loss is the
        per-window L1 reconstruction error plus ``kl_weight`` times the KL divergence to
        ``N(0, I)`` (which keeps the codes near the prior the GAN samples from). Reconstruction
        gives the generator a dense, per-song signal, so it learns each song's spectral layout
        far sooner than from the discriminator alone. The encoder is discarded afterwards, the
        EMA generator is reset to the result, and :meth:`fit` then trains adversarially as
        usual. Call it once, before :meth:`fit` (it is not checkpointed mid-way). Under
        ``torchrun`` it is data-parallel like :meth:`fit`.

        Parameters
        ----------
        data : Dataset or DataLoader
            As in :meth:`fit`.
        steps : int
            Autoencoder updates.
        batch_size : int, optional
            Default ``config.batch_size``; ignored for a DataLoader.
        lr : float
            Adam learning rate of encoder and generator (betas (0.5, 0.999)).
        kl_weight : float
            Weight of the KL term (per window, summed over the noise dimensions; the L1 term
            is summed over the window's cells).
        progress : bool
            Show a tqdm bar.
        seed, workers
            As in :meth:`fit`.

        Returns
        -------
        ConditionalDCGAN
            ``self``; ``self.pretrain_history`` holds ``ae_l1`` (mean absolute error per cell)
            and ``ae_kl`` per step.

        Raises
        ------
        ParameterError
            Bad arguments, or the model has already been trained adversarially.
        """
        return _pretrain(self, data, steps, batch_size, lr, kl_weight, progress, seed, workers)

    # ------------------------------------------------------------------ sampling

    def generate(
        self,
        labels: Sequence[int] | Tensor | None = None,
        *,
        n: int | None = None,
        generator: torch.Generator | int | None = None,
        truncation: float | None = None,
        batch_size: int = 256,
        use_ema: bool = True,
    ) -> Tensor:
        """Sample from the generator (EMA weights, eval mode, no gradients, in batches).

        Parameters
        ----------
        labels : sequence of int or torch.LongTensor [shape=(n,)], optional
            Class index of each sample (conditional models).
        n : int, optional
            Number of samples (unconditional models; for conditional ones it must equal
            ``len(labels)`` if given).
        generator : torch.Generator or int, optional
            Noise source or its seed; the noise is drawn on the CPU (for an int seed), so a seed
            gives the same noise on every device. ``None`` uses torch's global generator.
        truncation : float, optional
            Truncation trick: noise entries with ``|z| > truncation`` are redrawn. Smaller is
            closer to the mode, less diverse.
        batch_size : int
            Samples per forward pass.
        use_ema : bool
            Use the EMA generator (when there is one); ``False`` samples the raw generator.

        Returns
        -------
        torch.Tensor [shape=(n, 1, H, W)]
            float32 on the CPU, in model space ``[-1, 1]``.
        """
        return _generate(self, labels, n, generator, truncation, batch_size, use_ema)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`save` writes, as plain containers and tensors."""
        return {
            **header(CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION),
            "preset": self.preset,
            "n_classes": self.n_classes,
            "classes": None if self.classes is None else list(self.classes),
            "config": self.config.to_dict(),
            "custom_generator": self.custom_generator,
            "custom_discriminator": self.custom_discriminator,
            **self._training_state(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "batches_seen": self.batches_seen,
            "lecam": self._lecam.clone(),
        }

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        n_classes: int | None = None,
        device: str | torch.device = "auto",
    ) -> ConditionalDCGAN:
        """Rebuild a model from a checkpoint written by :meth:`save`.

        Only tensors and plain containers are read (``torch.load(weights_only=True)``), so a
        crafted file cannot run code. Preset modules are rebuilt from the stored config; a model
        trained with user-supplied modules needs them passed again (freshly constructed).

        Parameters
        ----------
        path : str or Path
            Checkpoint file.
        generator, discriminator : nn.Module, optional
            The user modules, when the checkpoint was trained with custom ones.
        n_classes : int, optional
            Expected number of classes; a different count in the file is an error.
        device : str or torch.device
            Where to put the model (``"auto"``: CUDA, MPS, CPU).

        Returns
        -------
        ConditionalDCGAN

        Raises
        ------
        CheckpointError
            Missing, truncated or foreign file; a file with non-tensor objects (e.g. a malicious
            pickle); a newer or unknown ``format_version``; a class count other than
            ``n_classes``; missing custom modules; weights that do not fit the architecture.
        """
        path = Path(path)
        return cls.from_state_dict(
            read_checkpoint(path),
            generator=generator,
            discriminator=discriminator,
            n_classes=n_classes,
            device=device,
            source=str(path),
        )

    @classmethod
    def from_state_dict(
        cls,
        state: dict[str, Any],
        *,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        n_classes: int | None = None,
        device: str | torch.device = "auto",
        source: str = "the state dict",
    ) -> ConditionalDCGAN:
        """Rebuild a model from :meth:`state_dict` output (e.g. embedded in another file).

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned (after a ``weights_only`` round trip).
        generator, discriminator, n_classes, device
            As in :meth:`load`.
        source : str
            Where ``state`` came from, for error messages.

        Returns
        -------
        ConditionalDCGAN

        Raises
        ------
        CheckpointError
            As in :meth:`load`, for everything but reading the file.
        """
        return _from_state(cls, state, generator, discriminator, n_classes, device, source)


def _pretrain(
    gan: ConditionalDCGAN,
    data: Dataset[Any] | DataLoader[Any],
    steps: int,
    batch_size: int | None,
    lr: float,
    kl_weight: float,
    progress: bool,
    seed: int | None,
    workers: int,
) -> ConditionalDCGAN:
    """:meth:`ConditionalDCGAN.pretrain_autoencoder`."""
    check_pretrain(gan.step, "GAN", steps, lr, kl_weight)
    batch_size = _batch_size(gan, batch_size)
    gan._set_training_seed(seed)
    rank, world = _rank_world()
    batches_per_epoch(data, batch_size, world)
    cfg = gan.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cast(int, gan.seed), _STREAM_AE_INIT))
        encoder = ConvEncoder(
            image_size=cfg.image_size,
            z_dim=gan.z_dim,
            width=cfg.d_width,
            max_width=cfg.max_width,
            n_stages=cfg.n_stages,
        )
    encoder.to(gan.device)
    encoder.to(memory_format=gan._format)
    G = gan.generator
    params = [*encoder.parameters(), *(p for p in G.parameters() if p.requires_grad)]
    optimiser = torch.optim.Adam(params, lr=float(lr), betas=(0.5, 0.999))
    scaler = torch.amp.GradScaler("cuda", enabled=gan._amp_dtype == torch.float16)
    batches = batch_stream(
        data, batch_size, cast(int, gan.seed), 0, steps, _STREAM_AE_DATA, workers
    )
    gan._warned_range = False
    G.train()
    ranked = rank_key()
    if world > 1:
        _broadcast_modules([G])

    def one_step(step: int) -> dict[str, float]:
        x, labels = _prepare_batch(gan, next(batches))
        x = x.contiguous(memory_format=gan._format)
        gen = torch.Generator(device=gan.device)
        gen.manual_seed(derive_seed(cast(int, gan.seed), _STREAM_AE_STEP, step, *ranked))
        with gan._autocast():
            mu, log_var = encoder(x)
            mu, log_var = mu.float(), log_var.float()
            eps = torch.randn(mu.shape, generator=gen, device=gan.device)
            loss, logs = vae_loss(mu, log_var, eps, lambda z: G(z, labels), x, kl_weight)
        _update(optimiser, scaler, loss, params, world)
        if world > 1:
            _average_buffers([encoder, G], world)
            logs = _average_logs(logs, world, gan.device)
        return logs

    gan._loop(steps, one_step, desc="autoencoder", progress=progress and rank == 0, pretrain=True)
    gan._reset_ema()
    return gan


def _prepare_batch(gan: ConditionalDCGAN, batch: Any) -> tuple[Tensor, Tensor | None]:
    x, labels = _split_batch(batch, gan.image_size)
    x = x.to(gan.device, dtype=torch.float32, non_blocking=True)
    if not gan._warned_range:
        lo, hi = torch.aminmax(x)
        if lo < -1 - _RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
            gan._warned_range = True
            warnings.warn(
                f"training samples span [{float(lo):.3g}, {float(hi):.3g}], outside the model "
                "space [-1, 1] the generator's tanh can reach; attach a CQTNormalizer to the "
                "dataset (transform=) to map features into model space",
                CoverGANWarning,
                stacklevel=4,
            )
    if gan.n_classes == 0:
        return x, None
    if labels is None:
        raise ParameterError(
            f"a conditional model (n_classes={gan.n_classes}) needs (x, label) items"
        )
    labels = torch.as_tensor(labels)
    _check_labels(gan, labels)
    return x, labels.to(gan.device, dtype=torch.long).reshape(-1)


def _train_step(
    gan: ConditionalDCGAN, batches: list[tuple[Tensor, Tensor | None]]
) -> dict[str, float]:
    cfg = gan.config
    G, D = gan.generator, gan.discriminator
    G.train()
    D.train()
    world = _rank_world()[1]
    ranked = rank_key()  # each rank draws its own noise
    gen = torch.Generator(device=gan.device)
    gen.manual_seed(derive_seed(cast(int, gan.seed), _STREAM_STEP, gan.step, *ranked))
    logs: dict[str, float] = {}

    fake = torch.empty(0)
    labels: Tensor | None = None
    for j, (real, labels) in enumerate(batches):
        last = j == len(batches) - 1
        z = torch.randn(real.shape[0], gan.z_dim, generator=gen, device=gan.device)
        with gan._autocast():
            if last:  # kept with its graph: the generator step reuses it
                fake = G(z, labels)
            else:
                with torch.no_grad():
                    fake = G(z, labels)
            real_in = _d_input(gan, real, gen)
            fake_in = _d_input(gan, fake.detach(), gen)
            d_real = D(real_in, labels).float().reshape(-1)
            d_fake = D(fake_in, labels).float().reshape(-1)
            loss_d = _d_loss(cfg.loss, d_real, d_fake)
        if cfg.lecam_weight > 0:
            lecam = _lecam_term(gan._lecam, d_real, d_fake, gan.config.lecam_decay)
            loss_d = loss_d + cfg.lecam_weight * lecam
            logs["lecam"] = float(lecam.detach())
        if cfg.loss == "wgan-gp":
            gp = _gradient_penalty(D, real_in, fake_in, labels, gen, gan._format)
            loss_d = loss_d + cfg.gp_weight * gp
            logs["gp"] = float(gp.detach())
        _update(gan.opt_d, gan.scaler_d, loss_d, list(D.parameters()), world)

    trainable = [p for p in D.parameters() if p.requires_grad]
    for p in trainable:  # the generator step needs gradients w.r.t. D's input only
        p.requires_grad_(False)
    try:
        with gan._autocast():
            g_out = D(_d_input(gan, fake, gen), labels).float().reshape(-1)
            loss_g = _g_loss(cfg.loss, g_out)
        _update(gan.opt_g, gan.scaler_g, loss_g, list(G.parameters()), world)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    if world > 1:  # batch-norm statistics saw this rank's data only
        _average_buffers([G, D], world)
    gan._update_ema()

    logs["loss_d"] = float(loss_d.detach())
    logs["loss_g"] = float(loss_g.detach())
    logs["d_real"] = float(d_real.detach().mean())
    logs["d_fake"] = float(d_fake.detach().mean())
    if world > 1:
        logs = _average_logs(logs, world, gan.device)
    return logs


def _d_input(gan: ConditionalDCGAN, x: Tensor, generator: torch.Generator) -> Tensor:
    """``x`` as the discriminator sees it: augmented, in the model's memory format."""
    return gan.augment(x, generator).contiguous(memory_format=gan._format)


def _update(
    optimiser: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss: Tensor,
    params: Sequence[Tensor],
    world: int,
) -> None:
    """One optimiser step on ``loss`` (scaled under float16 autocast), the gradients of
    ``params`` averaged over the ranks first."""
    optimiser.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
    if world > 1:
        _average_gradients(params, world)
    scaler.step(optimiser)
    scaler.update()


def _generate(
    gan: ConditionalDCGAN,
    labels: Sequence[int] | Tensor | None,
    n: int | None,
    generator: torch.Generator | int | None,
    truncation: float | None,
    batch_size: int,
    use_ema: bool,
) -> Tensor:
    """:meth:`ConditionalDCGAN.generate`."""
    label_t: Tensor | None = None
    if gan.n_classes > 0:
        if labels is None:
            raise ParameterError(f"a conditional model (n_classes={gan.n_classes}) needs labels")
        label_t = torch.as_tensor(labels).reshape(-1)
        _check_labels(gan, label_t)
        label_t = label_t.long()
        count = label_t.numel()
        if n is not None and n != count:
            raise ParameterError(f"n={n} does not match len(labels)={count}")
    else:
        if labels is not None:
            raise ParameterError("an unconditional model (n_classes=0) takes n=, not labels")
        count = check_count("n", n, 0)
    check_count("batch_size", batch_size, 1)
    check_truncation(truncation)
    gen = noise_source(generator)
    z_device = gen.device if gen is not None else torch.device("cpu")
    z = truncated_normal(count, gan.z_dim, gen, z_device, truncation)

    def forward(module: nn.Module, start: int, stop: int) -> Tensor:
        labels = None if label_t is None else label_t[start:stop].to(gan.device)
        out: Tensor = module(z[start:stop].to(gan.device), labels)
        return out

    return gan._sample(count, batch_size, use_ema, forward)


def _from_state(
    cls: type[ConditionalDCGAN],
    state: dict[str, Any],
    generator: nn.Module | None,
    discriminator: nn.Module | None,
    n_classes: int | None,
    device: str | torch.device,
    source: str,
) -> ConditionalDCGAN:
    """:meth:`ConditionalDCGAN.from_state_dict`."""
    ckpt = _validate_state(state, source)
    stored_classes = ckpt["n_classes"]
    _check_stored_model(ckpt, n_classes, generator, discriminator, source)
    device = resolve_device(device)  # a machine without it is not a bad checkpoint
    try:
        config = GANConfig.from_dict(ckpt["config"])
        gan = cls(
            stored_classes,
            preset=ckpt["preset"],
            generator=generator,
            discriminator=discriminator,
            config=config,
            classes=ckpt["classes"],
            device=device,
            seed=0,  # placeholder init; every weight is overwritten below
        )
    except ParameterError as exc:
        raise CheckpointError(f"{source}: the stored configuration is invalid: {exc}") from exc
    try:
        gan._load_training_state(ckpt, source)
        for scaler, key in ((gan.scaler_g, "scaler_g"), (gan.scaler_d, "scaler_d")):
            if ckpt[key] and scaler.is_enabled():  # empty when saved without fp16 scaling
                scaler.load_state_dict(ckpt[key])
    except CheckpointError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{source}: the stored weights do not fit the model's architecture: {exc}"
        ) from exc
    gan.batches_seen = int(ckpt["batches_seen"])
    gan._lecam = ckpt["lecam"].to(torch.float64).cpu()
    return gan


def _fit(
    gan: ConditionalDCGAN,
    data: Dataset[Any] | DataLoader[Any],
    steps: int | None,
    epochs: float | None,
    batch_size: int | None,
    callbacks: Sequence[Callback],
    progress: bool,
    seed: int | None,
    workers: int,
) -> ConditionalDCGAN:
    """:meth:`ConditionalDCGAN.fit`."""
    if (steps is None) == (epochs is None):
        raise ParameterError("give exactly one of steps= and epochs=")
    if steps is not None and (not _is_int(steps) or steps < 0):
        raise ParameterError(f"steps={steps!r} must be a non-negative integer")
    if epochs is not None and (not _is_real(epochs) or not epochs > 0):
        raise ParameterError(f"epochs={epochs!r} must be a positive number")
    batch_size = _batch_size(gan, batch_size)
    gan._set_training_seed(seed)
    rank, world = _rank_world()
    d_steps = gan.config.d_steps
    per_epoch = batches_per_epoch(data, batch_size, world)
    if steps is None:
        steps = math.ceil(cast(float, epochs) * per_epoch / d_steps)
    if steps == 0:
        return gan
    if world > 1:
        _broadcast_modules([gan.generator, gan.discriminator, gan.generator_ema])
    batches = batch_stream(
        data,
        batch_size,
        cast(int, gan.seed),
        gan.batches_seen,
        steps * d_steps,
        _STREAM_DATA,
        workers,
    )

    gan._warned_range = False

    def one_step(_: int) -> dict[str, float]:
        real = [_prepare_batch(gan, next(batches)) for _ in range(d_steps)]
        gan.batches_seen += d_steps
        return _train_step(gan, real)

    gan._loop(
        steps, one_step, desc="covergan", progress=progress and rank == 0, callbacks=callbacks
    )
    return gan


def _batch_size(gan: ConditionalDCGAN, batch_size: int | None) -> int:
    """``batch_size`` checked, or the config's when ``None``."""
    return check_count("batch_size", gan.config.batch_size if batch_size is None else batch_size, 1)


def _dry_run_labels(n_classes: int, device: torch.device) -> Tensor | None:
    """Labels of the construction-time dry run (``None`` for an unconditional model)."""
    return None if n_classes == 0 else torch.zeros(_DRY_RUN_BATCH, dtype=torch.long, device=device)


def _check_labels(gan: ConditionalDCGAN, labels: Tensor) -> None:
    """Integer class indices in ``[0, n_classes)``."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ParameterError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= gan.n_classes):
        raise ParameterError(
            f"labels must be in [0, {gan.n_classes - 1}] for n_classes={gan.n_classes}, "
            f"got values in [{int(labels.min())}, {int(labels.max())}]"
        )


def _split_batch(batch: Any, image_size: tuple[int, int]) -> tuple[Tensor, Any]:
    """``(x [B, 1, H, W], labels or None)`` of a batch ``(x, labels)``, ``(x,)`` or ``x``."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x, labels = batch[0], batch[1]
    elif isinstance(batch, (tuple, list)) and len(batch) == 1:
        x, labels = batch[0], None
    else:
        x, labels = batch, None
    if not isinstance(x, Tensor):
        x = torch.as_tensor(np.asarray(x))
    height, width = image_size
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, height, width):
        raise ParameterError(
            f"training samples must have shape (1, {height}, {width}) "
            f"(config.image_size={image_size}), got a batch of shape {tuple(x.shape)}"
        )
    return x, labels


def _networks(
    preset: str,
    n_classes: int,
    config: GANConfig,
    generator: nn.Module | None,
    discriminator: nn.Module | None,
    seed: int | None,
) -> tuple[nn.Module, nn.Module]:
    """The user's modules, checked, or the preset's (initialised from ``seed`` when given,
    without touching the global RNG)."""
    for name, module in (("generator", generator), ("discriminator", discriminator)):
        if module is not None and not isinstance(module, nn.Module):
            raise ParameterError(f"{name} must be a torch.nn.Module, got {type(module)}")
    if generator is not None and not (
        isinstance(generator, GeneratorModule) and _is_int(generator.z_dim)
    ):
        raise ParameterError("a custom generator needs an integer attribute `z_dim`")
    if generator is not None and discriminator is not None:
        return generator, discriminator
    if preset == "thesis" and config.image_size != THESIS_IMAGE_SIZE:
        raise ParameterError(
            f"the thesis architecture only supports image_size={THESIS_IMAGE_SIZE}, "
            f"got {config.image_size}; use preset='default' for other sizes"
        )
    init_rng: AbstractContextManager[Any] = nullcontext()
    if seed is not None:
        init_rng = torch.random.fork_rng(devices=[])
    with init_rng:
        if seed is not None:
            torch.manual_seed(seed)
        built_g, built_d = _build_modules(preset, n_classes, config)
    return (
        generator if generator is not None else built_g,
        discriminator if discriminator is not None else built_d,
    )


def _amp_dtype(config: GANConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: bfloat16 (else float16) on CUDA with ``config.amp``, else none."""
    if not (config.amp and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _lecam_term(anchors: Tensor, d_real: Tensor, d_fake: Tensor, decay: float) -> Tensor:
    """LeCam regulariser of the discriminator's outputs against the moving ``anchors`` (mean
    real and fake outputs, float64 ``[2]``), which it then updates in place (over the global
    batch under ``torchrun``)."""
    ema_real, ema_fake = float(anchors[0]), float(anchors[1])
    term = torch.relu(d_real - ema_fake).pow(2).mean() + torch.relu(ema_real - d_fake).pow(2).mean()
    with torch.no_grad():
        means = torch.stack([d_real.mean(), d_fake.mean()])
        world = _rank_world()[1]
        if world > 1:
            dist.all_reduce(means)
            means = means / world
        anchors.mul_(decay).add_(means.double().cpu(), alpha=1 - decay)
    return term


def _gradient_penalty(
    discriminator: nn.Module,
    real: Tensor,
    fake: Tensor,
    labels: Tensor | None,
    gen: torch.Generator,
    memory_format: torch.memory_format,
) -> Tensor:
    """WGAN-GP: the discriminator's gradient norm at random mixes of real and fake, off 1."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=real.device)
    mixed = (eps * real.float() + (1 - eps) * fake.float()).detach().requires_grad_(True)
    out = discriminator(mixed.contiguous(memory_format=memory_format), labels)
    (grad,) = torch.autograd.grad(out.float().sum(), mixed, create_graph=True)
    penalty: Tensor = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
    return penalty


def _check_stored_model(
    ckpt: dict[str, Any],
    n_classes: int | None,
    generator: nn.Module | None,
    discriminator: nn.Module | None,
    source: str,
) -> None:
    """The caller's ``n_classes`` and custom modules fit the stored model."""
    if n_classes is not None and n_classes != ckpt["n_classes"]:
        raise CheckpointError(
            f"{source}: the checkpoint has n_classes={ckpt['n_classes']}, expected {n_classes}"
        )
    for name, module in (("generator", generator), ("discriminator", discriminator)):
        if ckpt[f"custom_{name}"] and module is None:
            raise CheckpointError(
                f"{source} was trained with a user-supplied {name}; pass {name}= to load it"
            )


_REQUIRED_KEYS = {
    "preset": str,
    "n_classes": int,
    "config": dict,
    "custom_generator": bool,
    "custom_discriminator": bool,
    "generator": dict,
    "discriminator": dict,
    "opt_g": dict,
    "opt_d": dict,
    "scaler_g": dict,
    "scaler_d": dict,
    "step": int,
    "batches_seen": int,
    "lecam": Tensor,
    "history": dict,
}


def _validate_state(state: object, path: str) -> dict[str, Any]:
    """Check the layout of a checkpoint dict; ``path`` names its source in messages."""
    ckpt = check_header(state, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, path, "GAN")
    for key, kind in _REQUIRED_KEYS.items():
        if not isinstance(ckpt.get(key), kind):
            raise CheckpointError(f"{path} is missing field {key!r} or it has the wrong type")
    if ckpt["preset"] not in PRESETS:
        raise CheckpointError(f"{path} names an unknown preset {ckpt['preset']!r}")
    classes = ckpt.get("classes")
    if classes is not None and (not isinstance(classes, list) or len(classes) != ckpt["n_classes"]):
        count = len(classes) if isinstance(classes, list) else "?"
        raise CheckpointError(
            f"{path}: the class list has {count} entries but n_classes={ckpt['n_classes']}"
        )
    return ckpt


def _check_classes(classes: Sequence[str | int] | None, n_classes: int) -> list[str | int] | None:
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)):
        raise ParameterError("classes must be a sequence of song ids, not a single string")
    out = list(classes)
    if len(out) != n_classes:
        raise ParameterError(f"classes has {len(out)} entries but n_classes={n_classes}")
    for c in out:
        if not isinstance(c, (str, int)) or isinstance(c, bool):
            raise ParameterError(f"class ids must be str or int, got {c!r}")
    if len(set(out)) != len(out):
        raise ParameterError("classes contains duplicate ids")
    return out
