"""The user-facing facade: fit on song-labelled CQTs, hand out new versions of a song.

>>> aug = Augmenter(seed=0).fit(dataset)        # CQTDataset, CoverSet, pairs, mapping, folder
>>> extra = aug.sample("song-042", n=16)        # Tensor [16, 1, 84, W]: new versions of it
>>> more = aug.sample_like(cqt, n=16)           # versions of any recording, even unseen songs
>>> mixed = aug.balance(train)                  # real + synthetic items for a DataLoader

Two synthesis models can be fitted (``model=``): the reference-conditioned version model
(``"versions"``, the default: the one with a measured gain for a CSI model, see
``docs/benchmarks.md``) and the class-conditional GAN (``"gan"``, the 2021 thesis's
approach; its samples measured no better than other crops of a song's own recordings).
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from covergan._checks import check_count
from covergan.augmenter_sampling import AugmenterSampling
from covergan.balancing import Target
from covergan.cqt import CQTConfig, CQTExtractor, CQTNormalizer
from covergan.data import CQTDataset, SongIndex
from covergan.distributed import _agree_seed
from covergan.errors import DatasetError, ParameterError
from covergan.gan import ConditionalDCGAN, GANConfig
from covergan.inputs import DatasetLike, as_dataset
from covergan.references import DEFAULT_REFERENCES, ReferenceBank
from covergan.synthesis import (
    MIN_VERSION_WORKS,
    REGISTRY,
    FitContext,
    SynthesisModel,
    VersionModel,
)
from covergan.synthesis.base import Method
from covergan.training import Callback
from covergan.versions import (
    VersionConfig,
    VersionGAN,
)

__all__ = [
    "DEFAULT_STEPS",
    "MIN_VERSION_WORKS",
    "MODELS",
    "Augmenter",
    "DatasetLike",
    "Method",
    "Target",
]

logger = logging.getLogger(__name__)

#: The built-in synthesis models, by name (:data:`covergan.synthesis.REGISTRY` may hold more).
MODELS: tuple[Method, ...] = tuple(REGISTRY)

#: Training steps of each model when ``Augmenter(steps=...)`` is not given.
DEFAULT_STEPS = 3000

#: Most recordings the normaliser's statistics are read from (a seeded draw; every recording
#: of a smaller dataset): bounds a catalogue-size fit's first pass over the data.
NORMALIZER_TRACKS = 2000

#: The constructor arguments (:meth:`Augmenter.get_params`).
_PARAMS = (
    "model",
    "extractor",
    "preset",
    "gan",
    "versions",
    "window",
    "steps",
    "pretrain_steps",
    "version_steps",
    "references",
    "batch_size",
    "device",
    "n_jobs",
    "workers",
    "cache_dir",
    "progress",
    "seed",
)


class Augmenter(AugmenterSampling):
    """Learn how a song's versions vary and sample new ones, in the data's feature format.

    Follows the scikit-learn estimator contract: ``__init__`` only stores its arguments,
    :meth:`fit` learns and returns ``self``, fitted state lives in attributes ending in
    ``_`` and using them before ``fit`` raises :class:`~covergan.errors.NotFittedError`.

    Parameters
    ----------
    model : {"versions", "gan"} or sequence of them
        The synthesis models to fit; the first is what :meth:`sample`, :meth:`sample_many`
        and :meth:`balance` use unless told otherwise (``method=``). ``"versions"`` (the
        default): the reference-conditioned version model
        (:class:`~covergan.versions.VersionGAN`), which learns from works with two or more
        recordings how versions differ, and makes a song's new versions from windows of its
        own recordings (the reference bank); with a classic-augmentation CSI model on a
        300-work corpus its versions of the rare songs raised held-out-work MAP from 0.367
        to 0.418 (ten seeds, all up). ``"gan"``: the class-conditional GAN
        (:class:`~covergan.ConditionalDCGAN`), which learns each song's windows from that
        song's recordings alone; its samples measured no better than other crops of the
        same recordings. ``("versions", "gan")`` fits both (twice the time).
    extractor : CQTExtractor, optional
        Turns audio into features when ``fit`` gets audio (a folder, a ``CoverSet``); its
        config is the feature format of samples. Default ``CQTExtractor()`` (the CQTNet
        recipe). For a :class:`~covergan.data.CQTDataset` the dataset's own config wins.
    preset : {"default", "thesis"}
        Class-GAN architecture and recipe (see :class:`~covergan.ConditionalDCGAN`).
    gan : GANConfig or mapping, optional
        Class-GAN hyper-parameters, or overrides of the preset's (``{"lr_g": 1e-4}``).
    versions : VersionConfig or mapping, optional
        Version-model hyper-parameters, or overrides of the defaults. The image size of
        both models is always ``(n_bins, window)``. (``True``/``False`` are the deprecated
        spellings of ``model=("gan", "versions")`` / ``model="gan"``.)
    window : int, optional
        Width (pooled frames) of training windows and samples. Default: the median
        track length, capped at 200 and rounded down to a multiple of 4.
    steps : int
        Adversarial steps of each model (the class GAN's; the version model's unless
        ``version_steps`` is set).
    pretrain_steps : int, optional
        Class-GAN autoencoder steps before adversarial training; default ``steps // 5``
        for the ``"default"`` preset and 0 for ``"thesis"``. (The version model always
        pretrains ``version_steps // 5`` steps, see :meth:`fit_versions`.)
    version_steps : int, optional
        Adversarial steps of the version model; default ``steps``.
    references : int
        Windows of each song's recordings kept as the version model's references (at most;
        float16, :class:`~covergan.references.ReferenceBank` states the bytes; past 1 GiB in
        all the bank keeps fewer per song, 2 each at 10,000 songs, but never fewer than one).
        Default 8.
    batch_size : int, optional
        Class-GAN batch; default the GAN config's.
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU) or explicit.
    n_jobs : int
        Extraction processes for audio folders.
    workers : int
        Processes that cut training windows ahead of each step (0, the default: this
        process). The windows are the same either way; worth it on a GPU, where cutting can
        take longer than the step (see ``benchmarks/gpu.py``).
    cache_dir : str or PathLike, optional
        Feature cache for audio folders.
    progress : bool
        tqdm bars for extraction and training.
    seed : int, optional
        Seeds crops, initialisation and training: on CPU the same seed gives the same
        model. ``None`` draws one (kept in ``seed_``).

    Attributes
    ----------
    songs_ : SongIndex
        The songs fitted on, with their recording counts.
    normalizer_ : CQTNormalizer
        Features <-> the models' [-1, 1] space.
    config_ : CQTConfig
        Feature format of the training data and of samples in ``space="features"``.
    window_ : int
    seed_ : int
    models_ : dict of str to SynthesisModel
        The fitted synthesis models by name (:mod:`covergan.synthesis`), in ``model`` order.
    versions_ : VersionGAN or None
        The version model's network (``None`` when not fitted).
    references_ : ReferenceBank or None
        The windows :meth:`sample` turns into versions (with ``versions_``).
    gan_ : ConditionalDCGAN or None
        The class-conditional GAN (``None`` when not fitted).
    history_ : dict of str to list of float
        Per-step losses of the first model.
    """

    songs_: SongIndex
    config_: CQTConfig
    normalizer_: CQTNormalizer
    window_: int
    seed_: int
    models_: dict[Method, SynthesisModel]

    def __init__(
        self,
        *,
        model: Method | Sequence[Method] = "versions",
        extractor: CQTExtractor | None = None,
        preset: str = "default",
        gan: GANConfig | Mapping[str, Any] | None = None,
        versions: VersionConfig | Mapping[str, Any] | bool | None = None,
        window: int | None = None,
        steps: int = DEFAULT_STEPS,
        pretrain_steps: int | None = None,
        version_steps: int | None = None,
        references: int = DEFAULT_REFERENCES,
        batch_size: int | None = None,
        device: str | torch.device = "auto",
        n_jobs: int = 1,
        workers: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
        seed: int | None = None,
    ) -> None:
        if isinstance(versions, bool):
            spelled = "model=('gan', 'versions')" if versions else "model='gan'"
            warnings.warn(
                f"Augmenter(versions={versions}) is deprecated: write {spelled} (the old "
                "default, the class GAN first); the default is now model='versions'",
                DeprecationWarning,
                stacklevel=2,
            )
            model, versions = (("gan", "versions") if versions else "gan"), None
        self.model = model
        self.extractor = extractor
        self.preset = preset
        self.gan = gan
        self.versions = versions
        self.window = window
        self.steps = steps
        self.pretrain_steps = pretrain_steps
        self.version_steps = version_steps
        self.references = references
        self.batch_size = batch_size
        self.device = device
        self.n_jobs = n_jobs
        self.workers = workers
        self.cache_dir = cache_dir
        self.progress = progress
        self.seed = seed

    def __repr__(self) -> str:
        state = f"fitted on {len(self.songs_)} songs" if self.is_fitted else "not fitted"
        return f"Augmenter(model={self.models}, steps={self.steps}, seed={self.seed}; {state})"

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, by name (what the synthesis models read)."""
        return {name: getattr(self, name) for name in _PARAMS}

    @property
    def gan_(self) -> ConditionalDCGAN | None:
        """The class GAN's network, ``None`` when it was not fitted."""
        model = self._fitted_models().get("gan")
        return None if model is None else model.network

    @property
    def versions_(self) -> VersionGAN | None:
        """The version model's network, ``None`` when it was not fitted."""
        model = self._fitted_models().get("versions")
        return None if model is None else model.network

    @property
    def references_(self) -> ReferenceBank | None:
        """The version model's reference bank, ``None`` without one."""
        model = self._fitted_models().get("versions")
        return model.references if isinstance(model, VersionModel) else None

    def _fitted_models(self) -> dict[Method, SynthesisModel]:
        self._check_fitted()
        return self.models_

    @property
    def steps_done(self) -> dict[Method, int]:
        """Adversarial steps each fitted model has taken, by model name."""
        fitted = self.__dict__.get("models_", {})
        return {name: fitted[name].step for name in self.models if name in fitted}

    @property
    def steps_planned(self) -> dict[Method, int]:
        """Adversarial steps each model trains for in all, by model name."""
        params = self.get_params()
        return {name: REGISTRY[name].planned_steps(params) for name in self.models}

    @property
    def history_(self) -> dict[str, list[float]]:
        """Per-step losses of the first model (empty until it has taken a step)."""
        model = self._fitted_models().get(self.models[0])
        return {} if model is None else model.history

    # ---------------------------------------------------------------------------- fitting

    def fit(
        self, dataset: Any, *, callbacks: Sequence[Callback] = (), resume: bool = False
    ) -> Augmenter:
        """Fit the normaliser and train the models in ``model``; refitting starts afresh.

        Parameters
        ----------
        dataset : DatasetLike
            A :class:`~covergan.data.CQTDataset` (e.g. :func:`~covergan.datasets.chorale_covers`),
            a :class:`~covergan.store.FeatureStore` (or its folder), a
            :class:`~covergan.datasets.CoverSet` (audio, e.g.
            :func:`~covergan.datasets.toy_covers`; extracted with ``extractor``), an iterable
            of ``(features, song_id)`` pairs, a mapping ``song_id -> [features, ...]``, or a
            folder ``ROOT/<song_id>/<recording>.<npy|wav|flac|ogg|mp3>``. Features are
            ``[n_bins, n_frames]`` arrays in the extractor's format. Songs with a single
            recording are fine: the version model learns from the other works.
        callbacks : sequence of Callback
            Called after every adversarial step of each model (checkpoints, a graceful stop).
        resume : bool
            Continue a fitted (or loaded) augmenter where it stopped, on the dataset of the
            first ``fit`` (checked by song ids and recording counts): each model runs the
            steps it still has to do, a model not trained yet is trained. On CPU an
            interrupted, saved, loaded and resumed run equals the uninterrupted one weight
            for weight. Raise ``steps`` first to train a finished augmenter longer.

        Returns
        -------
        self

        Raises
        ------
        DatasetError
            Empty dataset, fewer than two songs, or (``"versions"``) fewer than
            :data:`MIN_VERSION_WORKS` works with two or more recordings or every recording
            shorter than a quarter window (no reference windows); with ``resume``, a
            dataset other than the one fitted on.
        ParameterError
            Bad constructor arguments or malformed items.
        NotFittedError
            ``resume=True`` on an augmenter that is not fitted.

        Notes
        -----
        The fitted attributes are set once the first model's pretraining is done, before its
        first adversarial step. If training stops early (``KeyboardInterrupt``, or an
        exception raised by a callback), the augmenter holds the models as of the last
        completed step: :meth:`save` it, and later :meth:`load` and ``fit(dataset,
        resume=True)`` (what ``covergan fit --resume`` does). A stop during the first
        pretraining leaves the augmenter unfitted.
        """
        _check_params(self)
        data = self._as_dataset(dataset)
        if resume:
            return _resume(self, data, callbacks)
        if data.n_songs < 2:
            raise DatasetError(
                f"the dataset has {data.n_songs} song; an Augmenter balances songs and needs "
                "at least 2 (for one song, train a ConditionalDCGAN(n_classes=0) directly)"
            )
        # under torchrun every rank must crop and shuffle alike: rank 0's random seed wins
        seed = self.seed if self.seed is not None else _agree_seed(secrets.randbits(31))
        config = data.config if data.config is not None else self._extractor().config
        window = self.window if self.window is not None else data.default_window()
        params = self.get_params()
        for name in self.models:  # a bad model config or dataset fails before any training
            REGISTRY[name].check(params, data, window=window, config=config)
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)  # refit from scratch
        normalizer = CQTNormalizer.for_config(config).fit(
            data, max_tracks=NORMALIZER_TRACKS, seed=seed
        )
        ctx = FitContext(data, config, normalizer, window, seed, self.device, self.progress)
        for name in self.models:
            _train(self, name, ctx, callbacks)
        return self

    def fit_versions(
        self, dataset: Any, *, steps: int | None = None, pretrain_steps: int | None = None
    ) -> Augmenter:
        """Train (or retrain from scratch) the version model and its reference bank.

        Adds a version model to an augmenter fitted with ``model="gan"`` or saved by an
        older covergan, and makes ``"versions"`` available to :meth:`sample`. The class GAN
        is left as it is.

        Parameters
        ----------
        dataset : DatasetLike
            The recordings the augmenter was fitted on (any :meth:`fit` input), in its
            feature format; works with two or more recordings give the training pairs, and
            every known song gets reference windows.
        steps : int, optional
            Adversarial steps; default ``version_steps``, else ``steps``.
        pretrain_steps : int, optional
            Style-autoencoder steps first (:meth:`VersionGAN.pretrain_autoencoder`); default
            ``steps // 5``.

        Returns
        -------
        self

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        DatasetError
            Fewer than :data:`MIN_VERSION_WORKS` works with two or more recordings, or
            every recording shorter than a quarter window.
        ParameterError
            Bad ``versions``/``steps``/``pretrain_steps``, or bins that differ from the
            augmenter's.
        """
        return _fit_versions(self, dataset, steps, pretrain_steps)

    # ---------------------------------------------------------------------------- settings

    def _extractor(self) -> CQTExtractor:
        return self.extractor if self.extractor is not None else CQTExtractor()

    def _as_dataset(self, dataset: Any) -> CQTDataset:
        return as_dataset(
            dataset,
            self.extractor,
            n_jobs=self.n_jobs,
            cache_dir=self.cache_dir,
            progress=self.progress,
        )

    # ---------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write everything needed to sample (and resume training) into one file, atomically.

        The file holds the feature config, the song index, the normaliser, each fitted
        model (weights, EMA weights, optimiser states, step counters), the reference bank,
        the constructor parameters and the covergan version (see
        :mod:`covergan.persistence`). An existing file is replaced only once the new one is
        completely written.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        from covergan.persistence import save_augmenter

        self._check_fitted()
        return save_augmenter(self, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, device: str | torch.device = "auto"
    ) -> Augmenter:
        """Rebuild a fitted augmenter from :meth:`save` output, safely.

        The file is read with ``torch.load(weights_only=True)``: only tensors and plain
        containers, so a crafted file cannot run code. ``sample`` after ``load`` equals
        ``sample`` before ``save`` for the same seed, and so does :meth:`sample_like`. Files
        of earlier covergan releases load as what they were: the class GAN first (and the
        version model where there was one, without a reference bank; :meth:`fit_versions`
        adds one).

        Raises
        ------
        CheckpointError
            Missing, truncated or corrupt file; not an augmenter file (e.g. a GAN
            checkpoint or a foreign torch file); a newer format version; inconsistent
            contents.
        """
        from covergan.persistence import load_augmenter

        return load_augmenter(cls, path, device=device)


