"""Filtering of synthetic CQTs: keep the samples that look like the song they were drawn for.

A conditional GAN trained on a few recordings per song makes some samples that do not carry
their song's identity (collapsed, blurred towards another song, or generic). Before mixing
samples into a training set, :func:`filter_synthetic` keeps only those that a classifier
trained on **real** data attributes to their conditioning song (top-``k`` rank and/or a
probability threshold, then optionally the best ``n`` per song), and
:func:`filter_by_discriminator` keeps the ones the GAN's own discriminator scores highest for
their song. Both take and return the ``{song_id: Tensor[n, 1, n_bins, W]}`` mappings of
:meth:`covergan.Augmenter.sample_many`, so they slot in between sampling and
:meth:`covergan.sampling.AugmentedDataset.from_tensors`::

    plan = {s: n for s, n in aug.plan("max", max_ratio=4).items() if n > 0}
    drawn = aug.sample_many({s: 3 * n for s, n in plan.items()}, seed=0)  # oversample 3x
    result = filter_synthetic(drawn, csi_model, index=train.index, top_k=1, max_per_song=plan)
    mixed = AugmentedDataset.from_tensors(train_windows, result.samples)
    result.acceptance                                                    # share accepted

Oversampling and then keeping the best ``max_per_song[s]`` samples keeps the number of
synthetic items per song as planned while discarding the worst draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from covergan._checks import check_count
from covergan.data import SongId, SongIndex
from covergan.errors import NotFittedError, ParameterError

__all__ = [
    "FilterResult",
    "classifier_scores",
    "discriminator_scores",
    "filter_by_discriminator",
    "filter_synthetic",
]

Samples = Mapping[SongId, torch.Tensor]
Classifier = Callable[[torch.Tensor], torch.Tensor]
PerSong = int | Mapping[SongId, int] | None


@dataclass(frozen=True)
class FilterResult:
    """What a filter kept, and why.

    Attributes
    ----------
    samples : dict of song id -> torch.Tensor [shape=(n_kept, 1, n_bins, W)]
        The kept samples of every input song, in their input order (a song with nothing kept
        maps to an empty ``[0, 1, n_bins, W]`` tensor). Ready for
        :meth:`~covergan.sampling.AugmentedDataset.from_tensors`.
    scores : dict of song id -> torch.Tensor [shape=(n_in,), dtype=float32]
        Score of every input sample (classifier probability of its song, or discriminator
        logit); higher is better.
    accepted : dict of song id -> torch.Tensor [shape=(n_in,), dtype=bool]
        Samples that passed the criteria (before the per-song quota).
    kept : dict of song id -> torch.Tensor [shape=(n_in,), dtype=bool]
        Samples in ``samples`` (accepted, within ``max_per_song``, or topped up to
        ``min_per_song``).
    """

    samples: dict[SongId, torch.Tensor]
    scores: dict[SongId, torch.Tensor]
    accepted: dict[SongId, torch.Tensor]
    kept: dict[SongId, torch.Tensor]

    @property
    def n_in(self) -> int:
        """Number of input samples."""
        return sum(int(m.numel()) for m in self.kept.values())

    @property
    def n_kept(self) -> int:
        """Number of kept samples."""
        return sum(int(m.sum()) for m in self.kept.values())

    @property
    def acceptance(self) -> float:
        """Share of input samples that passed the criteria (NaN for no input)."""
        n = self.n_in
        passed = sum(int(m.sum()) for m in self.accepted.values())
        return passed / n if n else float("nan")

    def acceptance_per_song(self) -> dict[SongId, float]:
        """Share of each song's samples that passed the criteria."""
        return {
            s: float(m.float().mean()) if m.numel() else float("nan")
            for s, m in self.accepted.items()
        }

    def counts(self) -> dict[SongId, int]:
        """Kept samples per song."""
        return {s: int(m.sum()) for s, m in self.kept.items()}

    def __repr__(self) -> str:
        return (
            f"FilterResult(kept {self.n_kept} of {self.n_in} samples of {len(self.kept)} songs, "
            f"acceptance {self.acceptance:.2f})"
        )


