"""Shared fixtures: tiny signals and a session-wide extractor (librosa compiles once)."""

from __future__ import annotations

import pytest

from covergan.cqt import CQTExtractor
from tests.signals import SR, tone


@pytest.fixture(scope="session")
def extractor() -> CQTExtractor:
    ext = CQTExtractor()
    ext(tone(440.0, 1.0), SR)  # pay librosa's numba compilation once per session
    return ext
