"""File helpers shared by every module that saves state: atomic writes, checked reads."""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import torch

from covergan.errors import CheckpointError

_T = TypeVar("_T")


def temp_file(folder: str | os.PathLike[str], prefix: str) -> tuple[int, str]:
    """A new empty file ``<prefix><random>.tmp`` in ``folder``, opened for reading and
    writing: ``(descriptor, path)``, as :func:`tempfile.mkstemp` gives, but created with the
    mode a plain ``open`` gives (``0o666`` less the umask), not 0600, so a file renamed into
    place from it is as readable to others as any other file the user writes."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return _create_new(folder, prefix, lambda path: os.open(path, flags, 0o666))


def temp_dir(folder: str | os.PathLike[str], prefix: str) -> Path:
    """A new empty folder ``<prefix><random>.tmp`` in ``folder``, with the mode a plain
    ``mkdir`` gives (:func:`tempfile.mkdtemp`'s is 0700), to be renamed into place."""
    return Path(_create_new(folder, prefix, lambda path: os.mkdir(path, 0o777))[1])


def _create_new(
    folder: str | os.PathLike[str], prefix: str, create: Callable[[str], _T]
) -> tuple[_T, str]:
    """``(create(path), path)`` for the first free random ``path`` in ``folder``."""
    for _ in range(100):
        path = os.path.join(folder, f"{prefix}{secrets.token_hex(6)}.tmp")
        try:
            return create(path), path
        except FileExistsError:  # a name another writer holds: draw again
            continue
    raise FileExistsError(f"no free temporary name {prefix}*.tmp in {folder}")


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    *,
    text: bool = False,
    fsync: bool = True,
    make_parents: bool = True,
) -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file in its folder, renamed onto it at the end.

    Yields the open temporary file (binary, or text with ``text=True``). On a clean exit it
    is flushed, fsynced (unless ``fsync=False``, for caches whose readers treat a bad file
    as absent) and renamed onto ``path``; on any error (a full disk, Ctrl-C) it is removed
    and an existing file at ``path`` is untouched.

    Parameters
    ----------
    path : str or PathLike
        The file to write (``~`` expanded).
    text : bool
        Open in text mode (UTF-8).
    fsync : bool
        Flush to disk before the rename.
    make_parents : bool
        Create missing folders first (otherwise a missing folder is an error).
    """
    target = Path(path).expanduser()
    if make_parents:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            blocker = next((p for p in target.parents if p.is_file()), None)
            if blocker is None:
                raise
            raise NotADirectoryError(
                f"cannot write {target}: {blocker} is a file, not a folder"
            ) from exc
    fd, tmp = temp_file(target.parent, f".{target.name}.")
    try:
        fh: IO[Any] = os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(
    obj: Any, path: str | os.PathLike[str], *, make_parents: bool = False
) -> Path:
    """``torch.save`` through :func:`atomic_write` (fsynced; the folder must exist unless
    ``make_parents``); returns ``path`` with ``~`` expanded. ``obj``: tensors and plain
    containers, to load with ``weights_only=True``."""
    with atomic_write(path, make_parents=make_parents) as fh:
        torch.save(obj, fh)
    return Path(path).expanduser()


def drop_cut_line(fh: IO[bytes]) -> None:
    """Truncate an append-only line file (opened binary, readable and writable) after its last
    newline: a line a killed writer cut short is dropped, so the next line starts clean."""
    size = fh.seek(0, os.SEEK_END)
    if not size:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    start = size
    while start > 0:  # read back in blocks to the newline before the cut line
        start = max(0, start - (1 << 16))
        fh.seek(start)
        block = fh.read(size - start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            fh.truncate(start + cut + 1)
            return
    fh.truncate(0)


def npy_beside(target: Path, array: Any, tag: str = "") -> str:
    """Write ``array`` as ``.npy`` to a new fsynced temporary file ``.<stem>.<tag><random>.tmp``
    in ``target``'s folder (made if missing) and return its path, for the caller to rename
    into place; on any failure the temporary file is removed and the error raised."""
    import numpy as np

    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.stem}.{tag}"
    fd, tmp = temp_file(target.parent, prefix)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def read_checkpoint(path: Path, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into a CheckpointError;
    ``what`` names the kind of file in the messages."""
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the {what} file's path")
    if not path.is_file():
        raise CheckpointError(f"no {what} file at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): not a {what} file, or one cut short")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).rsplit("WeightsUnpickler error:", 1)[-1].strip().split("\n")[0]
        raise CheckpointError(
            f"{path} was refused by the weights-only loader: it is corrupt or holds objects other "
            f"than tensors and plain containers (which are never unpickled, so a crafted file "
            f"cannot run code): {reason}"
        ) from exc
    except Exception as exc:  # truncated zips, struct errors, foreign formats, ...
        raise CheckpointError(
            f"{path} is not a readable {what} file (truncated, corrupt or not a torch file): {exc}"
        ) from exc
    return ckpt


def header(fmt: str, version: int) -> dict[str, Any]:
    """The ``format``, ``format_version`` and ``covergan_version`` fields that every covergan
    file starts with (read back by :func:`check_header`)."""
    from covergan import __version__  # the package root imports this module

    return {"format": fmt, "format_version": version, "covergan_version": __version__}


def check_header(state: object, fmt: str, newest: int, source: str, what: str) -> dict[str, Any]:
    """Check a checkpoint's ``format`` and ``format_version`` fields; return it as a dict."""
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise CheckpointError(f"{source} is not a covergan {what} checkpoint (no format={fmt!r})")
    version = state.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{source} has an unknown format_version={version!r}")
    if version > newest:
        raise CheckpointError(
            f"{source} has format_version={version}, newer than the {newest} this covergan "
            f"reads (written by covergan {state.get('covergan_version', '?')}); upgrade covergan"
        )
    return state
