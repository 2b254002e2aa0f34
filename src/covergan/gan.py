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

import copy
import logging
import math
import os
import secrets
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate
from torch.utils.data.distributed import DistributedSampler

from covergan._checks import (
    check_adam,
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
from covergan._progress import progress_bar
from covergan.augment.differentiable import DEFAULT_POLICY, DiffAugment
from covergan.errors import (
    CheckpointError,
    CoverGANWarning,
    DatasetError,
    ParameterError,
)
from covergan.models.base import GeneratorModule
from covergan.models.dcgan import ConvEncoder, DCGANGenerator, ProjectionDiscriminator
from covergan.models.thesis import THESIS_IMAGE_SIZE, ThesisDiscriminator, ThesisGenerator

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
        if self.n_stages is not None and (not _is_int(self.n_stages) or self.n_stages < 1):
            raise ParameterError(
                f"GANConfig.n_stages={self.n_stages!r} must be a positive integer or None"
            )
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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into CUDA if available, else MPS, else CPU; pass other values through.

    In a :mod:`torch.distributed` process group, ``"auto"`` on a CUDA machine is this process's
    own GPU, ``cuda:LOCAL_RANK`` (the current CUDA device when ``LOCAL_RANK`` is not set).

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` or anything :class:`torch.device` accepts.

    Returns
    -------
    torch.device
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            if _distributed():
                local = os.environ.get("LOCAL_RANK")
                index = int(local) if local is not None else torch.cuda.current_device()
                return torch.device("cuda", index)
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"device={device!r} is not a valid torch device or 'auto'") from exc


# ----------------------------------------------------------------------------------- distributed


def _distributed() -> bool:
    """Whether a default :mod:`torch.distributed` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def _rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    if _distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """Whether this process is rank 0 of the process group (always true without one).

    Use it to guard what only one process should do under ``torchrun``: saving a model
    (``gan.save``, ``augmenter.save``), writing reports, printing.

    Returns
    -------
    bool
    """
    return _rank_world()[0] == 0


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes; do nothing outside ``torchrun``.

    Reads the ``env://`` variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``). On a CUDA machine it first makes ``cuda:LOCAL_RANK`` the
    current device, so ``device="auto"`` gives each process its own GPU. Without ``RANK`` and
    ``WORLD_SIZE`` in the environment (a plain ``python train.py``) it returns ``(0, 1)`` and
    initialises nothing, so one script runs both ways; with a group already initialised it only
    reports it. Call ``torch.distributed.destroy_process_group()`` at the end of the script.

    Parameters
    ----------
    backend : str, optional
        ``"nccl"`` or ``"gloo"``; default ``"nccl"`` when CUDA is available, else ``"gloo"``.

    Returns
    -------
    rank : int
        This process's rank (0 is the one that writes checkpoints and logs).
    world_size : int
        Number of processes.

    Raises
    ------
    ParameterError
        Under ``torchrun``, but this torch build lacks :mod:`torch.distributed`.
    """
    if _distributed():
        return _rank_world()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    if not dist.is_available():
        raise ParameterError("this torch build has no torch.distributed; run without torchrun")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend or ("nccl" if cuda else "gloo"))
    return _rank_world()


def _flat_collective(tensors: Sequence[Tensor], world: int, *, broadcast: bool = False) -> None:
    """Average floating ``tensors`` over the ranks in place, or copy rank 0's values to all.

    Tensors are packed into one flat buffer per (dtype, device), so a step costs one collective
    per buffer rather than one per tensor.
    """
    groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    with torch.no_grad():
        for group in groups.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            if broadcast:
                dist.broadcast(flat, src=0)
            else:
                dist.all_reduce(flat)
                flat.div_(world)
            offset = 0
            for t in group:
                t.copy_(flat[offset : offset + t.numel()].view(t.shape))
                offset += t.numel()


def _average_gradients(params: Sequence[Tensor], world: int) -> None:
    """Average the gradients of ``params`` over the ranks (what DistributedDataParallel does).

    A parameter with a gradient on some rank but not on another gets a zero gradient there;
    one with no gradient anywhere keeps ``grad=None`` (Adam then skips it, as in one process).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    present = torch.tensor(
        [float(p.grad is not None) for p in params], dtype=torch.float32, device=params[0].device
    )
    dist.all_reduce(present)
    grads = []
    for p, count in zip(params, present.tolist(), strict=True):
        if count > 0:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    _flat_collective(grads, world)


def _average_buffers(modules: Sequence[nn.Module], world: int) -> None:
    """Average floating buffers (batch-norm running statistics) over the ranks."""
    buffers = [b for m in modules for b in m.buffers() if b.is_floating_point()]
    _flat_collective(buffers, world)


def _broadcast_modules(modules: Sequence[nn.Module | None]) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    tensors = [t for m in modules if m is not None for t in (*m.parameters(), *m.buffers())]
    _flat_collective(tensors, 1, broadcast=True)


def _average_logs(logs: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    """Mean of each logged value over the ranks (every rank logs the same keys)."""
    keys = sorted(logs)
    values = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(keys, (values / world).tolist(), strict=True))


def _comm_device() -> torch.device:
    """Where small tensors for collectives live: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _agree_seed(seed: int) -> int:
    """Rank 0's ``seed`` on every rank (``seed`` itself without a process group)."""
    if _rank_world()[1] == 1:
        return seed
    value = torch.tensor([seed], dtype=torch.int64, device=_comm_device())
    dist.broadcast(value, src=0)
    return int(value.item())


@torch.no_grad()
def _ema_step(ema: nn.Module | None, model: nn.Module, step: int, decay: float | None) -> None:
    """Move ``ema``'s parameters towards ``model``'s with the ramped decay
    ``min(decay, (1 + step) / (10 + step))`` and copy its buffers; no-op without an EMA."""
    if ema is None or decay is None:
        return
    rate = min(decay, (1 + step) / (10 + step))
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - rate)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def _derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seed, stream, counter)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


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


class Callback(Protocol):
    """Something called after every training step of :meth:`ConditionalDCGAN.fit`.

    Under ``torchrun`` it is called on every rank (with identical weights and logs); guard
    anything that writes with :func:`is_main_process`, as the built-in callbacks do.
    """

    def on_step_end(self, gan: Any, step: int, logs: dict[str, float]) -> None:
        """Called with the model (a :class:`ConditionalDCGAN` or a
        :class:`~covergan.versions.VersionGAN`), the number of steps done so far and this
        step's losses."""


class CheckpointCallback:
    """Save the model every ``every`` steps (on rank 0 only under ``torchrun``).

    Parameters
    ----------
    path : str or Path
        Target file; ``{step}`` in it is replaced by the step count (e.g. ``"ckpt-{step}.pt"``),
        otherwise the same file is overwritten (atomically) each time.
    every : int
        Interval in steps.
    """

    def __init__(self, path: str | os.PathLike[str], every: int) -> None:
        if not _is_int(every) or every < 1:
            raise ParameterError(f"every={every!r} must be a positive integer")
        self.path = str(path)
        self.every = int(every)

    def on_step_end(self, gan: ConditionalDCGAN, step: int, logs: dict[str, float]) -> None:
        """Save when ``step`` is a multiple of ``every`` (and this is the main process)."""
        if step % self.every == 0 and is_main_process():
            gan.save(self.path.format(step=step))


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
        if not _is_int(every) or every < 1:
            raise ParameterError(f"every={every!r} must be a positive integer")
        self.every = int(every)
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


# ----------------------------------------------------------------------------------- data


def _dataset_batches(
    dataset: Dataset[Any],
    n: int,
    batch_size: int,
    seed: int,
    start: int,
    count: int,
    stream: int = _STREAM_DATA,
    rank: int = 0,
    world: int = 1,
) -> Iterator[Any]:
    """Batches ``start .. start + count - 1`` of a seeded per-epoch permutation of ``dataset``.

    Global batch ``b`` is batch ``b % per_epoch`` of epoch ``b // per_epoch``; each epoch's order
    is seeded by ``(seed, epoch)`` and a dataset with ``set_epoch`` (random crops) is told the
    epoch, so any batch can be reproduced from its index alone. Items are fetched in this
    process, so ``set_epoch`` always reaches the dataset that serves them. With ``world``
    ranks a global batch is ``world * batch_size`` consecutive items of the permutation and
    ``rank`` takes its ``rank``-th ``batch_size`` of them: the shards are disjoint.
    """
    per_epoch = n // (batch_size * world)
    set_epoch = getattr(dataset, "set_epoch", None)
    epoch = -1
    order = torch.empty(0, dtype=torch.long)
    for b in range(start, start + count):
        e, i = divmod(b, per_epoch)
        if e != epoch:
            epoch = e
            gen = torch.Generator().manual_seed(_derive_seed(seed, stream, e))
            order = torch.randperm(n, generator=gen)
            if callable(set_epoch):
                set_epoch(e)
        lo = (i * world + rank) * batch_size
        idx = order[lo : lo + batch_size].tolist()
        yield default_collate([dataset[k] for k in idx])


def _cycle(loader: DataLoader[Any]) -> Iterator[Any]:
    set_epoch = getattr(loader.sampler, "set_epoch", None)  # DistributedSampler's reshuffle
    epoch = 0
    while True:
        if callable(set_epoch):
            set_epoch(epoch)
        epoch += 1
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise DatasetError("the DataLoader yielded no batches")


# ----------------------------------------------------------------------------------- the model


def _noise_source(generator: torch.Generator | int | None) -> torch.Generator | None:
    """A ``generate(generator=...)`` argument as a torch generator (an int seeds a CPU one)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if _is_int(generator):
        return torch.Generator().manual_seed(int(generator))
    raise ParameterError(
        f"generator must be a torch.Generator, an int seed or None, got {generator!r}"
    )


def _check_truncation(truncation: float | None) -> None:
    if truncation is not None and (not _is_real(truncation) or not truncation > 0):
        raise ParameterError(f"truncation={truncation!r} must be a positive number")


def _check_pretrain(done: int, kind: str, steps: int, lr: float, kl_weight: float) -> None:
    """Arguments of a ``pretrain_autoencoder``: an untrained model, steps >= 1, lr > 0,
    kl_weight >= 0 (``done``: the model's ``kind`` steps so far)."""
    if done > 0:
        raise ParameterError(
            f"pretrain_autoencoder initialises an untrained model; this one has done "
            f"{done} {kind} steps"
        )
    if not _is_int(steps) or steps < 1:
        raise ParameterError(f"steps={steps!r} must be a positive integer")
    if not _is_real(lr) or not math.isfinite(lr) or lr <= 0:
        raise ParameterError(f"lr={lr!r} must be a positive number")
    if not _is_real(kl_weight) or not math.isfinite(kl_weight) or kl_weight < 0:
        raise ParameterError(f"kl_weight={kl_weight!r} must be >= 0")


def _truncated_normal(
    n: int,
    dim: int,
    gen: torch.Generator | None,
    device: torch.device,
    truncation: float | None,
) -> Tensor:
    """Noise ``[n, dim]`` from N(0, 1); with ``truncation`` (the truncation trick), entries
    with ``|z| > truncation`` are redrawn until none is left."""
    z = torch.randn(n, dim, generator=gen, device=device)
    if truncation is not None:
        outside = z.abs() > truncation
        while bool(outside.any()):
            z[outside] = torch.randn(int(outside.sum()), generator=gen, device=device)
            outside = z.abs() > truncation
    return z


class _AdversarialPair:
    """Scaffolding shared by :class:`ConditionalDCGAN` and :class:`covergan.versions.VersionGAN`:
    eval-mode batched sampling from the EMA generator, and the training state of a checkpoint
    (networks, EMA, optimisers, step, seed, histories)."""

    generator: nn.Module
    discriminator: nn.Module
    generator_ema: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    device: torch.device
    step: int
    seed: int | None
    history: dict[str, list[float]]
    pretrain_history: dict[str, list[float]]

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of a generated window."""
        raise NotImplementedError

    def _autocast(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def _sample(
        self,
        count: int,
        batch_size: int,
        use_ema: bool,
        forward: Callable[[nn.Module, int, int], Tensor],
    ) -> Tensor:
        """``forward(module, start, stop)`` over ``range(count)`` in batches, eval mode, no
        gradients; returns ``[count, 1, H, W]`` float32 on the CPU."""
        module = self.generator_ema if (use_ema and self.generator_ema is not None) else None
        module = module if module is not None else self.generator
        was_training = module.training
        module.eval()
        out = torch.empty(count, 1, *self.image_size)
        try:
            with torch.no_grad(), self._autocast():
                for start in range(0, count, batch_size):
                    stop = min(start + batch_size, count)
                    out[start:stop] = forward(module, start, stop).float().cpu()
        finally:
            module.train(was_training)
        return out

    def _training_state(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "generator_ema": (
                None if self.generator_ema is None else self.generator_ema.state_dict()
            ),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step,
            "seed": self.seed,
            "history": {k: list(v) for k, v in self.history.items()},
            "pretrain_history": {k: list(v) for k, v in self.pretrain_history.items()},
        }

    def _load_training_state(self, state: dict[str, Any], source: str) -> None:
        """Inverse of :meth:`_training_state`; KeyError, TypeError, ValueError and RuntimeError
        (weights that do not fit) are left to the caller to word."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.generator_ema is not None:
            if state["generator_ema"] is None:
                raise CheckpointError(f"{source}: the EMA generator weights are missing")
            self.generator_ema.load_state_dict(state["generator_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = int(state["step"])
        self.seed = None if state["seed"] is None else int(state["seed"])
        self.history = {
            str(k): [float(v) for v in vals] for k, vals in dict(state["history"]).items()
        }
        pretrain = dict(state.get("pretrain_history") or {})
        self.pretrain_history = {str(k): [float(v) for v in vals] for k, vals in pretrain.items()}


class ConditionalDCGAN(_AdversarialPair):
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
        if not _is_int(n_classes) or n_classes < 0:
            raise ParameterError(f"n_classes={n_classes!r} must be an integer >= 0")
        _check_preset(preset)
        if config is None:
            config = GANConfig.for_preset(preset)
        elif not isinstance(config, GANConfig):
            raise ParameterError(f"config must be a GANConfig, got {type(config).__name__}")
        if seed is not None and (not _is_int(seed) or seed < 0):
            raise ParameterError(f"seed={seed!r} must be a non-negative integer or None")
        self.n_classes = int(n_classes)
        self.preset = preset
        self.config = config
        self.classes: list[str | int] | None = _check_classes(classes, self.n_classes)
        self.device = resolve_device(device)
        self.seed = None if seed is None else int(seed)
        self.custom_generator = generator is not None
        self.custom_discriminator = discriminator is not None
        for name, module in (("generator", generator), ("discriminator", discriminator)):
            if module is not None and not isinstance(module, nn.Module):
                raise ParameterError(f"{name} must be a torch.nn.Module, got {type(module)}")
        if generator is not None and not (
            isinstance(generator, GeneratorModule) and _is_int(generator.z_dim)
        ):
            raise ParameterError("a custom generator needs an integer attribute `z_dim`")
        if (
            preset == "thesis"
            and config.image_size != THESIS_IMAGE_SIZE
            and (generator is None or discriminator is None)
        ):
            raise ParameterError(
                f"the thesis architecture only supports image_size={THESIS_IMAGE_SIZE}, "
                f"got {config.image_size}; use preset='default' for other sizes"
            )

        init_rng: AbstractContextManager[Any] = nullcontext()
        if self.seed is not None:
            init_rng = torch.random.fork_rng(devices=[])
        with init_rng:
            if self.seed is not None:
                torch.manual_seed(self.seed)
            built_g, built_d = (None, None)
            if generator is None or discriminator is None:
                built_g, built_d = _build_modules(preset, self.n_classes, config)
        self.generator: nn.Module = generator if generator is not None else cast(nn.Module, built_g)
        self.discriminator: nn.Module = (
            discriminator if discriminator is not None else cast(nn.Module, built_d)
        )
        self._format = torch.channels_last if config.channels_last else torch.contiguous_format
        for module in (self.generator, self.discriminator):
            module.to(self.device)
            module.to(memory_format=self._format)
        self._dry_run()
        self.generator_ema: nn.Module | None = None
        if config.ema_decay is not None:
            self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.opt_g = torch.optim.Adam(
            self.generator.parameters(), lr=config.lr_g, betas=config.betas
        )
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=config.lr_d, betas=config.betas
        )
        self._amp_dtype: torch.dtype | None = None
        if config.amp and self.device.type == "cuda":
            self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        use_scaler = self._amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.augment = config.augmentation()
        self.step = 0
        self.batches_seen = 0
        self.history: dict[str, list[float]] = {}
        self.pretrain_history: dict[str, list[float]] = {}
        # moving averages of D's mean output on real and fake, the LeCam anchors
        self._lecam = torch.zeros(2, dtype=torch.float64)

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

    def _labels_or_none(self, batch: int) -> Tensor | None:
        if self.n_classes == 0:
            return None
        return torch.zeros(batch, dtype=torch.long, device=self.device)

    def _dry_run(self) -> None:
        """Check that G's output has the configured shape and that D accepts it."""
        b = _DRY_RUN_BATCH
        height, width = self.image_size
        modes = (self.generator.training, self.discriminator.training)
        self.generator.eval()
        self.discriminator.eval()
        try:
            z = torch.zeros(b, self.z_dim, device=self.device)
            labels = self._labels_or_none(b)
            with torch.no_grad():
                try:
                    x = self.generator(z, labels)
                except Exception as exc:
                    raise ParameterError(
                        f"the generator failed on a dry run with z of shape {tuple(z.shape)}: {exc}"
                    ) from exc
                if not isinstance(x, Tensor) or tuple(x.shape) != (b, 1, height, width):
                    got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                    raise ParameterError(
                        f"the generator produces {got} but config.image_size={self.image_size} "
                        f"needs ({b}, 1, {height}, {width})"
                    )
                try:
                    out = self.discriminator(x, labels)
                except Exception as exc:
                    raise ParameterError(
                        f"the discriminator cannot take the generator's output of shape "
                        f"{tuple(x.shape)}: {exc}"
                    ) from exc
                if not isinstance(out, Tensor) or tuple(out.shape) not in ((b,), (b, 1)):
                    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                    raise ParameterError(
                        f"the discriminator returns {got} for a batch of {b}; it must return "
                        f"one logit per sample, shape ({b},)"
                    )
        finally:
            self.generator.train(modes[0])
            self.discriminator.train(modes[1])

    def _check_labels(self, labels: Tensor) -> None:
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ParameterError(f"labels must be integer class indices, got dtype {labels.dtype}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ParameterError(
                f"labels must be in [0, {self.n_classes - 1}] for n_classes={self.n_classes}, "
                f"got values in [{int(labels.min())}, {int(labels.max())}]"
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
        if (steps is None) == (epochs is None):
            raise ParameterError("give exactly one of steps= and epochs=")
        if steps is not None and (not _is_int(steps) or steps < 0):
            raise ParameterError(f"steps={steps!r} must be a non-negative integer")
        if epochs is not None and (not _is_real(epochs) or not epochs > 0):
            raise ParameterError(f"epochs={epochs!r} must be a positive number")
        batch_size = self._batch_size(batch_size)
        self._set_training_seed(seed)
        rank, world = _rank_world()
        d_steps = self.config.d_steps
        per_epoch = self._batches_per_epoch(data, batch_size, world)
        if steps is None:
            steps = math.ceil(cast(float, epochs) * per_epoch / d_steps)
        if steps == 0:
            return self
        if world > 1:
            _broadcast_modules([self.generator, self.discriminator, self.generator_ema])
        batches = self._batches(data, batch_size, self.batches_seen, steps * d_steps, _STREAM_DATA)

        self._warned_range = False
        bar = progress_bar(
            total=steps,
            enabled=progress and rank == 0,
            desc="covergan",
            unit="step",
            leave=False,
        )
        try:
            for _ in range(steps):
                real = [self._prepare_batch(next(batches)) for _ in range(d_steps)]
                self.batches_seen += d_steps
                logs = self._train_step(real)
                self.step += 1
                for key, value in logs.items():
                    self.history.setdefault(key, []).append(value)
                if progress and (self.step % 10 == 0 or self.step == 1):
                    bar.set_postfix(loss_d=f"{logs['loss_d']:.3f}", loss_g=f"{logs['loss_g']:.3f}")
                bar.update(1)
                for callback in callbacks:
                    callback.on_step_end(self, self.step, logs)
        finally:
            bar.close()
        return self

    def _batch_size(self, batch_size: int | None) -> int:
        """``batch_size`` checked, or the config's when ``None``."""
        size = self.config.batch_size if batch_size is None else batch_size
        if not _is_int(size) or size < 1:
            raise ParameterError(f"batch_size={size!r} must be a positive integer")
        return int(size)

    def _set_training_seed(self, seed: int | None) -> None:
        if seed is not None:
            if not _is_int(seed) or seed < 0:
                raise ParameterError(f"seed={seed!r} must be a non-negative integer or None")
            self.seed = int(seed)
        elif self.seed is None:
            self.seed = secrets.randbits(63)
        self.seed = _agree_seed(self.seed)

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
        seed : int, optional
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
        _check_pretrain(self.step, "GAN", steps, lr, kl_weight)
        batch_size = self._batch_size(batch_size)
        self._set_training_seed(seed)
        rank, world = _rank_world()
        self._batches_per_epoch(data, batch_size, world)
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_derive_seed(cast(int, self.seed), _STREAM_AE_INIT))
            encoder = ConvEncoder(
                image_size=cfg.image_size,
                z_dim=self.z_dim,
                width=cfg.d_width,
                max_width=cfg.max_width,
                n_stages=cfg.n_stages,
            )
        encoder.to(self.device)
        encoder.to(memory_format=self._format)
        G = self.generator
        params = [*encoder.parameters(), *(p for p in G.parameters() if p.requires_grad)]
        optimiser = torch.optim.Adam(params, lr=float(lr), betas=(0.5, 0.999))
        scaler = torch.amp.GradScaler("cuda", enabled=self._amp_dtype == torch.float16)
        batches = self._batches(data, batch_size, 0, steps, _STREAM_AE_DATA)
        self._warned_range = False
        G.train()
        ranked = (rank,) if world > 1 else ()
        if world > 1:
            _broadcast_modules([G])
        bar = progress_bar(
            total=steps,
            enabled=progress and rank == 0,
            desc="autoencoder",
            unit="step",
            leave=False,
        )
        try:
            for step in range(steps):
                x, labels = self._prepare_batch(next(batches))
                x = x.contiguous(memory_format=self._format)
                gen = torch.Generator(device=self.device)
                gen.manual_seed(_derive_seed(cast(int, self.seed), _STREAM_AE_STEP, step, *ranked))
                with self._autocast():
                    mu, log_var = encoder(x)
                    mu, log_var = mu.float(), log_var.float()
                    eps = torch.randn(mu.shape, generator=gen, device=self.device)
                    z = mu + eps * torch.exp(0.5 * log_var)
                    recon = G(z, labels).float()
                    l1 = (recon - x).abs().flatten(1).sum(dim=1).mean()
                    kl = (0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var)).sum(dim=1).mean()
                    loss = l1 + kl_weight * kl
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if world > 1:
                    _average_gradients(params, world)
                scaler.step(optimiser)
                scaler.update()
                logs = {"ae_l1": float(l1.detach()) / x[0].numel(), "ae_kl": float(kl.detach())}
                if world > 1:
                    _average_buffers([encoder, G], world)
                    logs = _average_logs(logs, world, self.device)
                for key, value in logs.items():
                    self.pretrain_history.setdefault(key, []).append(value)
                bar.update(1)
        finally:
            bar.close()
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(G.state_dict())
        return self

    def _batches_per_epoch(
        self, data: Dataset[Any] | DataLoader[Any], batch_size: int, world: int = 1
    ) -> int:
        if isinstance(data, DataLoader):
            if world > 1 and not isinstance(data.sampler, DistributedSampler):
                warnings.warn(
                    f"training on {world} ranks with a DataLoader whose sampler is "
                    f"{type(data.sampler).__name__}, not a DistributedSampler: every rank sees "
                    "the same batches; pass sampler=DistributedSampler(dataset) or the Dataset "
                    "itself (fit then shards it)",
                    CoverGANWarning,
                    stacklevel=3,
                )
            return len(data)
        if not isinstance(data, Dataset):
            raise ParameterError(
                f"data must be a torch Dataset or DataLoader, got {type(data).__name__}"
            )
        try:
            n_items = len(data)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ParameterError("data must be a sized Dataset or a DataLoader") from exc
        if n_items < batch_size * world:
            ranks = f" x {world} ranks" if world > 1 else ""
            raise DatasetError(
                f"the dataset has {n_items} items, fewer than batch_size={batch_size}{ranks}; "
                "pass a smaller batch_size"
            )
        return n_items // (batch_size * world)

    def _batches(
        self,
        data: Dataset[Any] | DataLoader[Any],
        batch_size: int,
        start: int,
        count: int,
        stream: int,
    ) -> Iterator[Any]:
        if isinstance(data, DataLoader):
            return _cycle(data)
        n_items = len(data)  # type: ignore[arg-type]
        rank, world = _rank_world()
        return _dataset_batches(
            data, n_items, batch_size, cast(int, self.seed), start, count, stream, rank, world
        )

    def _prepare_batch(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            x, labels = batch[0], batch[1]
        elif isinstance(batch, (tuple, list)) and len(batch) == 1:
            x, labels = batch[0], None
        else:
            x, labels = batch, None
        if not isinstance(x, Tensor):
            x = torch.as_tensor(np.asarray(x))
        height, width = self.image_size
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, height, width):
            raise ParameterError(
                f"training samples must have shape (1, {height}, {width}) "
                f"(config.image_size={self.image_size}), got a batch of shape {tuple(x.shape)}"
            )
        x = x.to(self.device, dtype=torch.float32, non_blocking=True)
        if not self._warned_range:
            lo, hi = torch.aminmax(x)
            if lo < -1 - _RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
                self._warned_range = True
                warnings.warn(
                    f"training samples span [{float(lo):.3g}, {float(hi):.3g}], outside the model "
                    "space [-1, 1] the generator's tanh can reach; attach a CQTNormalizer to the "
                    "dataset (transform=) to map features into model space",
                    CoverGANWarning,
                    stacklevel=4,
                )
        if self.n_classes == 0:
            return x, None
        if labels is None:
            raise ParameterError(
                f"a conditional model (n_classes={self.n_classes}) needs (x, label) items"
            )
        labels = torch.as_tensor(labels)
        self._check_labels(labels)
        return x, labels.to(self.device, dtype=torch.long).reshape(-1)

    def _autocast(self) -> AbstractContextManager[Any]:
        if self._amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp_dtype)

    def _noise(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, self.z_dim, generator=generator, device=self.device)

    def _d_input(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self.augment(x, generator).contiguous(memory_format=self._format)

    def _train_step(self, batches: list[tuple[Tensor, Tensor | None]]) -> dict[str, float]:
        cfg = self.config
        G, D = self.generator, self.discriminator
        G.train()
        D.train()
        rank, world = _rank_world()
        ranked = (rank,) if world > 1 else ()  # each rank draws its own noise
        gen = torch.Generator(device=self.device)
        gen.manual_seed(_derive_seed(cast(int, self.seed), _STREAM_STEP, self.step, *ranked))
        logs: dict[str, float] = {}

        fake = torch.empty(0)
        labels: Tensor | None = None
        for j, (real, labels) in enumerate(batches):
            last = j == len(batches) - 1
            z = self._noise(real.shape[0], gen)
            with self._autocast():
                if last:  # kept with its graph: the generator step reuses it
                    fake = G(z, labels)
                else:
                    with torch.no_grad():
                        fake = G(z, labels)
                real_in = self._d_input(real, gen)
                fake_in = self._d_input(fake.detach(), gen)
                d_real = D(real_in, labels).float().reshape(-1)
                d_fake = D(fake_in, labels).float().reshape(-1)
                loss_d = _d_loss(cfg.loss, d_real, d_fake)
            if cfg.lecam_weight > 0:
                lecam = self._lecam_term(d_real, d_fake)
                loss_d = loss_d + cfg.lecam_weight * lecam
                logs["lecam"] = float(lecam.detach())
            if cfg.loss == "wgan-gp":
                gp = self._gradient_penalty(real_in, fake_in, labels, gen)
                loss_d = loss_d + cfg.gp_weight * gp
                logs["gp"] = float(gp.detach())
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(loss_d).backward()  # type: ignore[no-untyped-call]
            if world > 1:
                _average_gradients(list(D.parameters()), world)
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()

        trainable = [p for p in D.parameters() if p.requires_grad]
        for p in trainable:  # the generator step needs gradients w.r.t. D's input only
            p.requires_grad_(False)
        try:
            with self._autocast():
                g_out = D(self._d_input(fake, gen), labels).float().reshape(-1)
                loss_g = _g_loss(cfg.loss, g_out)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(loss_g).backward()  # type: ignore[no-untyped-call]
            if world > 1:
                _average_gradients(list(G.parameters()), world)
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        if world > 1:  # batch-norm statistics saw this rank's data only
            _average_buffers([G, D], world)
        self._update_ema()

        logs["loss_d"] = float(loss_d.detach())
        logs["loss_g"] = float(loss_g.detach())
        logs["d_real"] = float(d_real.detach().mean())
        logs["d_fake"] = float(d_fake.detach().mean())
        if world > 1:
            logs = _average_logs(logs, world, self.device)
        return logs

    def _lecam_term(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        decay = self.config.lecam_decay
        ema_real, ema_fake = float(self._lecam[0]), float(self._lecam[1])
        term = (
            torch.relu(d_real - ema_fake).pow(2).mean()
            + torch.relu(ema_real - d_fake).pow(2).mean()
        )
        with torch.no_grad():
            means = torch.stack([d_real.mean(), d_fake.mean()])
            world = _rank_world()[1]
            if world > 1:  # the anchors track the outputs on the global batch
                dist.all_reduce(means)
                means = means / world
            self._lecam.mul_(decay).add_(means.double().cpu(), alpha=1 - decay)
        return term

    def _gradient_penalty(
        self, real: Tensor, fake: Tensor, labels: Tensor | None, gen: torch.Generator
    ) -> Tensor:
        eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=self.device)
        mixed = (eps * real.float() + (1 - eps) * fake.float()).detach().requires_grad_(True)
        out = self.discriminator(mixed.contiguous(memory_format=self._format), labels)
        (grad,) = torch.autograd.grad(out.float().sum(), mixed, create_graph=True)
        penalty: Tensor = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return penalty

    def _update_ema(self) -> None:
        _ema_step(self.generator_ema, self.generator, self.step, self.config.ema_decay)

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
        label_t: Tensor | None = None
        if self.n_classes > 0:
            if labels is None:
                raise ParameterError(
                    f"a conditional model (n_classes={self.n_classes}) needs labels"
                )
            label_t = torch.as_tensor(labels).reshape(-1)
            self._check_labels(label_t)
            label_t = label_t.long()
            count = label_t.numel()
            if n is not None and n != count:
                raise ParameterError(f"n={n} does not match len(labels)={count}")
        else:
            if labels is not None:
                raise ParameterError("an unconditional model (n_classes=0) takes n=, not labels")
            if n is None or not _is_int(n) or n < 0:
                raise ParameterError(f"n={n!r} must be a non-negative integer")
            count = int(n)
        if not _is_int(batch_size) or batch_size < 1:
            raise ParameterError(f"batch_size={batch_size!r} must be a positive integer")
        _check_truncation(truncation)
        gen = _noise_source(generator)
        z_device = gen.device if gen is not None else torch.device("cpu")
        z = _truncated_normal(count, self.z_dim, gen, z_device, truncation)

        def forward(module: nn.Module, start: int, stop: int) -> Tensor:
            labels = None if label_t is None else label_t[start:stop].to(self.device)
            out: Tensor = module(z[start:stop].to(self.device), labels)
            return out

        return self._sample(count, batch_size, use_ema, forward)

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

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint atomically (temporary file in the same folder, fsync, rename).

        The file holds the configs, the class list, the generator, discriminator and EMA weights,
        the optimiser and gradient-scaler states, the step and data counters, the training seed,
        the history and the covergan version; a failed save leaves an existing file untouched.

        Parameters
        ----------
        path : str or Path
            Target file (its folder must exist).
        """
        atomic_torch_save(self.state_dict(), path)

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
        ckpt = _validate_state(state, source)
        stored_classes = ckpt["n_classes"]
        if n_classes is not None and n_classes != stored_classes:
            raise CheckpointError(
                f"{source}: the checkpoint has n_classes={stored_classes}, expected {n_classes}"
            )
        if ckpt["custom_generator"] and generator is None:
            raise CheckpointError(
                f"{source} was trained with a user-supplied generator; pass generator= to load it"
            )
        if ckpt["custom_discriminator"] and discriminator is None:
            raise CheckpointError(
                f"{source} was trained with a user-supplied discriminator; "
                "pass discriminator= to load it"
            )
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
