"""Atomic file writes shared by every module that saves state."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file in the target's folder, fsync, then rename.

    A crash or an exception part-way (a full disk, Ctrl-C) leaves any existing file at
    ``path`` untouched and no temporary file behind.

    Parameters
    ----------
    obj : Any
        What to save (tensors and plain containers, to load with ``weights_only=True``).
    path : str or PathLike
        Target file; its folder must exist.

    Returns
    -------
    Path
        ``path``, with ``~`` expanded.
    """
    target = Path(path).expanduser()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
