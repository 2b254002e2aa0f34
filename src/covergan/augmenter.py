"""The user-facing facade: fit a conditional GAN on song-labelled CQTs, sample per song.

>>> aug = Augmenter(seed=0).fit(dataset)        # CQTDataset, pairs, mapping or audio folder
>>> extra = aug.sample("song-042", n=16)        # Tensor [16, 1, 84, W], real feature format
>>> mixed = aug.balance(train)                  # real + synthetic items for a DataLoader
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from covergan._checks import check_known_fields
from covergan._io import atomic_torch_save, check_header, header, read_checkpoint
from covergan.cqt import CQTConfig, CQTExtractor, CQTNormalizer
from covergan.data import CQTDataset, SongId, SongIndex
from covergan.errors import (
    CheckpointError,
    DatasetError,
    NotFittedError,
    ParameterError,
)
from covergan.gan import (
    CHECKPOINT_FORMAT,
    Callback,
    ConditionalDCGAN,
    GANConfig,
    _agree_seed,
    _derive_seed,
)
from covergan.sampling import AugmentedDataset, SyntheticBank
from covergan.versions import (
    VERSION_AUGMENT_P,
    VersionAugment,
    VersionConfig,
    VersionGAN,
    sample_versions,
)

__all__ = ["Augmenter", "DatasetLike"]

logger = logging.getLogger(__name__)

AUGMENTER_FORMAT = "covergan.augmenter"
#: Newest layout read. Files without a version model are still written as 1 (older
#: covergan reads them); files with one (``versions`` key) are 2.
AUGMENTER_FORMAT_VERSION = 2

#: What :meth:`Augmenter.fit` accepts as a dataset.
DatasetLike = (
    "CQTDataset | Sequence[tuple[np.ndarray, SongId]] | Mapping[SongId, Sequence[np.ndarray]] "
    "| str | os.PathLike[str]"
)
Space = Literal["features", "model"]
Target = Literal["max", "median"] | int

#: The longest default GAN window, in pooled frames (CQTNet's training crop).
MAX_AUTO_WINDOW = 200


def _check_count(name: str, value: object, minimum: int, *, optional: bool = False) -> None:
    """``value`` is a Python int >= ``minimum`` (or None when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ParameterError(f"{name}={value!r} must be {what}{' or None' if optional else ''}")


class Augmenter:
    """Learn per-song CQT distributions with a conditional GAN and sample synthetic versions.

    Follows the scikit-learn estimator contract: ``__init__`` only stores its arguments,
    :meth:`fit` learns and returns ``self``, fitted state lives in attributes ending in
    ``_`` and using them before ``fit`` raises :class:`~covergan.errors.NotFittedError`.

    Parameters
    ----------
    extractor : CQTExtractor, optional
        Turns audio into features when ``fit`` gets a folder of audio; its config is the
        feature format of samples. Default ``CQTExtractor()`` (the CQTNet recipe). For a
        :class:`~covergan.data.CQTDataset` the dataset's own config wins.
    preset : {"default", "thesis"}
        GAN architecture and recipe (see :class:`~covergan.ConditionalDCGAN`).
    gan : GANConfig or mapping, optional
        GAN hyper-parameters, or overrides of the preset's (``{"lr_g": 1e-4}``). The
        image size is always ``(n_bins, window)``.
    window : int, optional
        Width (pooled frames) of training windows and samples. Default: the median
        track length, capped at 200 and rounded down to a multiple of 4 (a window much
        longer than most tracks would be mostly padding).
    steps : int
        GAN generator updates.
    pretrain_steps : int, optional
        Autoencoder updates that initialise the generator before adversarial training
        (BAGAN-style, :meth:`ConditionalDCGAN.pretrain_autoencoder`). Default: ``steps // 5``
        for the ``"default"`` preset (it reached a lower per-song distance for the same CPU
        time, see ``docs/gan.md``) and 0 for ``"thesis"`` (the baseline as published).
    batch_size : int, optional
        Default: the GAN config's.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU) or explicit.
    n_jobs : int
        Extraction processes for audio folders.
    cache_dir : str or PathLike, optional
        Feature cache for audio folders.
    progress : bool
        tqdm bars for extraction and training.
    seed : int, optional
        Seeds crops, initialisation and training: on CPU the same seed gives the same
        model. ``None`` draws one (kept in ``seed_``).
    versions : bool, VersionConfig or mapping
        Also train the reference-conditioned version model
        (:class:`~covergan.versions.VersionGAN`) that :meth:`sample_like` uses: ``True``
        with the default :class:`~covergan.versions.VersionConfig`, or a config / mapping
        of overrides (its image size is always ``(n_bins, window)``). Off by default: it
        roughly doubles the training time and needs songs with two or more recordings
        (see ``docs/versions.md``).
    version_steps : int, optional
        GAN steps of the version model (after ``version_steps // 5`` autoencoder steps,
        see :meth:`fit_versions`); default ``steps``.

    Attributes
    ----------
    songs_ : SongIndex
        The songs the GAN knows, with their recording counts.
    gan_ : ConditionalDCGAN
    normalizer_ : CQTNormalizer
        Features <-> the GAN's [-1, 1] model space.
    config_ : CQTConfig
        Feature format of the training data and of samples in ``space="features"``.
    window_ : int
    history_ : dict of str to list of float
        Per-step GAN losses.
    seed_ : int
    versions_ : VersionGAN or None
        The version model (``None`` when ``versions`` is off).
    """

    def __init__(
        self,
        *,
        extractor: CQTExtractor | None = None,
        preset: str = "default",
        gan: GANConfig | Mapping[str, Any] | None = None,
        window: int | None = None,
        steps: int = 3000,
        pretrain_steps: int | None = None,
        batch_size: int | None = None,
        device: str | torch.device = "auto",
        n_jobs: int = 1,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
        seed: int | None = None,
        versions: bool | VersionConfig | Mapping[str, Any] = False,
        version_steps: int | None = None,
    ) -> None:
        self.extractor = extractor
        self.preset = preset
        self.gan = gan
        self.window = window
        self.steps = steps
        self.pretrain_steps = pretrain_steps
        self.batch_size = batch_size
        self.device = device
        self.n_jobs = n_jobs
        self.cache_dir = cache_dir
        self.progress = progress
        self.seed = seed
        self.versions = versions
        self.version_steps = version_steps

    def __repr__(self) -> str:
        state = f"fitted on {len(self.songs_)} songs" if self.is_fitted else "not fitted"
        return f"Augmenter(preset={self.preset!r}, steps={self.steps}, seed={self.seed}; {state})"

    # ---------------------------------------------------------------------------- fitting

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has run."""
        return hasattr(self, "gan_")

    def fit(
        self, dataset: Any, *, callbacks: Sequence[Callback] = (), resume: bool = False
    ) -> Augmenter:
        """Fit the normaliser and train the conditional GAN; refitting starts from scratch.

        With ``resume=True`` a fitted (or loaded) augmenter instead continues its training
        where it stopped, up to ``steps`` GAN steps in all.

        Parameters
        ----------
        dataset : CQTDataset, sequence of (features, song_id), mapping song_id -> arrays, or
            a folder path
            Features are ``[n_bins, n_frames]`` arrays in the extractor's format; a folder
            is read with :meth:`CQTDataset.from_folder` (audio extracted and cached).
            Songs with a single recording are fine (see ``docs/augmenter.md`` for what to
            expect of their samples).
        callbacks : sequence of Callback
            Passed to :meth:`ConditionalDCGAN.fit` (checkpoints, snapshots).
        resume : bool
            Continue training instead of starting afresh: keep the normaliser, window, seed
            and GAN (weights, optimiser states, step and data counters) and run the
            ``steps - gan_.step`` GAN steps still to do on ``dataset``, which must be the
            dataset of the first ``fit`` (checked by song ids and recording counts). An
            interrupted run that is saved, loaded and resumed equals the uninterrupted run
            weight for weight on CPU. Raise ``steps`` first to train a finished augmenter
            longer. Autoencoder pretraining is never resumed: it runs before any GAN step.
            A version model (``versions``) missing from the augmenter is trained once the
            GAN is done, as :meth:`fit` does.

        Returns
        -------
        self

        Raises
        ------
        DatasetError
            Empty dataset, or fewer than two songs (nothing to balance); with ``resume``, a
            dataset other than the one the augmenter was fitted on.
        ParameterError
            Bad constructor arguments or malformed items.
        NotFittedError
            ``resume=True`` on an augmenter that is not fitted.

        Notes
        -----
        The fitted attributes are set once pretraining is done, before the first GAN step.
        If training stops early (``KeyboardInterrupt``, or an exception raised by a
        callback at the end of a step), the augmenter holds the model as of the last
        completed step: :meth:`save` it, and later :meth:`load` and ``fit(dataset,
        resume=True)`` (what ``covergan fit --resume`` does). A stop during pretraining
        leaves the augmenter unfitted.
        """
        self._check_params()
        data = self._as_dataset(dataset)
        if resume:
            return self._resume(data, callbacks)
        if data.n_songs < 2:
            raise DatasetError(
                f"the dataset has {data.n_songs} song; an Augmenter balances songs and needs "
                "at least 2 (for one song, train a ConditionalDCGAN(n_classes=0) directly)"
            )
        if self._versions_on() and max(data.class_counts().values()) < 2:
            raise DatasetError(
                "versions=True needs songs with two or more recordings to learn how versions "
                "differ; every song of this dataset has one"
            )
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)  # refit from scratch
        # under torchrun every rank must crop and shuffle alike: rank 0's random seed wins
        seed = self.seed if self.seed is not None else _agree_seed(secrets.randbits(31))
        config = data.config if data.config is not None else self._extractor().config
        window = self.window if self.window is not None else _auto_window(data.lengths())
        normalizer = CQTNormalizer.for_config(config).fit(data)
        gan_config = self._gan_config(image_size=(data.n_bins, window), config=config)
        if self._versions_on():  # a bad version config fails before any training
            self._version_config(data.n_bins, window, config.bins_per_semitone)
        gan = ConditionalDCGAN(
            data.n_songs,
            preset=self.preset,
            config=gan_config,
            classes=list(data.index.ids),
            device=self.device,
            seed=seed,
        )
        train = data.windows(window, crop="random", seed=seed, transform=normalizer)
        batch = self._batch(len(train), gan_config)
        logger.info(
            "training the %s GAN on %d recordings of %d songs, %d x %d windows, %d steps",
            self.preset,
            len(train),
            train.n_songs,
            data.n_bins,
            window,
            self.steps,
        )
        pretrain = self._pretrain_steps()
        if pretrain:
            gan.pretrain_autoencoder(
                train, steps=pretrain, batch_size=batch, progress=self.progress, seed=seed
            )
        # fitted before the GAN steps, so a run stopped mid-way can be saved and resumed
        self.songs_ = data.index
        self.config_ = config
        self.normalizer_ = normalizer
        self.window_ = window
        self.seed_ = seed
        self.gan_ = gan
        self.history_ = gan.history
        self.versions_: VersionGAN | None = None
        gan.fit(
            train,
            steps=self.steps,
            batch_size=batch,
            callbacks=callbacks,
            progress=self.progress,
            seed=seed,
        )
        if self._versions_on():
            self.fit_versions(data)
        return self

    def _resume(self, data: CQTDataset, callbacks: Sequence[Callback]) -> Augmenter:
        if not self.is_fitted:
            raise NotFittedError(
                "fit(resume=True) continues a fitted augmenter; this one is not fitted (load a "
                "checkpoint with Augmenter.load, or call fit without resume)"
            )
        if data.index != self.songs_:
            raise DatasetError(
                f"fit(resume=True) needs the dataset the augmenter was fitted on ("
                f"{len(self.songs_)} songs, {sum(self.songs_.class_counts().values())} "
                f"recordings); got {data.n_songs} songs, {len(data)} recordings, or other ids "
                "or counts"
            )
        if data.n_bins != self.config_.n_bins:
            raise DatasetError(
                f"the dataset has {data.n_bins} bins, the augmenter was fitted on "
                f"{self.config_.n_bins}"
            )
        remaining = self.steps - self.gan_.step
        if remaining > 0:
            train = data.windows(
                self.window_, crop="random", seed=self.seed_, transform=self.normalizer_
            )
            logger.info("resuming at GAN step %d of %d", self.gan_.step, self.steps)
            self.gan_.fit(
                train,
                steps=remaining,
                batch_size=self._batch(len(train), self.gan_.config),
                callbacks=callbacks,
                progress=self.progress,
                seed=self.seed_,
            )
            self.history_ = self.gan_.history
        else:
            logger.info("already trained for %d of %d steps", self.gan_.step, self.steps)
        # the version model is not checkpointed mid-way: it is trained once the GAN is done
        if self._versions_on() and getattr(self, "versions_", None) is None:
            self.fit_versions(data)
        return self

    def _batch(self, n_items: int, gan_config: GANConfig) -> int:
        batch = self.batch_size if self.batch_size is not None else gan_config.batch_size
        return min(batch, n_items)

    def _check_params(self) -> None:
        _check_count("steps", self.steps, 1)
        _check_count("pretrain_steps", self.pretrain_steps, 0, optional=True)
        _check_count("window", self.window, 2, optional=True)
        if self.extractor is not None and not isinstance(self.extractor, CQTExtractor):
            raise ParameterError(f"extractor must be a CQTExtractor, got {type(self.extractor)}")
        if self.gan is not None and not isinstance(self.gan, (GANConfig, Mapping)):
            raise ParameterError(
                f"gan must be a GANConfig or a mapping of overrides, got {type(self.gan)}"
            )
        _check_count("seed", self.seed, 0, optional=True)
        if self.versions is not None and not isinstance(
            self.versions, (bool, VersionConfig, Mapping)
        ):
            raise ParameterError(
                f"versions must be a bool, a VersionConfig or a mapping of overrides, got "
                f"{type(self.versions).__name__}"
            )
        _check_count("version_steps", self.version_steps, 1, optional=True)

    def _pretrain_steps(self) -> int:
        if self.pretrain_steps is not None:
            return self.pretrain_steps
        return self.steps // 5 if self.preset == "default" else 0

    def _extractor(self) -> CQTExtractor:
        return self.extractor if self.extractor is not None else CQTExtractor()

    def _gan_config(self, *, image_size: tuple[int, int], config: CQTConfig) -> GANConfig:
        overrides: dict[str, Any] = {"image_size": image_size}
        if self.preset != "thesis":
            overrides["bins_per_semitone"] = config.bins_per_semitone
        if isinstance(self.gan, GANConfig):
            return dataclasses.replace(self.gan, **overrides)
        return GANConfig.for_preset(self.preset, **{**dict(self.gan or {}), **overrides})

    def _as_dataset(self, dataset: Any) -> CQTDataset:
        if isinstance(dataset, CQTDataset):
            return dataset
        if isinstance(dataset, (str, os.PathLike)):
            return CQTDataset.from_folder(
                dataset,
                extractor=self._extractor(),
                n_jobs=self.n_jobs,
                cache_dir=self.cache_dir,
                progress=self.progress,
            )
        config = self._extractor().config
        if isinstance(dataset, Mapping):
            feats = [x for song in dataset for x in dataset[song]]
            songs = [song for song in dataset for _ in dataset[song]]
            return CQTDataset.from_arrays(feats, songs, config=config)
        if isinstance(dataset, Sequence) and not isinstance(dataset, (str, bytes)):
            pairs = list(dataset)
            if pairs and not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
                raise ParameterError("a sequence dataset must hold (features, song_id) pairs")
            return CQTDataset.from_arrays(
                [p[0] for p in pairs], [p[1] for p in pairs], config=config
            )
        raise ParameterError(
            "dataset must be a CQTDataset, a sequence of (features, song_id) pairs, a mapping "
            f"song_id -> list of feature arrays, or a folder path; got {type(dataset).__name__}"
        )

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                "this Augmenter is not fitted yet; call fit(dataset) or Augmenter.load(path)"
            )

    # ---------------------------------------------------------------------------- versions

    def _versions_on(self) -> bool:
        return self.versions is not None and self.versions is not False

    def _version_config(self, n_bins: int, window: int, bins_per_semitone: int) -> VersionConfig:
        versions = self.versions
        fixed: dict[str, Any] = {
            "image_size": (n_bins, window),
            "bins_per_semitone": bins_per_semitone,
        }
        if isinstance(versions, VersionConfig):
            return dataclasses.replace(versions, **fixed)
        if isinstance(versions, Mapping):
            check_known_fields(VersionConfig, versions)
            return VersionConfig(**{**dict(versions), **fixed})
        return VersionConfig(**fixed)

    def fit_versions(
        self, dataset: Any, *, steps: int | None = None, pretrain_steps: int | None = None
    ) -> Augmenter:
        """Train (or retrain from scratch) the version model of a fitted augmenter.

        :meth:`fit` calls it when ``versions`` is on; call it yourself to add a version model
        to an augmenter fitted or saved without one. The class GAN is left as it is.

        Parameters
        ----------
        dataset : CQTDataset or any :meth:`fit` input
            Recordings labelled by work, in the augmenter's feature format; only works with
            two or more recordings are used (pairs of two different recordings).
        steps : int, optional
            Adversarial training steps; default ``version_steps``, else ``steps``.
        pretrain_steps : int, optional
            Style-autoencoder steps that initialise the generator first
            (:meth:`VersionGAN.pretrain_autoencoder`); default ``steps // 5``.

        Returns
        -------
        self

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        DatasetError
            No work with two or more recordings.
        ParameterError
            Bad ``versions``/``version_steps``/``steps``, or bins that differ from the
            augmenter's.
        """
        self._check_fitted()
        if steps is None:
            steps = self.version_steps if self.version_steps is not None else self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ParameterError(f"version steps={steps!r} must be a positive integer")
        if pretrain_steps is None:
            pretrain_steps = steps // 5
        if (
            isinstance(pretrain_steps, bool)
            or not isinstance(pretrain_steps, int)
            or pretrain_steps < 0
        ):
            raise ParameterError(f"pretrain_steps={pretrain_steps!r} must be an integer >= 0")
        data = self._as_dataset(dataset)
        if data.n_bins != self.config_.n_bins:
            raise ParameterError(
                f"the dataset has {data.n_bins} bins, the augmenter makes {self.config_.n_bins}"
            )
        config = self._version_config(
            self.config_.n_bins, self.window_, self.config_.bins_per_semitone
        )
        model = VersionGAN(config, device=self.device, seed=self.seed_)
        train = data.windows(
            self.window_, crop="random", seed=self.seed_, transform=self.normalizer_
        )
        pairs = sum(c for c in data.class_counts().values() if c >= 2)
        logger.info("training the version model on %d recordings, %d steps", pairs, steps)
        batch = min(config.batch_size, max(2, pairs))
        if pretrain_steps:
            model.pretrain_autoencoder(
                train, steps=pretrain_steps, batch_size=batch, progress=self.progress
            )
        model.fit(
            train,
            steps=steps,
            batch_size=batch,
            progress=self.progress,
            seed=self.seed_,
        )
        self.versions_ = model
        return self

    def sample_like(
        self,
        features: np.ndarray | torch.Tensor,
        n: int,
        *,
        seed: int | None = None,
        space: Space = "features",
        crop: Literal["random", "center"] = "random",
        truncation: float | None = None,
    ) -> torch.Tensor:
        """Synthetic versions of any recording, including songs the augmenter never saw.

        The reference-conditioned version model (``versions=True``) transposes, changes the
        tempo of and re-renders a window of ``features`` (see ``docs/versions.md``).

        Crop and pad policy: each sample reads its own window of
        ``versions_.config.source_width`` frames (what the fastest tempo consumes, about
        ``1.25 * window_``), at a random start (``crop="random"``, seeded) or at the centre
        (``"center"``). A recording shorter than that is padded at the end with silence, as
        training windows are; one shorter than ``max(2, window_ // 4)`` frames is refused.

        Parameters
        ----------
        features : np.ndarray or torch.Tensor [shape=(n_bins, n_frames)]
            One recording in the augmenter's feature format (``[1, n_bins, n_frames]`` is
            accepted).
        n : int
            Number of versions (> 0).
        seed : int, optional
            Same seed, same samples. ``None`` draws fresh randomness.
        space : {"features", "model"}
            As in :meth:`sample`.
        crop : {"random", "center"}
            Where the reference windows are read (see above).
        truncation : float, optional
            Redraw style-latent entries with ``|z| > truncation``: smaller stays closer to the
            reference's rendering (key and tempo changes are drawn as usual).

        Returns
        -------
        torch.Tensor [shape=(n, 1, n_bins, window), dtype=float32, device=cpu]

        Raises
        ------
        NotFittedError
            Before :meth:`fit`, or an augmenter without a version model (fitted with
            ``versions=False`` or loaded from an older file; see :meth:`fit_versions`).
        ParameterError
            ``n <= 0`` or not an int; features that are not ``[n_bins, n_frames]`` with the
            augmenter's bins, contain NaN or inf, are negative (magnitude formats) or are too
            short; a bad ``space``, ``crop``, ``seed`` or ``truncation``.
        """
        return sample_versions(
            self._version_model(),
            self.normalizer_,
            features,
            n,
            seed=seed,
            space=space,
            crop=crop,
            silence=self.config_.silence_value,
            truncation=truncation,
        )

    def _version_model(self) -> VersionGAN:
        self._check_fitted()
        model: VersionGAN | None = getattr(self, "versions_", None)
        if model is None:
            raise NotFittedError(
                "this augmenter has no version model (it was fitted with versions=False or "
                "saved by an older covergan); call aug.fit_versions(dataset) or refit with "
                "Augmenter(versions=True)"
            )
        return model

    def version_augment(
        self,
        p: float = VERSION_AUGMENT_P,
        *,
        truncation: float | None = None,
        seed: int | torch.Generator | None = None,
    ) -> VersionAugment:
        """The version model as a training-time transform: each window, with probability
        ``p``, becomes a synthetic version of itself (:class:`~covergan.versions.VersionAugment`).

        For ``train_csi(..., augment=...)`` or a :class:`~covergan.augment.classic.Compose`;
        windows must be ``(B, 1, n_bins, window_)`` in the augmenter's feature format, and
        are tiled to the model's source width.

        Parameters
        ----------
        p : float
            Probability per window, in ``[0, 1]``; default
            :data:`~covergan.versions.VERSION_AUGMENT_P` (0.2).
        truncation : float, optional
            Style-latent truncation, as in :meth:`sample_like`.
        seed : int, torch.Generator or None
            The transform's own random stream (``None``: torch's global generator).

        Returns
        -------
        VersionAugment

        Raises
        ------
        NotFittedError
            Before :meth:`fit`, or without a version model (as :meth:`sample_like`).
        ParameterError
            A bad ``p``, ``truncation`` or ``seed``.
        """
        model = self._version_model()
        return VersionAugment(
            model,
            self.normalizer_,
            p=p,
            silence=self.config_.silence_value,
            truncation=truncation,
            seed=seed,
        )

    # ---------------------------------------------------------------------------- sampling

    def sample(
        self,
        song_id: SongId,
        n: int,
        *,
        space: Space = "features",
        seed: int | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """Synthetic CQT windows of one song.

        Parameters
        ----------
        song_id : str or int
            A song the augmenter was fitted on.
        n : int
            Number of samples (> 0).
        space : {"features", "model"}
            ``"features"``: exactly the extractor's feature format (same bins, pooling and
            scale as the real features, e.g. non-negative max-normalised magnitudes);
            ``"model"``: the GAN's ``[-1, 1]`` space.
        seed : int, optional
            Same seed, same samples. ``None`` draws from torch's global generator.
        truncation : float, optional
            Redraw noise entries with ``|z| > truncation`` (less diverse, more typical).

        Returns
        -------
        torch.Tensor [shape=(n, 1, n_bins, window), dtype=float32, device=cpu]

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        UnknownSongError
            ``song_id`` is not a fitted song (a ``KeyError``; the message suggests close ids).
        ParameterError
            ``n <= 0`` or not an int, or an unknown ``space``.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ParameterError(f"n={n!r} must be a positive integer")
        samples = self.sample_many({song_id: n}, space=space, seed=seed, truncation=truncation)
        return samples[song_id]

    def sample_many(
        self,
        counts: Mapping[SongId, int],
        *,
        space: Space = "features",
        seed: int | None = None,
        truncation: float | None = None,
    ) -> dict[SongId, torch.Tensor]:
        """Synthetic samples for many songs in one batched pass.

        Parameters
        ----------
        counts : mapping song id -> int
            Samples per song (>= 0; a :meth:`plan` can be passed as it is, songs with 0
            get an empty ``[0, 1, n_bins, window]`` tensor).
        space, seed, truncation
            As in :meth:`sample`.

        Returns
        -------
        dict song id -> torch.Tensor [shape=(n, 1, n_bins, window)]

        Raises
        ------
        NotFittedError, UnknownSongError, ParameterError
            As in :meth:`sample`; also an empty ``counts``.
        """
        self._check_fitted()
        if space not in ("features", "model"):
            raise ParameterError(f"space={space!r} must be 'features' or 'model'")
        if not counts:
            raise ParameterError("counts is empty: ask for at least one song")
        labels: list[int] = []
        for song, n in counts.items():
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ParameterError(f"n={n!r} for song {song!r} must be an integer >= 0")
            labels += [self.songs_.index(song)] * int(n)
        height, width = self.gan_.image_size
        if labels:
            x = self.gan_.generate(labels, generator=seed, truncation=truncation)
        else:
            x = torch.empty(0, 1, height, width)
        if space == "features":
            x = self.normalizer_.inverse(x)
        out: dict[SongId, torch.Tensor] = {}
        at = 0
        for song, n in counts.items():
            out[song] = x[at : at + int(n)]
            at += int(n)
        return out

    # ---------------------------------------------------------------------------- balancing

    def plan(
        self, target: Target = "median", *, max_ratio: float | None = None
    ) -> dict[SongId, int]:
        """How many synthetic samples each song needs to reach ``target`` recordings.

        Parameters
        ----------
        target : "max", "median" or int
            Recordings per song to reach: the largest song's count, the median count, or
            a number.
        max_ratio : float, optional
            At most ``floor(max_ratio * n_real)`` synthetic samples per song (a song with
            one recording and ``max_ratio=4`` gets at most 4).

        Returns
        -------
        dict song id -> int
            Every fitted song, in class order; 0 for songs already at or above target.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ParameterError
            An unknown target, a negative int target, or ``max_ratio < 0``.
        """
        self._check_fitted()
        return _plan_counts(self.songs_.class_counts(), target, max_ratio)

    def balance(
        self,
        dataset: CQTDataset,
        *,
        target: Target = "median",
        max_ratio: float | None = None,
        seed: int | None = None,
        bank_dir: str | os.PathLike[str] | None = None,
        return_flag: bool = True,
        method: Literal["gan", "versions"] = "gan",
    ) -> AugmentedDataset:
        """The real ``dataset`` plus synthetic samples for the songs below ``target``.

        Parameters
        ----------
        dataset : CQTDataset
            The real training set (items in the feature format, with its own windows and
            transform, e.g. classic augmentation); its window must equal ``window_``. A
            dataset without a window gets a random-crop view of ``window_`` frames.
            Synthetic items get the same ``transform``.
        target, max_ratio
            As in :meth:`plan`, counted on ``dataset``'s recordings.
        seed : int, optional
            Seed of the synthetic draw.
        bank_dir : str or PathLike, optional
            Store the samples in a memory-mapped :class:`SyntheticBank` there (refreshable)
            instead of in memory.
        return_flag : bool
            Items are ``(x, label, is_synthetic)``; ``False`` gives ``(x, label)``.
        method : {"gan", "versions"}
            ``"gan"``: samples of the class-conditional GAN (:meth:`sample_many`).
            ``"versions"``: synthetic versions of the song's own recordings in ``dataset``
            (:meth:`sample_like`, spread evenly over them), so songs the augmenter never
            saw can be balanced too; needs a version model, and no ``bank_dir``.

        Returns
        -------
        AugmentedDataset
            Labels in ``dataset``'s numbering.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ParameterError
            The dataset's window differs from ``window_``, or its bins from the model's;
            an unknown ``method``, or ``bank_dir`` with ``method="versions"``.
        UnknownSongError
            A song of ``dataset`` that needs samples is unknown to the augmenter
            (``method="gan"``).
        NotFittedError
            ``method="versions"`` without a version model.
        """
        self._check_fitted()
        if method not in ("gan", "versions"):
            raise ParameterError(f"method={method!r} must be 'gan' or 'versions'")
        if method == "versions" and bank_dir is not None:
            raise ParameterError("bank_dir is not supported with method='versions'")
        if not isinstance(dataset, CQTDataset):
            raise ParameterError(f"balance needs a CQTDataset, got {type(dataset).__name__}")
        if dataset.n_bins != self.config_.n_bins:
            raise ParameterError(
                f"the dataset has {dataset.n_bins} bins, the augmenter makes {self.config_.n_bins}"
            )
        if dataset.window is None:
            dataset = dataset.windows(self.window_, crop="random")
        elif dataset.window != self.window_:
            raise ParameterError(
                f"the dataset's window is {dataset.window} frames but synthetic samples are "
                f"{self.window_}; use dataset.windows({self.window_}) or refit with window="
                f"{dataset.window}"
            )
        counts = _plan_counts(dataset.class_counts(), target, max_ratio)
        needed = {s: n for s, n in counts.items() if n > 0}
        if not needed:
            return AugmentedDataset.from_tensors(dataset, {}, return_flag=return_flag)
        if method == "versions":
            return AugmentedDataset.from_tensors(
                dataset,
                self._versions_for(dataset, needed, seed),
                transform=dataset.transform,
                return_flag=return_flag,
            )
        if bank_dir is not None:
            bank = SyntheticBank.build(
                self,
                needed,
                bank_dir,
                index=dataset.index,
                seed=seed or 0,
                transform=dataset.transform,
            )
            return AugmentedDataset(dataset, bank, return_flag=return_flag)
        samples = self.sample_many(needed, seed=seed)
        return AugmentedDataset.from_tensors(
            dataset, samples, transform=dataset.transform, return_flag=return_flag
        )

    def _versions_for(
        self, dataset: CQTDataset, counts: Mapping[SongId, int], seed: int | None
    ) -> dict[SongId, torch.Tensor]:
        """``counts[song]`` versions of each song, spread evenly over its recordings."""
        items: dict[SongId, list[int]] = {}
        for i, song in enumerate(dataset.song_ids):
            items.setdefault(song, []).append(i)
        out: dict[SongId, torch.Tensor] = {}
        for song, n in counts.items():
            recordings = items[song]
            share = [
                n // len(recordings) + (k < n % len(recordings)) for k in range(len(recordings))
            ]
            parts = [
                self.sample_like(
                    dataset.features[i],
                    c,
                    seed=None if seed is None else _derive_seed(seed, i),
                )
                for i, c in zip(recordings, share, strict=True)
                if c > 0
            ]
            out[song] = torch.cat(parts)
        return out

    # ---------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write everything needed to sample (and resume training) into one file, atomically.

        The file holds the feature config, the song index, the normaliser, the GAN (EMA
        generator, generator, discriminator, optimiser states), the version model when
        there is one, the constructor parameters and the covergan version. An existing
        file is replaced only once the new one is completely written. A file without a
        version model has ``format_version`` 1 (older covergan reads it), one with it 2.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        self._check_fitted()
        versions = getattr(self, "versions_", None)
        state: dict[str, Any] = {
            **header(AUGMENTER_FORMAT, 1 if versions is None else 2),
            "params": {
                "preset": self.preset,
                "window": self.window,
                "steps": self.steps,
                "pretrain_steps": self.pretrain_steps,
                "batch_size": self.batch_size,
                "seed": self.seed,
            },
            "cqt_config": self.config_.to_dict(),
            "songs": self.songs_.to_dict(),
            "normalizer": self.normalizer_.state_dict(),
            "window_": self.window_,
            "seed_": self.seed_,
            "gan": self.gan_.state_dict(),
        }
        if versions is not None:
            state["versions"] = versions.state_dict()
            state["params"]["version_steps"] = self.version_steps
        return atomic_torch_save(state, path, make_parents=True)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, device: str | torch.device = "auto"
    ) -> Augmenter:
        """Rebuild a fitted augmenter from :meth:`save` output, safely.

        The file is read with ``torch.load(weights_only=True)``: only tensors and plain
        containers, so a crafted file cannot run code. ``sample`` after ``load`` equals
        ``sample`` before ``save`` for the same seed, and so does :meth:`sample_like`. A
        file without a version model (``versions=False``, or written by an older
        covergan) loads with ``versions_ = None``.

        Raises
        ------
        CheckpointError
            Missing, truncated or corrupt file; not an augmenter file (e.g. a GAN
            checkpoint or a foreign torch file); a newer format version; inconsistent
            contents.
        """
        source = Path(path).expanduser()
        state = read_checkpoint(source, "augmenter")
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{source} is not a covergan augmenter file; it is a GAN checkpoint: use "
                "ConditionalDCGAN.load"
            )
        state = check_header(
            state, AUGMENTER_FORMAT, AUGMENTER_FORMAT_VERSION, str(source), "augmenter"
        )
        try:
            params = dict(state["params"])
            config = CQTConfig.from_dict(state["cqt_config"])
            songs = SongIndex.from_dict(state["songs"])
            normalizer = CQTNormalizer.from_state_dict(state["normalizer"])
            window, seed = int(state["window_"]), int(state["seed_"])
            gan = ConditionalDCGAN.from_state_dict(state["gan"], device=device, source=str(source))
            versions = None
            if state.get("versions") is not None:
                versions = VersionGAN.from_state_dict(
                    state["versions"], device=device, source=f"{source} (version model)"
                )
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{source} is an incomplete augmenter file: {error!r}") from error
        if gan.n_classes != len(songs) or gan.image_size != (config.n_bins, window):
            raise CheckpointError(f"{source}: the GAN does not match the stored songs or window")
        if not normalizer.is_fitted:
            raise CheckpointError(f"{source}: the normaliser statistics are missing")
        if versions is not None and versions.image_size != (config.n_bins, window):
            raise CheckpointError(f"{source}: the version model does not match the window")
        aug = cls(
            extractor=CQTExtractor(config),
            preset=params.get("preset", gan.preset),
            gan=gan.config,
            window=params.get("window"),
            steps=params.get("steps", 3000),
            pretrain_steps=params.get("pretrain_steps"),
            batch_size=params.get("batch_size"),
            device=device,
            seed=params.get("seed"),
            versions=False if versions is None else versions.config,
            version_steps=params.get("version_steps"),
        )
        aug.songs_, aug.config_, aug.normalizer_ = songs, config, normalizer
        aug.versions_ = versions
        aug.window_, aug.seed_, aug.gan_, aug.history_ = window, seed, gan, gan.history
        return aug


def _auto_window(lengths: np.ndarray) -> int:
    """Median track length, capped at :data:`MAX_AUTO_WINDOW`, rounded down to a multiple of 4."""
    median = int(np.median(lengths))
    return max(8, min(MAX_AUTO_WINDOW, median) // 4 * 4)


def _plan_counts(
    counts: Mapping[SongId, int], target: Target, max_ratio: float | None
) -> dict[SongId, int]:
    values = np.asarray(list(counts.values()))
    if target == "max":
        goal = int(values.max())
    elif target == "median":
        goal = int(np.ceil(np.median(values)))
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool) and target >= 0:
        goal = int(target)
    else:
        raise ParameterError(f"target={target!r} must be 'max', 'median' or an int >= 0")
    if max_ratio is not None and not (np.isfinite(max_ratio) and max_ratio >= 0):
        raise ParameterError(f"max_ratio={max_ratio!r} must be a number >= 0")
    plan: dict[SongId, int] = {}
    for song, n_real in counts.items():
        need = max(0, goal - n_real)
        if max_ratio is not None:
            need = min(need, int(np.floor(max_ratio * n_real)))
        plan[song] = need
    return plan