def classifier_scores(
    samples: Samples,
    classifier: Classifier,
    *,
    index: SongIndex | Sequence[SongId],
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 128,
) -> dict[SongId, tuple[torch.Tensor, torch.Tensor]]:
    """Probability and rank that a classifier gives each sample's conditioning song.

    Parameters
    ----------
    samples : mapping song id -> torch.Tensor [shape=(n, 1, n_bins, W)]
        E.g. the output of :meth:`covergan.Augmenter.sample_many` (``space="features"``).
    classifier : callable
        Maps a batch ``[B, 1, n_bins, W]`` to logits ``[B, n_classes]`` (a trained
        :class:`~covergan.csi.CSINet`). An ``nn.Module`` is run in eval mode without
        gradients and its training mode is restored afterwards.
    index : SongIndex or sequence of song ids
        The song of each of the classifier's classes (``train.index`` of its training set).
    transform : callable, optional
        Applied to each batch before the classifier (e.g. a ``CQTNormalizer`` when the
        classifier was trained in model space and the samples are in feature space).
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    dict song id -> (probability, rank)
        ``probability`` [shape=(n,), float32]: softmax probability of the song;
        ``rank`` [shape=(n,), int64]: number of classes scored strictly higher (0 = top-1).

    Raises
    ------
    UnknownSongError
        A song of ``samples`` is not in ``index``.
    ParameterError
        Malformed samples, a bad ``batch_size``, or logits that do not have one column per
        class of ``index``.
    """
    songs = _song_order(index)
    check_count("batch_size", batch_size, 1)
    clean = _check_samples(samples)
    targets = {s: songs.index(s) for s in clean}  # raises UnknownSongError
    out: dict[SongId, tuple[torch.Tensor, torch.Tensor]] = {}
    module = classifier if isinstance(classifier, nn.Module) else None
    was_training = module.training if module is not None else False
    device = _module_device(module)
    if module is not None:
        module.eval()
    try:
        with torch.no_grad():
            for song, x in clean.items():
                probs: list[torch.Tensor] = []
                ranks: list[torch.Tensor] = []
                c = targets[song]
                for start in range(0, len(x), batch_size):
                    xb = x[start : start + batch_size]
                    if transform is not None:
                        xb = transform(xb)
                    logits = classifier(xb.to(device)).float().cpu()
                    if logits.ndim != 2 or logits.shape[1] != len(songs):
                        raise ParameterError(
                            f"the classifier returned logits of shape {tuple(logits.shape)}; "
                            f"expected [{len(xb)}, {len(songs)}] (one column per song of index)"
                        )
                    p = torch.softmax(logits, dim=1)
                    p_song = p[:, c]
                    probs.append(p_song)
                    ranks.append((p > p_song[:, None]).sum(dim=1))
                empty = torch.empty(0)
                out[song] = (
                    torch.cat(probs) if probs else empty,
                    torch.cat(ranks).long() if ranks else empty.long(),
                )
    finally:
        if module is not None:
            module.train(was_training)
    return out


def filter_synthetic(
    samples: Samples,
    classifier: Classifier,
    *,
    index: SongIndex | Sequence[SongId],
    top_k: int | None = 1,
    threshold: float | None = None,
    max_per_song: PerSong = None,
    min_per_song: PerSong = 0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 128,
) -> FilterResult:
    """Keep the synthetic samples that a real-data classifier attributes to their song.

    A sample drawn for song ``s`` is *accepted* when ``s`` is among the classifier's
    ``top_k`` classes for it and its probability of ``s`` is at least ``threshold`` (a
    criterion left as None is not applied). Of each song's accepted samples, the
    ``max_per_song`` most probable are kept; if fewer than ``min_per_song`` are accepted,
    the most probable rejected ones top them up.

    Parameters
    ----------
    samples : mapping song id -> torch.Tensor [shape=(n, 1, n_bins, W)]
        Synthetic samples per conditioning song (:meth:`covergan.Augmenter.sample_many`).
    classifier : callable
        Logits ``[B, n_classes]`` for a batch ``[B, 1, n_bins, W]``, trained on real data
        in the same value space as ``samples`` (or give ``transform``).
    index : SongIndex or sequence of song ids
        The song of each classifier class (the classifier's training ``index``).
    top_k : int, optional
        Accept only samples whose song is among the ``top_k`` most probable classes (1: the
        classifier's prediction must be the song).
    threshold : float, optional
        Accept only samples whose probability of their song is at least this, in ``[0, 1]``.
    max_per_song : int or mapping song id -> int, optional
        Keep at most this many accepted samples per song, the most probable first (e.g. the
        plan of :meth:`covergan.Augmenter.plan` after drawing more samples than planned).
    min_per_song : int or mapping song id -> int
        Keep at least this many per song (capped at the samples drawn), topping up with
        the most probable rejected samples.
    transform : callable, optional
        Applied to each batch before the classifier (not to the returned samples).
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    FilterResult
        ``.samples`` holds the kept samples, ``.scores`` the probabilities.

    Raises
    ------
    UnknownSongError
        A song of ``samples`` is not in ``index``.
    ParameterError
        ``top_k`` < 1, ``threshold`` outside ``[0, 1]``, negative or non-integer quotas,
        malformed samples, or logits that do not match ``index``.

    Examples
    --------
    >>> drawn = aug.sample_many({"bwv-1": 12, "bwv-7": 12}, seed=0)
    >>> result = filter_synthetic(drawn, model, index=train.index, top_k=1, max_per_song=4)
    >>> result.counts(), result.acceptance
    """
    check_count("top_k", top_k, 1, optional=True)
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float, np.floating, np.integer))
        or not 0.0 <= float(threshold) <= 1.0
    ):
        raise ParameterError(f"threshold={threshold!r} must be a number in [0, 1] or None")
    clean = _check_samples(samples)
    _check_quota("max_per_song", max_per_song, clean)
    _check_quota("min_per_song", min_per_song, clean)
    raw = classifier_scores(
        clean, classifier, index=index, transform=transform, batch_size=batch_size
    )
    scores: dict[SongId, torch.Tensor] = {}
    accepted: dict[SongId, torch.Tensor] = {}
    for song, (prob, rank) in raw.items():
        ok = torch.ones(len(prob), dtype=torch.bool)
        if top_k is not None:
            ok &= rank < int(top_k)
        if threshold is not None:
            ok &= prob >= float(threshold)
        scores[song], accepted[song] = prob, ok
    return _select(clean, scores, accepted, max_per_song, min_per_song)