def _train(
    aug: Augmenter,
    name: Method,
    ctx: FitContext,
    callbacks: Sequence[Callback],
    *,
    pretrain: int | None = None,
) -> None:
    """Build, pretrain and train model ``name``; a new fit's fitted attributes are set
    once the first model's pretraining is done (so that a stop after a step can be
    saved)."""
    params = aug.get_params()
    cls = REGISTRY[name]
    model = cls.build(params, ctx)
    logger.info(
        "training the %s model on %d recordings of %d songs, %d x %d windows, %d steps",
        name,
        len(ctx.data),
        ctx.data.n_songs,
        ctx.data.n_bins,
        ctx.window,
        cls.planned_steps(params),
    )
    model.pretrain(params, ctx, cls.default_pretrain(params) if pretrain is None else pretrain)
    if not aug.is_fitted:
        aug.songs_, aug.config_, aug.normalizer_ = ctx.data.index, ctx.config, ctx.normalizer
        aug.window_, aug.seed_, aug.models_ = ctx.window, ctx.seed, {}
    aug.models_[name] = model
    model.train(params, ctx, callbacks)


def _context(aug: Augmenter, data: CQTDataset) -> FitContext:
    """The fitting context of a fitted augmenter on ``data``."""
    return FitContext(
        data,
        aug.config_,
        aug.normalizer_,
        aug.window_,
        aug.seed_,
        aug.device,
        aug.progress,
    )


