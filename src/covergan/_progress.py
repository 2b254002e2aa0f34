"""Progress bars that suit where the output goes.

Every long step of covergan shows a tqdm bar through :func:`progress_bar`. On a terminal it is
the usual redrawn bar. When standard error is not a terminal (a log file, CI, a pipe), tqdm's
carriage-return redraws would pile up into one enormous line, so the bar is written as plain
lines instead, at most one every :data:`LOG_INTERVAL_S` seconds, plus the bar's last state.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import std
from tqdm.auto import tqdm

__all__ = ["LOG_INTERVAL_S", "progress_bar"]

#: Seconds between two progress lines when the output is not a terminal.
LOG_INTERVAL_S = 30.0


class _Lines:
    """A text stream that turns tqdm's ``\r``-redraws into whole lines, at most one every
    ``interval`` seconds (tqdm's forced refreshes, e.g. ``set_postfix``, included), and the
    bar's last state when it closes."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self.stream = stream
        self.interval = interval
        self._last = -math.inf
        self._pending: str | None = None

    def write(self, text: str) -> int:
        if not text:  # tqdm's empty flush between a refresh and its close: not a clear
            return 0
        line = text.replace("\r", "").strip()
        now = time.monotonic()
        if line and now - self._last >= self.interval:
            self._emit(line, now)
        elif line:
            self._pending = line
        elif self._pending is not None:  # a clear or the closing newline: the bar ends
            self._emit(self._pending, now)
        return len(text)

    def _emit(self, line: str, now: float) -> None:
        self.stream.write(line + "\n")
        self._last, self._pending = now, None

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(std.tqdm):  # type: ignore[misc]
    """A tqdm bar that shows its final count when it closes, also with ``leave=False``."""

    def close(self) -> None:
        if not self.disable and not getattr(self, "_closed_once", False):
            self._closed_once = True
            self.refresh()
        super().close()


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
        lines = _Lines(stream, LOG_INTERVAL_S)
        return _LogBar(iterable, file=lines, ascii=True, ncols=100, **kwargs)
    return tqdm(iterable, disable=not enabled, file=stream, **kwargs)
