"""covergan: class-conditional GAN augmentation of CQT spectrograms for cover-song identification.

The public API is re-exported here, one hop from every name.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from covergan.cqt import CQTConfig, CQTExtractor, CQTNormalizer
from covergan.data import CQTDataset, SongIndex
from covergan.errors import (
    AudioLoadError,
    CheckpointError,
    CoverGANError,
    CoverGANWarning,
    DatasetError,
    NotFittedError,
    ParameterError,
    UnknownSongError,
)

__all__ = [
    "AudioLoadError",
    "CQTConfig",
    "CQTDataset",
    "CQTExtractor",
    "CQTNormalizer",
    "CheckpointError",
    "CoverGANError",
    "CoverGANWarning",
    "DatasetError",
    "NotFittedError",
    "ParameterError",
    "SongIndex",
    "UnknownSongError",
    "__version__",
]
