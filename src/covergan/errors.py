"""Exceptions and warnings raised by covergan.

Every error derives from :class:`CoverGANError` and also from the built-in type
a caller would already catch for that kind of problem, so ``except ValueError``
keeps working around covergan calls.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Iterable
from typing import Any

__all__ = [
    "AudioLoadError",
    "CheckpointError",
    "CoverGANError",
    "CoverGANWarning",
    "DatasetError",
    "ExtractionError",
    "NotFittedError",
    "ParameterError",
    "StoreError",
    "UnknownSongError",
]


class CoverGANError(Exception):
    """Base class of every exception raised on purpose by covergan."""


class ParameterError(CoverGANError, ValueError):
    """An argument has an invalid value, type or shape."""


class AudioLoadError(CoverGANError, OSError):
    """An audio (or feature) file is missing, unreadable, corrupt or empty."""


class DatasetError(CoverGANError, ValueError):
    """A dataset is empty, has an unknown layout or cannot be used for the task."""


class StoreError(DatasetError):
    """A feature store is missing, damaged, from a newer covergan, or could not be written;
    the message names the file and says what in the store is intact."""


class NotFittedError(CoverGANError, ValueError, AttributeError):
    """A fitted attribute was used before ``fit`` was called."""


class CheckpointError(CoverGANError, ValueError):
    """A checkpoint is truncated, foreign, from a newer version or does not match."""


class UnknownSongError(CoverGANError, KeyError):
    """A song id is not known to the fitted model; the message lists close ids."""

    def __init__(self, song_id: Hashable, known: Iterable[Hashable]) -> None:
        self.song_id = song_id
        known_str = {str(k): k for k in known}
        close = difflib.get_close_matches(str(song_id), list(known_str), n=3, cutoff=0.5)
        self.suggestions = [known_str[c] for c in close]
        msg = f"unknown song id {song_id!r}"
        if self.suggestions:
            msg += f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
        else:
            msg += f" ({len(known_str)} songs are known)"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError.__str__ would quote the whole message
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        # survive pickling (errors travel back from joblib/Dask/Ray workers)
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class CoverGANWarning(UserWarning):
    """A result may be unreliable (too few samples, shrinkage applied, ...)."""


class ExtractionError(AudioLoadError):
    """One or more files of a batch extraction failed; ``failures`` lists each path and why."""

    def __init__(self, message: str, failures: Iterable[object] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)