def _resume(aug: Augmenter, data: CQTDataset, callbacks: Sequence[Callback]) -> Augmenter:
    """``fit(data, resume=True)``: each model of ``model`` runs the steps it still has to do
    (a model not trained yet is trained)."""
    aug._check_fitted("fit(resume=True) continues a fitted augmenter; this one is not fitted")
    if data.index != aug.songs_:
        raise DatasetError(
            f"fit(resume=True) needs the dataset the augmenter was fitted on ("
            f"{len(aug.songs_)} songs, {sum(aug.songs_.class_counts().values())} "
            f"recordings); got {data.n_songs} songs, {len(data)} recordings, or other ids "
            "or counts"
        )
    if data.n_bins != aug.config_.n_bins:
        raise DatasetError(
            f"the dataset has {data.n_bins} bins, the augmenter was fitted on {aug.config_.n_bins}"
        )
    params, ctx = aug.get_params(), _context(aug, data)
    for name in aug.models:
        model = aug.models_.get(name)
        if model is None:
            REGISTRY[name].check(params, data, window=aug.window_, config=aug.config_)
            _train(aug, name, ctx, callbacks)
        elif model.step >= REGISTRY[name].planned_steps(params):
            logger.info("the %s model already has %d steps", name, model.step)
        else:
            model.train(params, ctx, callbacks)
    return aug


