"""Training loop of the reference CSI model.

:func:`train_csi` trains a :class:`~covergan.csi.model.CSINet` as a song classifier
(cross-entropy on the cosine head) for a fixed number of steps, with AdamW, a linear
warm-up then cosine learning-rate decay, optional augmentation of each batch, and a
per-item loss weight for synthetic samples. On the CPU it is deterministic: the same
seed gives the same weights, bit for bit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from covergan._progress import progress_bar
from covergan.augment.classic import Transform
from covergan.csi.model import CSINet
from covergan.errors import DatasetError, ParameterError

__all__ = ["CSITrainConfig", "CSITrainHistory", "train_csi"]

logger = logging.getLogger(__name__)

Schedule = Literal["cosine", "constant"]
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
EvalFn = Callable[[CSINet], Mapping[str, float]]


@dataclass(frozen=True, kw_only=True)
class CSITrainConfig:
    """Settings of :func:`train_csi`.

    The defaults suit a few hundred recordings on a CPU: 400 steps of 32 windows of
    84 x 100-200 frames take a minute or two.

    Parameters
    ----------
    steps : int
        Optimiser steps.
    batch_size : int
        Items per step (>= 2: the model uses batch norm). A dataset smaller than this is
        used whole at every step.
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW weight decay.
    warmup_steps : int
        Steps of linear warm-up from ``lr / warmup_steps`` to ``lr``.
    schedule : {"cosine", "constant"}
        After warm-up: cosine decay to 0 at ``steps``, or constant.
    label_smoothing : float
        Cross-entropy label smoothing, in ``[0, 1)``.
    synthetic_weight : float
        Loss weight of items flagged synthetic (third element of an item), relative to
        real items (weight 1); 0 ignores them.
    grad_clip : float or None
        Clip the gradient norm at this value (None: no clipping).
    eval_every : int
        Call ``eval_fn`` every this many steps (0: only after the last step).
    log_every : int
        Log the running loss every this many steps (0: never).
    seed : int
        Seeds the batch order, augmentation and dropout. (The random crops of a
        :class:`~covergan.data.CQTDataset` follow the dataset's own ``seed`` and the epoch
        number that training passes to ``set_epoch``.)
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
    """

    steps: int = 400
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    schedule: Schedule = "cosine"
    label_smoothing: float = 0.0
    synthetic_weight: float = 1.0
    grad_clip: float | None = 5.0
    eval_every: int = 0
    log_every: int = 50
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, low=1)
        _check_int("batch_size", self.batch_size, low=2)
        _check_int("warmup_steps", self.warmup_steps, low=0)
        _check_int("eval_every", self.eval_every, low=0)
        _check_int("log_every", self.log_every, low=0)
        _check_int("seed", self.seed, low=None)
        _check_float("lr", self.lr, positive=True)
        _check_float("weight_decay", self.weight_decay, positive=False)
        _check_float("synthetic_weight", self.synthetic_weight, positive=False)
        _check_float("label_smoothing", self.label_smoothing, positive=False)
        if self.label_smoothing >= 1:
            raise ParameterError(
                f"CSITrainConfig.label_smoothing={self.label_smoothing!r} must be in [0, 1)"
            )
        if self.grad_clip is not None:
            _check_float("grad_clip", self.grad_clip, positive=True)
        if self.schedule not in ("cosine", "constant"):
            raise ParameterError(
                f"CSITrainConfig.schedule={self.schedule!r} must be 'cosine' or 'constant'"
            )
        _resolve_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return dataclasses.asdict(self)


@dataclass
class CSITrainHistory:
    """What :func:`train_csi` recorded.

    Attributes
    ----------
    config : CSITrainConfig
    loss : list of float
        Weighted training loss of every step.
    accuracy : list of float
        Accuracy on every step's (augmented) training batch.
    evals : list of (int, dict)
        ``(step, eval_fn(model))`` pairs.
    seconds : float
        Wall-clock training time (evaluations excluded).
    n_samples : int
        Training items processed.
    """

    config: CSITrainConfig
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    seconds: float = 0.0
    n_samples: int = 0

    @property
    def samples_per_second(self) -> float:
        """Training throughput."""
        return self.n_samples / self.seconds if self.seconds > 0 else float("nan")

    def final_loss(self, last: int = 20) -> float:
        """Mean loss over the last ``last`` steps."""
        tail = self.loss[-last:]
        return float(np.mean(tail)) if tail else float("nan")


def train_csi(
    model: CSINet,
    data: Dataset[Any] | DataLoader[Any],
    config: CSITrainConfig | None = None,
    *,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    eval_fn: EvalFn | None = None,
    progress: bool = True,
    **overrides: Any,
) -> CSITrainHistory:
    """Train ``model`` as a song classifier.

    Parameters
    ----------
    model : CSINet
        Trained in place; left in eval mode on the training device.
    data : torch Dataset or DataLoader
        Items ``(x, y)`` or ``(x, y, is_synthetic)``: ``x`` a float tensor
        ``[1, n_bins, T]`` with the same ``T`` for every item (give a
        :class:`~covergan.data.CQTDataset` a window, e.g. ``train.windows(200)``), ``y`` a
        class index below ``model.config.n_classes``, ``is_synthetic`` a bool.
        A dataset is drawn in seeded random order, epoch after epoch, dropping each epoch's
        last partial batch; its ``set_epoch(epoch)`` is called when it has one, so random
        crops change every epoch. A DataLoader is cycled as it is (its sampler, batch size
        and workers are the caller's; determinism then depends on it).
    config : CSITrainConfig, optional
        Settings; defaults to ``CSITrainConfig()``.
    augment : callable, optional
        Applied to every training batch ``[B, 1, n_bins, T]`` on the CPU before the forward
        pass (real and synthetic items alike); must keep the shape. A
        :mod:`covergan.augment.classic` transform is driven by the training seed.
        Per-item augmentation can also be a dataset ``transform``.
    eval_fn : callable, optional
        ``eval_fn(model) -> {name: value}``, called every ``eval_every`` steps and after
        the last step; the model is put back in training mode afterwards.
    progress : bool
        Show a tqdm bar.
    **overrides
        Fields of ``config`` to replace (``train_csi(model, data, steps=50)``).

    Returns
    -------
    CSITrainHistory

    Raises
    ------
    ParameterError
        Bad settings, items of different shapes or of the wrong layout, a label outside
        ``[0, n_classes)``, an ``augment`` that changes the shape, or a non-finite loss
        (NaN/inf inputs, or a learning rate too high).
    DatasetError
        ``data`` has fewer than 2 items.
    """
    if not isinstance(model, CSINet):
        raise ParameterError(f"model must be a CSINet, got {type(model).__name__}")
    if config is None:
        config = CSITrainConfig(**overrides)
    elif not isinstance(config, CSITrainConfig):
        raise ParameterError(f"config must be a CSITrainConfig, got {type(config).__name__}")
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    if augment is not None and not callable(augment):
        raise ParameterError("augment must be callable (a transform on [B, 1, n_bins, T])")
    cfg = config
    device = _resolve_device(cfg.device)
    model.to(device)
    batches = _batches(data, cfg)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    history = CSITrainHistory(config=cfg)
    bar = progress_bar(total=cfg.steps, desc="CSI training", enabled=progress, leave=False)
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(cfg.seed)  # dropout and any transform left on the global stream
        model.train()
        start = time.perf_counter()
        try:
            for step in range(1, cfg.steps + 1):
                x, y, synthetic = next(batches)
                if augment is not None:
                    x = _augment(augment, x, aug_gen)
                x, y, synthetic = x.to(device), y.to(device), synthetic.to(device)
                logits, loss = _loss(model, x, y, synthetic, cfg, step)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()

                history.loss.append(float(loss.detach()))
                history.accuracy.append(float((logits.argmax(1) == y).float().mean()))
                history.n_samples += int(x.shape[0])
                bar.update(1)
                bar.set_postfix(loss=f"{history.loss[-1]:.3f}", refresh=False)
                if cfg.log_every and step % cfg.log_every == 0:
                    logger.info(
                        "CSI step %d/%d: loss %.4f, batch accuracy %.3f, lr %.2e",
                        step,
                        cfg.steps,
                        history.final_loss(cfg.log_every),
                        float(np.mean(history.accuracy[-cfg.log_every :])),
                        scheduler.get_last_lr()[0],
                    )
                last = step == cfg.steps
                if eval_fn is not None and (
                    last or (cfg.eval_every and step % cfg.eval_every == 0)
                ):
                    history.seconds += time.perf_counter() - start
                    history.evals.append((step, _evaluate(eval_fn, model)))
                    model.train()
                    start = time.perf_counter()
            history.seconds += time.perf_counter() - start
        finally:
            bar.close()
    model.eval()
    return history


def _loss(
    model: CSINet,
    x: torch.Tensor,
    y: torch.Tensor,
    synthetic: torch.Tensor,
    cfg: CSITrainConfig,
    step: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, loss)`` of one batch: label-smoothed cross-entropy, synthetic items weighted
    ``cfg.synthetic_weight``; labels outside the model's classes and a non-finite loss raise."""
    n_classes = model.config.n_classes
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        bad = int(y.max()) if int(y.max()) >= n_classes else int(y.min())
        raise ParameterError(f"label {bad} is outside [0, n_classes={n_classes}) of the model")
    logits = model(x)
    ce = F.cross_entropy(logits, y, reduction="none", label_smoothing=cfg.label_smoothing)
    weight = torch.where(synthetic, cfg.synthetic_weight, 1.0).to(ce.dtype)
    loss = (weight * ce).sum() / weight.sum().clamp_min(1e-12)
    if not torch.isfinite(loss):
        raise ParameterError(
            f"training diverged at step {step}: loss={loss.item()}; check the inputs for "
            f"NaN/inf or lower lr={cfg.lr}"
        )
    return logits, loss


# --------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------


def _batches(data: Dataset[Any] | DataLoader[Any], cfg: CSITrainConfig) -> Iterator[Batch]:
    if isinstance(data, DataLoader):
        return _cycle_loader(data)
    if not isinstance(data, Dataset) and not hasattr(data, "__getitem__"):
        raise ParameterError(f"data must be a torch Dataset or DataLoader, got {type(data)}")
    n = len(data)  # type: ignore[arg-type]
    if n < 2:
        raise DatasetError(f"cannot train on {n} item(s); need at least 2")
    return _dataset_batches(data, n, cfg)


def _dataset_batches(data: Dataset[Any], n: int, cfg: CSITrainConfig) -> Iterator[Batch]:
    gen = torch.Generator().manual_seed(cfg.seed)
    batch_size = min(cfg.batch_size, n)
    set_epoch = getattr(data, "set_epoch", None)
    epoch = 0
    while True:
        if callable(set_epoch):
            set_epoch(epoch)
        order = torch.randperm(n, generator=gen).tolist()
        for s in range(0, n - batch_size + 1, batch_size):
            yield _collate([data[i] for i in order[s : s + batch_size]])
        epoch += 1


def _cycle_loader(loader: DataLoader[Any]) -> Iterator[Batch]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield _parse_loader_batch(batch)
        if empty:
            raise DatasetError("the DataLoader yielded no batch")


def _collate(items: Sequence[Any]) -> Batch:
    xs: list[torch.Tensor] = []
    ys: list[int] = []
    flags: list[bool] = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ParameterError(
                f"dataset items must be (x, y) or (x, y, is_synthetic), got {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
            )
        x = item[0]
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[0] != 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ParameterError(f"item x must be a tensor [1, n_bins, T], got {got}")
        xs.append(x)
        ys.append(int(item[1]))
        flags.append(bool(item[2]) if len(item) == 3 else False)
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        raise ParameterError(
            f"items of one batch have different shapes {sorted(shapes)[:3]}; train on "
            "fixed-size windows, e.g. dataset.windows(200, crop='random')"
        )
    return (
        torch.stack(xs).float(),
        torch.as_tensor(ys, dtype=torch.int64),
        torch.as_tensor(flags, dtype=torch.bool),
    )


def _parse_loader_batch(batch: Any) -> Batch:
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ParameterError(
            "DataLoader batches must be (x, y) or (x, y, is_synthetic) after collation"
        )
    x = batch[0]
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ParameterError(f"batch x must be a tensor [B, 1, n_bins, T], got {got}")
    y = torch.as_tensor(batch[1], dtype=torch.int64).reshape(-1)
    if len(batch) == 3:
        synthetic = torch.as_tensor(batch[2]).reshape(-1).to(torch.bool)
    else:
        synthetic = torch.zeros(x.shape[0], dtype=torch.bool)
    if y.shape[0] != x.shape[0] or synthetic.shape[0] != x.shape[0]:
        raise ParameterError(f"batch of {x.shape[0]} inputs has {y.shape[0]} labels")
    return x.float(), y, synthetic


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _augment(
    augment: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    out = augment(x, generator=gen) if isinstance(augment, Transform) else augment(x)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ParameterError(
            f"augment must keep the batch shape {tuple(x.shape)}, returned {got} "
            "(use TempoChange(keep_length=True) on batches)"
        )
    return out


def _evaluate(eval_fn: EvalFn, model: CSINet) -> dict[str, float]:
    result = eval_fn(model)
    if not isinstance(result, Mapping):
        raise ParameterError(
            f"eval_fn must return a mapping of name -> value, got {type(result).__name__}"
        )
    return {str(k): float(v) for k, v in result.items()}


def _lr_lambda(cfg: CSITrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:  # ``step`` optimiser steps have been taken
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, cfg.steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _resolve_device(device: object) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved: torch.device = torch.device(device)  # type: ignore[call-overload]
    except (RuntimeError, TypeError) as error:
        raise ParameterError(
            f"device={device!r} is not a torch device (use 'auto', 'cpu', 'cuda', ...)"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} was asked for but CUDA is not available")
    return resolved


def _check_int(name: str, value: object, *, low: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"CSITrainConfig.{name}={value!r} must be an integer")
    if low is not None and value < low:
        raise ParameterError(f"CSITrainConfig.{name}={value!r} must be >= {low}")


def _check_float(name: str, value: object, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ParameterError(f"CSITrainConfig.{name}={value!r} must be a number")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        kind = "positive" if positive else "non-negative"
        raise ParameterError(f"CSITrainConfig.{name}={value!r} must be a finite {kind} number")
