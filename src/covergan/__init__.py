"""covergan: class-conditional GAN augmentation of CQT spectrograms for cover-song identification.

The public API is re-exported here, one hop from every name. Subpackages hold the rest:
:mod:`covergan.augment` (CQT transforms), :mod:`covergan.csi` (reference CSI model and
retrieval metrics), :mod:`covergan.datasets` (built-in demo data), :mod:`covergan.models`
(generator and discriminator modules), :mod:`covergan.metrics`, :mod:`covergan.plots`.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from covergan.audio import to_audio, write_wav
from covergan.augmenter import Augmenter
from covergan.cqt import CQTConfig, CQTExtractor, CQTNormalizer
from covergan.data import CQTDataset, SongIndex, split_by_song, split_recordings
from covergan.errors import (
    AudioLoadError,
    CheckpointError,
    CoverGANError,
    CoverGANWarning,
    DatasetError,
    NotFittedError,
    ParameterError,
    StoreError,
    UnknownSongError,
)
from covergan.gan import (
    CheckpointCallback,
    ConditionalDCGAN,
    GANConfig,
    SampleSnapshotCallback,
    init_distributed,
    is_main_process,
)
from covergan.metrics import (
    FrechetDistance,
    frechet_distance,
    frechet_with_floor,
    memorization_check,
    per_song_frechet,
)
from covergan.report import QualityReport, quality_report
from covergan.sampling import AugmentedDataset, ClassBalancedSampler, SyntheticBank
from covergan.store import FeatureStore
from covergan.versions import VersionConfig, VersionGAN

__all__ = [
    "AudioLoadError",
    "AugmentedDataset",
    "Augmenter",
    "CQTConfig",
    "CQTDataset",
    "CQTExtractor",
    "CQTNormalizer",
    "CheckpointCallback",
    "CheckpointError",
    "ClassBalancedSampler",
    "ConditionalDCGAN",
    "CoverGANError",
    "CoverGANWarning",
    "DatasetError",
    "FeatureStore",
    "FrechetDistance",
    "GANConfig",
    "NotFittedError",
    "ParameterError",
    "QualityReport",
    "SampleSnapshotCallback",
    "SongIndex",
    "StoreError",
    "SyntheticBank",
    "UnknownSongError",
    "VersionConfig",
    "VersionGAN",
    "__version__",
    "frechet_distance",
    "frechet_with_floor",
    "init_distributed",
    "is_main_process",
    "memorization_check",
    "per_song_frechet",
    "quality_report",
    "split_by_song",
    "split_recordings",
    "to_audio",
    "write_wav",
]
