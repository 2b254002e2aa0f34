"""Built-in datasets: synthetic toy covers and synthesised Bach chorale harmonisations.

:func:`toy_covers` needs nothing beyond NumPy and is fast enough for tests;
:func:`chorale_covers` needs the optional music21 dependency
(``pip install "covergan[datasets]"``), imported only when it is called.
"""

from __future__ import annotations

from covergan.datasets.chorales import (
    ChoraleRender,
    ChoraleWork,
    chorale_covers,
    chorale_works,
    default_cache_dir,
    render_chorales,
)
from covergan.datasets.synth import Note, Timbre, midi_to_hz, render
from covergan.datasets.toy import CoverSet, toy_covers

__all__ = [
    "ChoraleRender",
    "ChoraleWork",
    "CoverSet",
    "Note",
    "Timbre",
    "chorale_covers",
    "chorale_works",
    "default_cache_dir",
    "midi_to_hz",
    "render",
    "render_chorales",
    "toy_covers",
]
