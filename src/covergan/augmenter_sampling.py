"""What a fitted :class:`~covergan.Augmenter` hands out: samples of a song, versions of any
recording, a training-time transform, and balanced datasets.

:class:`AugmenterSampling` is the sampling half of the augmenter (the fitting half, the
constructor arguments and the files are in :mod:`covergan.augmenter`). It reads only the
fitted state (``songs_``, ``config_``, ``normalizer_``, ``window_``, ``models_``) and asks
the fitted :mod:`covergan.synthesis` models for samples; ``plan`` and ``balance`` count with
:mod:`covergan.balancing`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from covergan._checks import check_count
from covergan.balancing import Target, balance, plan_counts
from covergan.cqt import CQTConfig, CQTNormalizer
from covergan.data import CQTDataset, SongId, SongIndex
from covergan.errors import NotFittedError, ParameterError
from covergan.sampling import AugmentedDataset
from covergan.synthesis import REGISTRY, SynthesisModel
from covergan.synthesis.base import Method, Space
from covergan.versions import VERSION_AUGMENT_P, VersionAugment, VersionGAN, sample_versions

__all__ = ["AugmenterSampling"]

_NAMES = {"versions": "version model"}  # what error messages call a model besides its label
_HOW_TO_FIT = {  # model: (what else explains its absence, how to get one)
    "gan": (
        "",
        "refit with Augmenter(model=('versions', 'gan')) (command line: covergan fit DATA "
        "OUT --model versions,gan)",
    ),
    "versions": (
        ", or saved by an older covergan",
        "call aug.fit_versions(dataset), or refit with Augmenter(model='versions') (command "
        "line: covergan fit DATA OUT)",
    ),
}


class AugmenterSampling:
    """The sampling methods of :class:`~covergan.Augmenter` (see the module docstring)."""

    songs_: SongIndex
    config_: CQTConfig
    normalizer_: CQTNormalizer
    window_: int
    models_: dict[Method, SynthesisModel]
    #: The ``model`` constructor argument.
    model: Method | Sequence[Method]

    @property
    def models(self) -> tuple[Method, ...]:
        """The ``model`` argument as a tuple of names (the first is the default)."""
        names = (self.model,) if isinstance(self.model, str) else tuple(self.model)
        if not names or any(m not in REGISTRY for m in names) or len(set(names)) != len(names):
            raise ParameterError(
                f"model={self.model!r} must be one of {tuple(REGISTRY)} or a sequence of them "
                "(the first is the default for sample)"
            )
        return names

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has run."""
        return hasattr(self, "normalizer_")

    def _check_fitted(self, what: str = "this Augmenter is not fitted yet") -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{what}; call fit(dataset) or Augmenter.load(path)")

    def _method(self, method: Method | None) -> Method:
        """The model a sampling call uses: ``method``, else the first of ``model``."""
        self._check_fitted()
        if method is None:
            method = self.models[0]
        if method not in REGISTRY:
            raise ParameterError(f"method={method!r} must be one of {tuple(REGISTRY)}")
        self._model(method)
        return method

    def _model(self, name: Method) -> SynthesisModel:
        """The fitted model ``name``, or a NotFittedError that says how to get one."""
        self._check_fitted()
        model = self.models_.get(name)
        if model is None:
            also, how = _HOW_TO_FIT.get(name, ("", f"refit with Augmenter(model={name!r})"))
            fitted = self.models[0] if len(self.models) == 1 else self.models
            raise NotFittedError(
                f"this augmenter has no {_NAMES.get(name, REGISTRY[name].label)} (fitted with "
                f"model={fitted!r}{also}); {how}"
            )
        return model

    def _version_model(self) -> VersionGAN:
        """The fitted version model's network, or a NotFittedError that says how to get one."""
        network: VersionGAN = self._model("versions").network
        return network

    # ---------------------------------------------------------------------------- versions

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

        The reference-conditioned version model (``versions_``) transposes, changes the
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
            ``model="gan"`` or loaded from an older file; see :meth:`fit_versions`).
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
        method: Method | None = None,
        space: Space = "features",
        seed: int | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """New synthetic windows of one song: by default, new versions of it.

        With ``method="versions"`` (the default when the version model was fitted first),
        each sample is the version model applied to one of the song's reference windows
        (:attr:`references_`, windows of its own training recordings; the song's windows
        are used in turn, in a seeded shuffled order): the song's melody and harmony,
        transposed, at another tempo, with another sound. With ``method="gan"``, samples of
        the class-conditional GAN for that song.

        Parameters
        ----------
        song_id : str or int
            A song the augmenter was fitted on.
        n : int
            Number of samples (> 0).
        method : {"versions", "gan"}, optional
            The model to sample; default the first of ``model``.
        space : {"features", "model"}
            ``"features"``: exactly the extractor's feature format (same bins, pooling and
            scale as the real features, e.g. non-negative max-normalised magnitudes);
            ``"model"``: the models' ``[-1, 1]`` space.
        seed : int, optional
            Same seed, same samples (for a song, whatever else is sampled with it in
            :meth:`sample_many`). ``None`` draws fresh randomness.
        truncation : float, optional
            Redraw latent entries with ``|z| > truncation`` (less diverse, more typical).

        Returns
        -------
        torch.Tensor [shape=(n, 1, n_bins, window), dtype=float32, device=cpu]

        Raises
        ------
        NotFittedError
            Before :meth:`fit`, or ``method`` names a model that was not fitted.
        UnknownSongError
            ``song_id`` is not a fitted song (a ``KeyError``; the message suggests close ids).
        DatasetError
            ``method="versions"`` for a song none of whose recordings was long enough to
            keep a reference window (shorter than a quarter window).
        ParameterError
            ``n <= 0`` or not an int, or an unknown ``space`` or ``method``.
        """
        check_count("n", n, 1)
        samples = self.sample_many(
            {song_id: n}, method=method, space=space, seed=seed, truncation=truncation
        )
        return samples[song_id]

    def sample_many(
        self,
        counts: Mapping[SongId, int],
        *,
        method: Method | None = None,
        space: Space = "features",
        seed: int | None = None,
        truncation: float | None = None,
    ) -> dict[SongId, torch.Tensor]:
        """Synthetic samples for many songs.

        Parameters
        ----------
        counts : mapping song id -> int
            Samples per song (>= 0; a :meth:`plan` can be passed as it is, songs with 0
            get an empty ``[0, 1, n_bins, window]`` tensor).
        method, space, seed, truncation
            As in :meth:`sample`.

        Returns
        -------
        dict song id -> torch.Tensor [shape=(n, 1, n_bins, window)]

        Raises
        ------
        NotFittedError, UnknownSongError, DatasetError, ParameterError
            As in :meth:`sample`; also an empty ``counts``.
        """
        method = self._method(method)
        if space not in ("features", "model"):
            raise ParameterError(f"space={space!r} must be 'features' or 'model'")
        if not counts:
            raise ParameterError("counts is empty: ask for at least one song")
        check_count("seed", seed, 0, optional=True)
        labels: dict[SongId, int] = {}
        for song, n in counts.items():
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ParameterError(f"n={n!r} for song {song!r} must be an integer >= 0")
            labels[song] = self.songs_.index(song)  # raises UnknownSongError
        wanted = {song: int(n) for song, n in counts.items() if n > 0}
        samples = {}
        if wanted:
            samples = self._model(method).sample(
                wanted,
                {s: labels[s] for s in wanted},
                self.normalizer_,
                space=space,
                seed=seed,
                truncation=truncation,
            )
        empty = torch.empty(0, 1, self.config_.n_bins, self.window_)
        return {song: samples.get(song, empty) for song in counts}

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
        return plan_counts(self.songs_.class_counts(), target, max_ratio)

    def balance(
        self,
        dataset: CQTDataset,
        *,
        target: Target = "median",
        max_ratio: float | None = None,
        seed: int | None = None,
        bank_dir: str | os.PathLike[str] | None = None,
        return_flag: bool = True,
        method: Method | None = None,
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
            Store the samples in a memory-mapped :class:`SyntheticBank` there (refreshable,
            drawn with :meth:`sample_many`) instead of in memory.
        return_flag : bool
            Items are ``(x, label, is_synthetic)``; ``False`` gives ``(x, label)``.
        method : {"versions", "gan"}, optional
            Default: the first of ``model``. ``"versions"``: new versions of the song's own
            recordings in ``dataset`` (:meth:`sample_like`, spread evenly over them), so songs
            the augmenter never saw can be balanced too; with ``bank_dir``, versions of the
            song's reference windows (:meth:`sample_many`; fitted songs only). ``"gan"``:
            samples of the class-conditional GAN.

        Returns
        -------
        AugmentedDataset
            Labels in ``dataset``'s numbering.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`, or ``method`` names a model that was not fitted.
        ParameterError
            The dataset's window differs from ``window_``, or its bins from the model's;
            an unknown ``method``.
        UnknownSongError
            A song of ``dataset`` that needs samples is unknown to the augmenter (``"gan"``,
            or ``bank_dir``).
        DatasetError
            ``"versions"``: a song that needs samples has no recording of a quarter window
            or more (in ``dataset``; with ``bank_dir``, in the fitted data), nothing to make
            versions of (nothing is kept then).
        """
        return balance(
            self,
            dataset,
            method=self._method(method),
            target=target,
            max_ratio=max_ratio,
            seed=seed,
            bank_dir=bank_dir,
            return_flag=return_flag,
        )
