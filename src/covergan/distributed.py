"""Devices and data-parallel process groups: choosing a device, joining ``torchrun``'s group,
and the collectives the trainers use (gradient, buffer and log averaging, broadcasts).

Public: :func:`resolve_device`, :func:`init_distributed`, :func:`is_main_process` (also
importable from :mod:`covergan.gan`). The underscored helpers are shared by
:class:`~covergan.ConditionalDCGAN` and the autoencoder pretraining; a trainer that runs in
one process never calls them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from covergan.errors import ParameterError

__all__ = ["init_distributed", "is_main_process", "resolve_device"]


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

    Raises
    ------
    ParameterError
        Not a device, or a CUDA / MPS device this machine does not have.
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
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"device={device!r} is not a valid torch device or 'auto'") from exc
    _check_available(resolved)
    return resolved


def _check_available(device: torch.device) -> None:
    """A ParameterError for an accelerator this machine does not have (before any file is
    read or any model built, so the message is not a checkpoint's or a kernel's)."""
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ParameterError(
                f"device={str(device)!r}, but no CUDA GPU is available here "
                "(torch.cuda.is_available() is False); use 'cpu', or 'auto' to take what there is"
            )
        if device.index is not None and device.index >= count:
            raise ParameterError(
                f"device={str(device)!r}, but this machine has {count} CUDA GPU(s)"
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ParameterError(
                f"device={str(device)!r}, but Apple's MPS is not available here; use 'cpu' or "
                "'auto'"
            )


def _distributed() -> bool:
    """Whether a default :mod:`torch.distributed` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def _rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    if _distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_key() -> tuple[int, ...]:
    """``(rank,)`` under a process group of several ranks, else ``()``: appended to a seed's
    parts, it gives each rank its own draws while one process draws what it always did."""
    rank, world = _rank_world()
    return (rank,) if world > 1 else ()


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