def _fit_versions(
    aug: Augmenter, dataset: Any, steps: int | None, pretrain_steps: int | None
) -> Augmenter:
    """:meth:`Augmenter.fit_versions`."""
    aug._check_fitted()
    params = aug.get_params()
    steps = VersionModel.planned_steps(params) if steps is None else steps
    steps = check_count("version steps", steps, 1)
    pretrain = check_count(
        "pretrain_steps", steps // 5 if pretrain_steps is None else pretrain_steps, 0
    )
    data = aug._as_dataset(dataset)
    if data.n_bins != aug.config_.n_bins:
        raise ParameterError(
            f"the dataset has {data.n_bins} bins, the augmenter makes {aug.config_.n_bins}"
        )
    VersionModel.check(params, data, window=aug.window_, config=aug.config_)
    aug.version_steps = steps
    if "versions" not in aug.models:
        aug.model = (*aug.models, "versions")
    aug.models_.pop("versions", None)
    _train(aug, "versions", _context(aug, data), (), pretrain=pretrain)
    return aug


def _check_params(aug: Augmenter) -> None:
    """The constructor arguments, checked when ``fit`` starts (``__init__`` only stores)."""
    aug.models  # noqa: B018 (validates ``model``)
    # NumPy integers are taken and stored as Python ints (the file loads weights-only)
    aug.steps = check_count("steps", aug.steps, 1)
    aug.pretrain_steps = check_count("pretrain_steps", aug.pretrain_steps, 0, optional=True)
    aug.version_steps = check_count("version_steps", aug.version_steps, 1, optional=True)
    aug.references = check_count("references", aug.references, 1)
    aug.workers = check_count("workers", aug.workers, 0)
    aug.window = check_count("window", aug.window, 2, optional=True)
    aug.seed = check_count("seed", aug.seed, 0, optional=True)
    if aug.extractor is not None and not isinstance(aug.extractor, CQTExtractor):
        raise ParameterError(f"extractor must be a CQTExtractor, got {type(aug.extractor)}")
    if aug.gan is not None and not isinstance(aug.gan, (GANConfig, Mapping)):
        raise ParameterError(
            f"gan must be a GANConfig or a mapping of overrides, got {type(aug.gan)}"
        )
    if aug.versions is not None and not isinstance(aug.versions, (VersionConfig, Mapping)):
        raise ParameterError(
            f"versions must be a VersionConfig or a mapping of overrides, got "
            f"{type(aug.versions).__name__}"
        )
    for name, what in (("gan", "class GAN"), ("versions", "version model")):
        if getattr(aug, name) is not None and name not in aug.models:
            raise ParameterError(
                f"{name}= configures the {what}, which model={aug.model!r} does not fit; "
                f"add {name!r} to model, or leave {name}= out"
            )
