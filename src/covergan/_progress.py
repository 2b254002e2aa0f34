"""Progress bars that suit where the output goes.

Every long step of covergan shows a tqdm bar through :func:`progress_bar`. On a terminal it is
the usual redrawn bar. When standard error is not a terminal (a log file, CI, a pipe), tqdm's
carriage-return redraws would pile up into one enormous line, so the bar is written as plain
lines instead, at most one every :data:`LOG_INTERVAL_S` seconds, plus the final state.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.auto import tqdm

__all__ = ["LOG_INTERVAL_S", "progress_bar"]

#: Seconds between two progress lines when the output is not a terminal.
LOG_INTERVAL_S = 30.0


class _Lines:
    """A text stream that turns tqdm's ``\\r``-redraws into whole lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None, *, enabled: bool = True, **kwargs: Any
) -> Any:
    """A tqdm bar on standard error: redrawn on a terminal, plain lines elsewhere.

    Parameters
    ----------
    iterable : iterable, optional
        What to wrap (or ``None`` with ``total=`` and manual ``update``).
    enabled : bool
        ``False``: no output at all.
    **kwargs
        tqdm's own arguments (``total``, ``desc``, ``unit``, ``leave``, ...).

    Returns
    -------
    tqdm.tqdm
    """
    stream = kwargs.pop("file", None) or sys.stderr
    if enabled and not _is_terminal(stream):
        kwargs.update(file=_Lines(stream), mininterval=LOG_INTERVAL_S, ascii=True, ncols=100)
    else:
        kwargs["file"] = stream
    return tqdm(iterable, disable=not enabled, **kwargs)
