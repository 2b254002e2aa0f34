"""Tiny synthetic signals shared by the tests."""

from __future__ import annotations

import numpy as np

SR = 22050


def tone(freq: float, seconds: float = 3.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    """A pure sine, float32 [shape=(n,)]."""
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
