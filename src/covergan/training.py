"""The training machinery every adversarial model of covergan shares.

A model is a generator and a discriminator with their own losses; what training them needs
besides is here, once: :class:`AdversarialModel` (seed, step loop, EMA, sampling, checkpoint
state), the callbacks of a step loop (:class:`Callback`, :class:`CheckpointCallback`), seed
derivation (every step's randomness comes from ``(seed, stream, step)``, so a run resumes
exactly), latent noise with the truncation trick, and the style-autoencoder pretraining
loss. Data-parallel collectives live in :mod:`covergan.distributed`.
"""

from __future__ import annotations

import copy
import math
import os
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from covergan._checks import check_count
from covergan._checks import is_int as _is_int
from covergan._checks import is_real as _is_real
from covergan._io import atomic_torch_save
from covergan._progress import progress_bar
from covergan.augment.differentiable import DiffAugment
from covergan.distributed import _agree_seed, is_main_process
from covergan.errors import CheckpointError, ParameterError

__all__ = [
    "AdversarialModel",
    "Callback",
    "CheckpointCallback",
    "check_pretrain",
    "check_truncation",
    "derive_seed",
    "ema_step",
    "noise_source",
    "truncated_normal",
    "vae_loss",
]


class Callback(Protocol):
    """Something called after every training step of a model's ``fit``
    (:meth:`~covergan.ConditionalDCGAN.fit`, :meth:`~covergan.versions.VersionGAN.fit`).

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
        check_count("every", every, 1)
        self.path = str(path)
        self.every = int(every)

    def on_step_end(self, gan: Any, step: int, logs: dict[str, float]) -> None:
        """Save when ``step`` is a multiple of ``every`` (and this is the main process)."""
        if step % self.every == 0 and is_main_process():
            gan.save(self.path.format(step=step))


@torch.no_grad()
def ema_step(ema: nn.Module | None, model: nn.Module, step: int, decay: float | None) -> None:
    """Move ``ema``'s parameters towards ``model``'s with the ramped decay
    ``min(decay, (1 + step) / (10 + step))`` and copy its buffers; no-op without an EMA."""
    if ema is None or decay is None:
        return
    rate = min(decay, (1 + step) / (10 + step))
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - rate)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seed, stream, counter)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def noise_source(generator: torch.Generator | int | None) -> torch.Generator | None:
    """A ``generate(generator=...)`` argument as a torch generator (an int seeds a CPU one)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if _is_int(generator):
        return torch.Generator().manual_seed(int(generator))
    raise ParameterError(
        f"generator must be a torch.Generator, an int seed or None, got {generator!r}"
    )


def check_truncation(truncation: float | None) -> None:
    if truncation is not None and (not _is_real(truncation) or not truncation > 0):
        raise ParameterError(f"truncation={truncation!r} must be a positive number")


def check_pretrain(done: int, kind: str, steps: int, lr: float, kl_weight: float) -> None:
    """Arguments of a ``pretrain_autoencoder``: an untrained model, steps >= 1, lr > 0,
    kl_weight >= 0 (``done``: the model's ``kind`` steps so far)."""
    if done > 0:
        raise ParameterError(
            f"pretrain_autoencoder initialises an untrained model; this one has done "
            f"{done} {kind} steps"
        )
    check_count("steps", steps, 1)
    if not _is_real(lr) or not math.isfinite(lr) or lr <= 0:
        raise ParameterError(f"lr={lr!r} must be a positive number")
    if not _is_real(kl_weight) or not math.isfinite(kl_weight) or kl_weight < 0:
        raise ParameterError(f"kl_weight={kl_weight!r} must be >= 0")


def truncated_normal(
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


def vae_loss(
    mu: Tensor,
    log_var: Tensor,
    eps: Tensor,
    decode: Callable[[Tensor], Tensor],
    x: Tensor,
    kl_weight: float,
) -> tuple[Tensor, dict[str, float]]:
    """The style-autoencoder loss of a generator used as the decoder of a VAE.

    Parameters
    ----------
    mu, log_var : torch.Tensor [shape=(B, z_dim)]
        The encoder's posterior.
    eps : torch.Tensor [shape=(B, z_dim)]
        Standard normal noise of the reparameterisation ``z = mu + eps * exp(log_var / 2)``.
    decode : callable
        ``z [B, z_dim] -> reconstruction [B, 1, H, W]`` (the generator with its condition).
    x : torch.Tensor [shape=(B, 1, H, W)]
        What to reconstruct.
    kl_weight : float
        Weight of the KL term (summed over the latent; the L1 term is summed over cells).

    Returns
    -------
    loss : torch.Tensor (scalar)
    logs : dict
        ``ae_l1`` (mean absolute error per cell) and ``ae_kl``.
    """
    z = mu + eps * torch.exp(0.5 * log_var)
    recon = decode(z).float()
    l1 = (recon - x).abs().flatten(1).sum(dim=1).mean()
    kl = (0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var)).sum(dim=1).mean()
    logs = {"ae_l1": float(l1.detach()) / x[0].numel(), "ae_kl": float(kl.detach())}
    return l1 + kl_weight * kl, logs