def discriminator_scores(
    samples: Samples,
    augmenter: Any,
    *,
    space: str = "features",
    batch_size: int = 128,
) -> dict[SongId, torch.Tensor]:
    """The fitted GAN discriminator's logit for each sample and its conditioning song.

    Parameters
    ----------
    samples : mapping song id -> torch.Tensor [shape=(n, 1, n_bins, W)]
        Samples of songs the augmenter was fitted on, ``W`` its window.
    augmenter : covergan.Augmenter
        A fitted augmenter (its ``gan_.discriminator`` and ``normalizer_`` are used).
    space : {"features", "model"}
        Value space of ``samples`` (as in :meth:`~covergan.Augmenter.sample_many`).
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    dict song id -> torch.Tensor [shape=(n,), dtype=float32]
        Higher means "more like a real recording of this song" to the discriminator. The
        scale is arbitrary: compare scores within one model, not across models.

    Raises
    ------
    NotFittedError
        The augmenter is not fitted.
    UnknownSongError
        A song is unknown to the augmenter.
    ParameterError
        An unknown ``space`` or malformed samples.
    """
    if not getattr(augmenter, "is_fitted", False):
        raise NotFittedError("the augmenter is not fitted; call fit(dataset) first")
    if space not in ("features", "model"):
        raise ParameterError(f"space={space!r} must be 'features' or 'model'")
    check_count("batch_size", batch_size, 1)
    clean = _check_samples(samples)
    gan = augmenter.gan_
    if gan is None:
        raise NotFittedError(
            "discriminator filtering needs the class GAN's discriminator; this augmenter has "
            "none (fit it with Augmenter(model=('versions', 'gan')); command line: covergan "
            "fit DATA OUT --model versions,gan)"
        )
    disc: nn.Module = gan.discriminator
    labels = {s: augmenter.songs_.index(s) for s in clean}  # raises UnknownSongError
    was_training = disc.training
    disc.eval()
    out: dict[SongId, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for song, x in clean.items():
                parts: list[torch.Tensor] = []
                for start in range(0, len(x), batch_size):
                    xb = x[start : start + batch_size]
                    if space == "features":
                        xb = augmenter.normalizer_(xb)
                    xb = xb.to(gan.device, dtype=torch.float32)
                    yb = torch.full((len(xb),), labels[song], dtype=torch.long, device=gan.device)
                    parts.append(disc(xb, yb).float().reshape(-1).cpu())
                out[song] = torch.cat(parts) if parts else torch.empty(0)
    finally:
        disc.train(was_training)
    return out


def filter_by_discriminator(
    samples: Samples,
    augmenter: Any,
    *,
    keep_fraction: float = 0.5,
    max_per_song: PerSong = None,
    min_per_song: PerSong = 0,
    space: str = "features",
    batch_size: int = 128,
) -> FilterResult:
    """Keep each song's samples that the GAN's discriminator scores highest for that song.

    The discriminator's projection head scores realism *for the given song*, so its
    highest-scoring samples are both realistic and on-song in its view. Of each song's
    ``n`` samples the best ``ceil(keep_fraction * n)`` are accepted, then ``max_per_song``
    and ``min_per_song`` apply as in :func:`filter_synthetic`.

    Parameters
    ----------
    samples : mapping song id -> torch.Tensor [shape=(n, 1, n_bins, W)]
    augmenter : covergan.Augmenter
        The fitted augmenter that drew ``samples``.
    keep_fraction : float
        Share of each song's samples accepted, in ``(0, 1]``.
    max_per_song, min_per_song
        As in :func:`filter_synthetic`.
    space, batch_size
        As in :func:`discriminator_scores`.

    Returns
    -------
    FilterResult
        ``.scores`` holds the discriminator logits.

    Raises
    ------
    NotFittedError, UnknownSongError, ParameterError
        As in :func:`discriminator_scores`; also ``keep_fraction`` outside ``(0, 1]`` or a
        bad quota.
    """
    if (
        isinstance(keep_fraction, bool)
        or not isinstance(keep_fraction, (int, float, np.floating, np.integer))
        or not 0.0 < float(keep_fraction) <= 1.0
    ):
        raise ParameterError(f"keep_fraction={keep_fraction!r} must be in (0, 1]")
    clean = _check_samples(samples)
    _check_quota("max_per_song", max_per_song, clean)
    _check_quota("min_per_song", min_per_song, clean)
    scores = discriminator_scores(clean, augmenter, space=space, batch_size=batch_size)
    accepted: dict[SongId, torch.Tensor] = {}
    for song, s in scores.items():
        n_accept = int(np.ceil(float(keep_fraction) * len(s) - 1e-9))
        ok = torch.zeros(len(s), dtype=torch.bool)
        ok[_best_first(s)[:n_accept]] = True
        accepted[song] = ok
    return _select(clean, scores, accepted, max_per_song, min_per_song)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _select(
    samples: dict[SongId, torch.Tensor],
    scores: dict[SongId, torch.Tensor],
    accepted: dict[SongId, torch.Tensor],
    max_per_song: PerSong,
    min_per_song: PerSong,
) -> FilterResult:
    kept_masks: dict[SongId, torch.Tensor] = {}
    kept_samples: dict[SongId, torch.Tensor] = {}
    for song, x in samples.items():
        score, ok = scores[song], accepted[song]
        order = _best_first(score)  # best first, ties by input order
        ranked_ok = order[ok[order]]
        ranked_rejected = order[~ok[order]]
        cap = _quota(max_per_song, song)
        floor = _quota(min_per_song, song) or 0
        chosen = ranked_ok if cap is None else ranked_ok[:cap]
        if len(chosen) < floor:
            chosen = torch.cat([chosen, ranked_rejected[: floor - len(chosen)]])
        mask = torch.zeros(len(x), dtype=torch.bool)
        mask[chosen] = True
        kept_masks[song] = mask
        kept_samples[song] = x[mask]
    return FilterResult(samples=kept_samples, scores=scores, accepted=accepted, kept=kept_masks)


def _best_first(scores: torch.Tensor) -> torch.Tensor:
    # stable descending sort: equal scores keep their input order
    return torch.from_numpy(np.argsort(-scores.double().numpy(), kind="stable").astype(np.int64))


def _quota(quota: PerSong, song: SongId) -> int | None:
    if quota is None:
        return None
    if isinstance(quota, Mapping):
        value = quota.get(song)
        return None if value is None else int(value)
    return int(quota)


def _check_quota(name: str, quota: object, samples: Mapping[SongId, torch.Tensor]) -> None:
    if quota is None:
        return
    values = list(quota.values()) if isinstance(quota, Mapping) else [quota]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ParameterError(
                f"{name}={quota!r} must be a non-negative int or a mapping song id -> such ints"
            )


def _song_order(index: SongIndex | Sequence[SongId]) -> SongIndex:
    if isinstance(index, SongIndex):
        return index
    if isinstance(index, (str, bytes)) or not isinstance(index, Sequence):
        raise ParameterError(
            f"index must be a SongIndex or a sequence of song ids, got {type(index).__name__}"
        )
    songs = list(index)
    if len(set(songs)) != len(songs):
        raise ParameterError("index lists a song id twice; give one id per class")
    return SongIndex(songs)


def _check_samples(samples: object) -> dict[SongId, torch.Tensor]:
    if not isinstance(samples, Mapping):
        raise ParameterError(
            f"samples must be a mapping song id -> Tensor[n, 1, n_bins, W], "
            f"got {type(samples).__name__}"
        )
    if not samples:
        raise ParameterError("samples is empty: give at least one song")
    clean: dict[SongId, torch.Tensor] = {}
    for song, x in samples.items():
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ParameterError(f"samples[{song!r}] must be a Tensor [n, 1, n_bins, W], got {got}")
        clean[song] = x.detach().cpu().float()
    return clean


def _module_device(module: nn.Module | None) -> torch.device:
    if module is None:
        return torch.device("cpu")
    for p in module.parameters():
        return p.device
    return torch.device("cpu")
