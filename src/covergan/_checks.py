"""Argument checks shared by the whole library (:func:`check_count` for every integer with a
lower bound, :func:`check_choice` for ``Literal`` choices), and the field checks and dict round
trips of the frozen config dataclasses (``GANConfig``, ``VersionConfig``, ``CSIConfig``,
``CQTConfig``).

Each check raises :class:`~covergan.errors.ParameterError` naming the argument (or
``<Class>.<field>``), its value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, cast, get_args, overload

import numpy as np

from covergan.errors import ParameterError


def is_int(value: object) -> bool:
    """A Python or NumPy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A Python or NumPy integer or float that is not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@overload
def check_count(name: str, value: object, minimum: int) -> int: ...


@overload
def check_count(
    name: str, value: object, minimum: int, *, optional: Literal[True]
) -> int | None: ...


def check_count(name: str, value: object, minimum: int, *, optional: bool = False) -> int | None:
    """``value`` as a Python int, when it is a Python or NumPy integer >= ``minimum`` (or
    None when ``optional``); else a ParameterError naming ``name``."""
    if optional and value is None:
        return None
    if not is_int(value) or cast(int, value) < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ParameterError(f"{name}={value!r} must be {what}{' or None' if optional else ''}")
    return int(cast(int, value))


def check_choice(name: str, value: object, choices: Any) -> None:
    """``value`` is one of the values of the ``Literal`` type ``choices``; else a
    ParameterError naming ``name`` and listing them."""
    allowed = get_args(choices)
    if value not in allowed:
        listed = ", ".join(repr(c) for c in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise ParameterError(f"{name}={value!r} must be {listed}")


def check_known_fields(cls: type, keys: Iterable[str]) -> None:
    """Every key names a field of the dataclass ``cls``."""
    unknown = set(keys) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ParameterError(f"unknown {cls.__name__} fields: {sorted(unknown)}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """The fields of a config dataclass as plain Python, tuples as lists (safe for JSON and
    ``torch.load(weights_only=True)``)."""
    out = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def config_from_dict(cls: Any, data: Mapping[str, Any]) -> Any:
    """Inverse of :func:`config_to_dict`: lists back to tuples; unknown keys are an error."""
    check_known_fields(cls, data)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _name(config: Any, field: str) -> str:
    return f"{type(config).__name__}.{field}"


def check_image_size(config: Any, minimum: int) -> None:
    """``image_size`` is a pair of integers >= ``minimum`` (stored as a tuple of ints)."""
    size = config.image_size
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(is_int(v) and v >= minimum for v in size)
    ):
        raise ParameterError(
            f"{_name(config, 'image_size')}={size!r} must be a pair of integers >= {minimum} (H, W)"
        )
    object.__setattr__(config, "image_size", (int(size[0]), int(size[1])))


def check_ints(config: Any, fields: Iterable[str], minimum: int = 1) -> None:
    """Each field is an integer >= ``minimum``."""
    for field in fields:
        check_count(_name(config, field), getattr(config, field), minimum)


def check_reals(config: Any, fields: Iterable[str], *, positive: bool) -> None:
    """Each field is a finite number, > 0 when ``positive`` else >= 0."""
    for field in fields:
        value = getattr(config, field)
        if not is_real(value) or not math.isfinite(value) or value < 0 or (positive and not value):
            what = "a positive number" if positive else "a number >= 0"
            raise ParameterError(f"{_name(config, field)}={value!r} must be {what}")


def check_adam(config: Any) -> None:
    """``betas`` is two numbers in [0, 1) (stored as a tuple of floats); ``ema_decay`` is in
    [0, 1) or None."""
    betas = config.betas
    if (
        not isinstance(betas, (tuple, list))
        or len(betas) != 2
        or not all(is_real(b) and 0.0 <= b < 1.0 for b in betas)
    ):
        raise ParameterError(f"{_name(config, 'betas')}={betas!r} must be two numbers in [0, 1)")
    object.__setattr__(config, "betas", (float(betas[0]), float(betas[1])))
    decay = config.ema_decay
    if decay is not None and not (is_real(decay) and 0.0 <= decay < 1.0):
        raise ParameterError(f"{_name(config, 'ema_decay')}={decay!r} must be in [0, 1) or None")