class AdversarialModel:
    """What :class:`~covergan.ConditionalDCGAN` and :class:`~covergan.versions.VersionGAN`
    share: the training seed, the step loop (history, progress bar, callbacks), the EMA
    update, eval-mode batched sampling from the EMA generator, and the training state of a
    checkpoint (networks, EMA, optimisers, step, seed, histories). A subclass supplies its
    networks, its losses (one ``_train_step``) and its data."""

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
    augment: DiffAugment
    #: ``ema_decay`` (``None``: no EMA), ``lr_g``, ``lr_d``, ``betas``, ``augmentation()``.
    config: Any
    #: Mixed-precision dtype of training and sampling (``None``: float32).
    _amp_dtype: torch.dtype | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of a generated window."""
        raise NotImplementedError

    def _init_training(self, config: Any) -> None:
        """The EMA generator, both Adam optimisers, the discriminator's augmentation and
        empty counters and logs, from a config's ``ema_decay``, ``lr_g``, ``lr_d``, ``betas``
        and ``augmentation()``; called once the networks are on their device."""
        self.generator_ema = None
        if config.ema_decay is not None:
            self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        betas = config.betas
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=betas)
        self.augment = config.augmentation()
        self.step = 0
        self.history = {}
        self.pretrain_history = {}

    def _set_training_seed(self, seed: int | None) -> None:
        """``seed``, else the seed kept from before, else a fresh one (kept in ``self.seed``
        so that the run can be resumed exactly); under ``torchrun``, rank 0's."""
        if seed is not None:
            self.seed = check_count("seed", seed, 0)
        elif self.seed is None:
            self.seed = secrets.randbits(63)
        self.seed = _agree_seed(self.seed)

    def _loop(
        self,
        steps: int,
        one_step: Callable[[int], dict[str, float]],
        *,
        desc: str,
        progress: bool,
        callbacks: Sequence[Callback] = (),
        pretrain: bool = False,
    ) -> None:
        """Run ``one_step(i)`` for ``i`` in ``range(steps)`` under a progress bar.

        Adversarial steps (``pretrain=False``) count in ``self.step``, log into
        ``self.history``, show the losses on the bar and call every callback after the
        step; autoencoder steps log into ``self.pretrain_history`` and count nothing.
        """
        bar = progress_bar(total=steps, enabled=progress, desc=desc, unit="step", leave=False)
        logged = self.pretrain_history if pretrain else self.history
        try:
            for i in range(steps):
                logs = one_step(i)
                for key, value in logs.items():
                    logged.setdefault(key, []).append(value)
                if not pretrain:
                    self.step += 1
                    if progress and (self.step % 10 == 0 or self.step == 1):
                        bar.set_postfix(
                            loss_d=f"{logs['loss_d']:.3f}", loss_g=f"{logs['loss_g']:.3f}"
                        )
                bar.update(1)
                for callback in () if pretrain else callbacks:
                    callback.on_step_end(self, self.step, logs)
        finally:
            bar.close()

    def _update_ema(self) -> None:
        ema_step(self.generator_ema, self.generator, self.step, self.config.ema_decay)

    def _reset_ema(self) -> None:
        """The EMA generator becomes the generator (after autoencoder pretraining)."""
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(self.generator.state_dict())

    def _autocast(self) -> AbstractContextManager[Any]:
        """Mixed precision in ``_amp_dtype`` on the model's device (none for float32)."""
        if self._amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp_dtype)

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

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`save` writes, as plain containers and tensors."""
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (DataLoader workers under the ``spawn`` start method, joblib, copies)
        through :meth:`state_dict`: torch refuses to pickle the discriminators'
        spectral-norm (parametrized) layers any other way."""
        return (
            _unpickle,
            (type(self), self.state_dict(), self._unpickle_modules(), str(self.device)),
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> AdversarialModel:
        """A copy of every attribute, as ``copy.deepcopy`` makes without ``__reduce__``
        (torch deep-copies parametrized layers; only pickling needs the state dict)."""
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for key, value in self.__dict__.items():
            setattr(copied, key, copy.deepcopy(value, memo))
        return copied

    def _unpickle_modules(self) -> dict[str, nn.Module]:
        """Keyword arguments of ``from_state_dict`` beside the state: networks it cannot
        rebuild from the config (a user's own, ``custom_generator`` / ``custom_discriminator``),
        pickled as they are."""
        names = ("generator", "discriminator")
        return {n: getattr(self, n) for n in names if getattr(self, f"custom_{n}", False)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`state_dict` atomically (a temporary file in the same folder, fsync,
        rename; missing folders are made): a failed save leaves an existing file untouched.

        The file holds the config, the generator, discriminator and EMA weights, the optimiser
        states, the step, the training seed, the history and the covergan version: training
        resumes from it exactly.

        Returns
        -------
        Path
            The file written.
        """
        return atomic_torch_save(self.state_dict(), path, make_parents=True)

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


def _unpickle(
    cls: Any, state: dict[str, Any], modules: dict[str, nn.Module], device: str
) -> AdversarialModel:
    """:meth:`AdversarialModel.__reduce__`'s inverse: the model, on the device it was on."""
    model: AdversarialModel = cls.from_state_dict(state, device=device, **modules)
    return model
