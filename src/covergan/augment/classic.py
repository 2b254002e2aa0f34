"""Classic CQT augmentations for cover-song identification training.

The transforms every CSI team already uses, as small reusable objects:
:class:`SemitoneRoll` (key change), :class:`TempoChange` (resampling of the time axis),
:class:`TimeMask` and :class:`FrequencyMask` (SpecAugment-style masking), :class:`Gain`,
and the combinators :class:`Compose` and :class:`OneOf`. They are the baseline against
which GAN-synthetic samples are judged.

Input layout
------------
Every transform takes either one item ``x : torch.Tensor [shape=(C, n_bins, n_frames)]``
(what :class:`covergan.data.CQTDataset` passes to its ``transform``, ``C = 1``) or a batch
``x : torch.Tensor [shape=(B, C, n_bins, n_frames)]``, and returns the same layout.
In a batch every item draws its own parameters and its own "applied or not" coin.
A NumPy array in gives a NumPy array out.

Randomness
----------
Each transform follows the audiomentations split: :meth:`Transform.randomize` draws the
parameters (one set per item, and whether each item is transformed at all, with
probability ``p``), :meth:`Transform.apply` applies given parameters deterministically.
Calling a transform does both. Parameters are drawn from, in order of precedence:

1. the ``generator`` passed to the call (``t(x, generator=g)``),
2. the transform's own generator, made from its ``seed`` argument
   (``seed=0`` or ``seed=torch.Generator()``); it advances with every call, so a fresh
   transform with the same seed replays the same sequence,
3. torch's global generator (``seed=None``), which ``torch.manual_seed`` controls and which
   PyTorch reseeds in every ``DataLoader`` worker, so workers do not repeat each other.

With ``num_workers > 0`` a seeded transform is copied into every worker with the same
generator state, so workers would draw the same parameters: leave ``seed=None`` there, or
call the transform with an explicit ``generator``.

Parameters never depend on the input's size (positions are drawn as fractions and turned
into frame or bin indices at apply time), so the parameters of a :class:`Compose` can be
drawn up front even when a :class:`TempoChange` inside it changes the length.

Value space
-----------
Fills and gains depend on what the tensor holds: extractor features (linear magnitude,
silence = 0), dB features (silence = ``-top_db``) or the GAN's ``[-1, 1]`` model space
(see :class:`covergan.cqt.CQTNormalizer`; silence is about -1). Masks and the
``"shift"`` roll take an explicit ``fill``; :class:`Gain` takes an explicit ``space``.

Examples
--------
>>> from covergan.augment.classic import Compose, SemitoneRoll, TempoChange, TimeMask
>>> augment = Compose([
...     SemitoneRoll(max_semitones=6, bins_per_semitone=config.bins_per_semitone, p=0.5),
...     TempoChange(0.8, 1.25, p=0.5),
...     TimeMask(max_frames=20, p=0.5),
... ], seed=0)
>>> train = dataset.windows(200, crop="random", transform=augment)   # per item
>>> x_aug = augment(x_batch)                                          # or per batch
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, overload

import numpy as np
import torch

from covergan.cqt import CQTNormalizer
from covergan.errors import NotFittedError, ParameterError

__all__ = [
    "Compose",
    "ComposeParams",
    "FrequencyMask",
    "Gain",
    "GainParams",
    "MaskParams",
    "OneOf",
    "OneOfParams",
    "Params",
    "RollParams",
    "SemitoneRoll",
    "TempoChange",
    "TempoParams",
    "TimeMask",
    "Transform",
    "csi_augment",
]

RollMode = Literal["roll", "shift"]
TempoPad = Literal["wrap", "constant"]
GainSpace = Literal["features", "db", "model"]
Seed = int | torch.Generator | None

P = TypeVar("P", bound="Params")


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """Parameters drawn by :meth:`Transform.randomize` for a batch of ``B`` items.

    Attributes
    ----------
    applied : torch.Tensor [shape=(B,), dtype=bool]
        Which items the transform changes (each with probability ``p``).
    """

    applied: torch.Tensor

    @property
    def batch_size(self) -> int:
        """Number of items these parameters are for."""
        return int(self.applied.shape[0])


@dataclass(frozen=True)
class RollParams(Params):
    """:class:`SemitoneRoll` parameters; ``semitones`` [shape=(B,), int64], + is up."""

    semitones: torch.Tensor


@dataclass(frozen=True)
class TempoParams(Params):
    """:class:`TempoChange` parameters.

    ``rates`` [shape=(B,), float64]: tempo factors (> 1 is faster, i.e. fewer frames);
    ``offsets`` [shape=(B,), float64] in ``[0, 1)``: where the kept window starts when a
    slowed-down item is cropped back to its length.
    """

    rates: torch.Tensor
    offsets: torch.Tensor


@dataclass(frozen=True)
class MaskParams(Params):
    """:class:`TimeMask` / :class:`FrequencyMask` parameters.

    ``widths`` [shape=(B, n_masks), int64]: mask widths (frames or bins, before clipping to
    the input size); ``starts`` [shape=(B, n_masks), float64] in ``[0, 1)``: mask positions
    as fractions of the free range ``size - width + 1``.
    """

    widths: torch.Tensor
    starts: torch.Tensor


@dataclass(frozen=True)
class GainParams(Params):
    """:class:`Gain` parameters; ``gains_db`` [shape=(B,), float64]."""

    gains_db: torch.Tensor


@dataclass(frozen=True)
class ComposeParams(Params):
    """:class:`Compose` parameters: its own coin and each child's parameters, in order."""

    children: tuple[Params, ...]


@dataclass(frozen=True)
class OneOfParams(Params):
    """:class:`OneOf` parameters: ``choices`` [shape=(B,), int64] and each child's parameters.

    A child's ``applied`` mask is already restricted to the items that chose it.
    """

    choices: torch.Tensor
    children: tuple[Params, ...]


# --------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------


class Transform(ABC, Generic[P]):
    """Base class: probability ``p``, explicit seeding, and the randomise/apply split.

    Parameters
    ----------
    p : float
        Probability, per item, that the transform is applied, in ``[0, 1]``.
    seed : int, torch.Generator or None
        Source of the transform's own random stream (see the module docstring);
        None draws from torch's global generator.

    Raises
    ------
    ParameterError
        ``p`` outside ``[0, 1]`` or ``seed`` of another type.
    """

    def __init__(self, *, p: float, seed: Seed = None) -> None:
        self.p = _check_probability(p, type(self).__name__)
        self.generator = _make_generator(seed, type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()}p={self.p})"

    def _describe(self) -> str:
        return ""

    @overload
    def __call__(
        self, x: torch.Tensor, *, generator: torch.Generator | None = ...
    ) -> torch.Tensor: ...

    @overload
    def __call__(self, x: np.ndarray, *, generator: torch.Generator | None = ...) -> np.ndarray: ...

    def __call__(
        self, x: torch.Tensor | np.ndarray, *, generator: torch.Generator | None = None
    ) -> torch.Tensor | np.ndarray:
        """Draw parameters and apply them: ``apply(x, randomize(x, generator))``.

        Parameters
        ----------
        x : torch.Tensor or np.ndarray [shape=(C, n_bins, n_frames) or (B, C, n_bins, n_frames)]
            One item or a batch (floating point).
        generator : torch.Generator, optional
            Overrides the transform's own random stream for this call.

        Returns
        -------
        Same type and layout as ``x``. The number of frames may differ only for
        :class:`TempoChange` with ``keep_length=False``.

        Raises
        ------
        ParameterError
            ``x`` is not a 3-D or 4-D floating-point array.
        """
        if isinstance(x, np.ndarray):
            out = self(torch.from_numpy(np.ascontiguousarray(x)), generator=generator)
            return out.numpy()
        return self.apply(x, self.randomize(x, generator))

    def randomize(self, x: torch.Tensor, generator: torch.Generator | None = None) -> P:
        """Draw parameters for ``x`` (one set per item) without changing it.

        Parameters
        ----------
        x : torch.Tensor [shape=(C, n_bins, n_frames) or (B, C, n_bins, n_frames)]
            Only its batch size is used.
        generator : torch.Generator, optional
            Overrides the transform's own random stream.

        Returns
        -------
        Params
            The transform's parameter dataclass, for :meth:`apply`.
        """
        batch = _batch_size(x, type(self).__name__)
        gen = generator if generator is not None else self.generator
        applied = _uniform((batch,), gen) < self.p
        return self._draw(batch, applied, gen)

    def apply(self, x: torch.Tensor, params: P) -> torch.Tensor:
        """Apply given parameters (deterministic).

        Parameters
        ----------
        x : torch.Tensor [shape=(C, n_bins, n_frames) or (B, C, n_bins, n_frames)]
        params : Params
            From :meth:`randomize`, for the same batch size.

        Returns
        -------
        torch.Tensor
            Same layout as ``x``; items with ``params.applied`` false are unchanged.

        Raises
        ------
        ParameterError
            ``x`` has a bad layout or its batch size differs from the parameters'.
        """
        name = type(self).__name__
        batch = _batch_size(x, name)
        if params.batch_size != batch:
            raise ParameterError(
                f"{name}: parameters were drawn for {params.batch_size} items, "
                f"the input has {batch}"
            )
        squeeze = x.ndim == 3
        x4 = x.unsqueeze(0) if squeeze else x
        self._check_input(x4)
        if not bool(params.applied.any()):
            return x
        y = _select(params.applied, self._apply(x4, params), x4)
        return y.squeeze(0) if squeeze else y

    def _check_input(self, x: torch.Tensor) -> None:
        """Checks of the whole batch ``x [shape=(B, C, n_bins, n_frames)]`` that hold whether
        or not any item is transformed (a transform with stricter input than the layout's
        overrides it, so bad input fails on every call, not only when an item is drawn)."""

    @abstractmethod
    def _draw(self, batch: int, applied: torch.Tensor, gen: torch.Generator | None) -> P:
        """Draw this transform's parameters for ``batch`` items."""

    @abstractmethod
    def _apply(self, x: torch.Tensor, params: P) -> torch.Tensor:
        """Transform every item of a 4-D batch (the caller keeps the unapplied ones)."""


# --------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------


class SemitoneRoll(Transform[RollParams]):
    """Key change: move the CQT along the frequency axis by a whole number of semitones.

    A shift of ``k`` semitones moves the content of bin ``b`` to bin
    ``b + k * bins_per_semitone`` (positive ``k`` = up). ``k`` is drawn uniformly from the
    integers in ``[min_semitones, max_semitones]``.

    Parameters
    ----------
    max_semitones : int
        Largest shift (default 6: a shift of up to a tritone either way covers all keys).
    min_semitones : int, optional
        Smallest shift; defaults to ``-max_semitones``.
    bins_per_semitone : int
        ``CQTConfig.bins_per_semitone`` of the features (1 for 12 bins per octave).
    mode : {"roll", "shift"}
        ``"roll"`` wraps the bins pushed off one edge around to the other (CoverHunter,
        MOVE); ``"shift"`` drops them and fills the vacated bins with ``fill``.
    fill : float
        Value of vacated bins in ``"shift"`` mode (0 for features, -1 for model space).
    p, seed
        See :class:`Transform`.

    Raises
    ------
    ParameterError
        Non-integer shifts, ``min_semitones > max_semitones``, ``bins_per_semitone < 1``,
        or an unknown ``mode``.
    """

    def __init__(
        self,
        max_semitones: int = 6,
        *,
        min_semitones: int | None = None,
        bins_per_semitone: int = 1,
        mode: RollMode = "roll",
        fill: float = 0.0,
        p: float = 0.5,
        seed: Seed = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        hi = _check_int("max_semitones", max_semitones)
        lo = -hi if min_semitones is None else _check_int("min_semitones", min_semitones)
        if lo > hi:
            raise ParameterError(
                f"SemitoneRoll: min_semitones={lo} must not exceed max_semitones={hi}"
            )
        self.min_semitones, self.max_semitones = lo, hi
        self.bins_per_semitone = _check_int("bins_per_semitone", bins_per_semitone, low=1)
        self.mode: RollMode = _check_choice("mode", mode, ("roll", "shift"))  # type: ignore[assignment]
        self.fill = _check_finite("fill", fill)

    def _describe(self) -> str:
        return (
            f"semitones=[{self.min_semitones}, {self.max_semitones}], "
            f"bins_per_semitone={self.bins_per_semitone}, mode={self.mode!r}, "
        )

    def _draw(self, batch: int, applied: torch.Tensor, gen: torch.Generator | None) -> RollParams:
        k = torch.randint(
            self.min_semitones, self.max_semitones + 1, (batch,), generator=gen, device=_dev(gen)
        )
        return RollParams(applied=applied, semitones=k.cpu())

    def _apply(self, x: torch.Tensor, params: RollParams) -> torch.Tensor:
        n_bins = x.shape[-2]
        shift = params.semitones.to(x.device) * self.bins_per_semitone  # (B,)
        source = torch.arange(n_bins, device=x.device)[None, :] - shift[:, None]  # (B, H)
        if self.mode == "roll":
            index = source.remainder(n_bins)
            return _gather_rows(x, index)
        valid = (source >= 0) & (source < n_bins)
        out = _gather_rows(x, source.clamp(0, n_bins - 1))
        return out.masked_fill(~valid[:, None, :, None], self.fill)


class TempoChange(Transform[TempoParams]):
    """Tempo change: resample the time axis by a factor drawn uniformly in ``[min_rate, max_rate]``.

    A rate ``r > 1`` plays faster: the resampled item has ``L = max(1, round(T / r))``
    frames, frame ``j`` taking the value at position ``(j + 0.5) * T / L - 0.5`` of the
    input by linear interpolation (clamped at the ends; the same grid as
    ``torch.nn.functional.interpolate(mode="linear", align_corners=False)``).

    Output length
    -------------
    ``keep_length=True`` (default) keeps ``T`` frames so crops stay usable in a batch: a
    slowed-down item (``L > T``) is cropped to a window of ``T`` frames at a random offset;
    a sped-up item (``L < T``) is extended with ``pad_mode="wrap"`` (the resampled item
    repeated, no silence appears) or ``"constant"`` (``fill``). ``keep_length=False``
    returns the ``L`` frames themselves; as items of a batch would differ in length, it
    works on single items (or batches of one) only: use it as a dataset ``transform``
    before cropping, or give the dataset a window longer than the model's input.

    Parameters
    ----------
    min_rate, max_rate : float
        Range of tempo factors, ``0 < min_rate <= max_rate`` (default 0.8 to 1.25).
    keep_length : bool
        Keep the number of frames (see above).
    pad_mode : {"wrap", "constant"}
        How a sped-up item is extended when ``keep_length`` is true.
    fill : float
        Padding value for ``pad_mode="constant"``.
    p, seed
        See :class:`Transform`.

    Raises
    ------
    ParameterError
        Non-positive or inverted rates, an unknown ``pad_mode``, or (on call) a batch of
        more than one item with ``keep_length=False``.
    """

    def __init__(
        self,
        min_rate: float = 0.8,
        max_rate: float = 1.25,
        *,
        keep_length: bool = True,
        pad_mode: TempoPad = "wrap",
        fill: float = 0.0,
        p: float = 0.5,
        seed: Seed = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        lo = _check_finite("min_rate", min_rate)
        hi = _check_finite("max_rate", max_rate)
        if lo <= 0 or hi < lo:
            raise ParameterError(
                f"TempoChange: need 0 < min_rate <= max_rate, got min_rate={min_rate!r}, "
                f"max_rate={max_rate!r}"
            )
        self.min_rate, self.max_rate = lo, hi
        self.keep_length = bool(keep_length)
        self.pad_mode: TempoPad = _check_choice("pad_mode", pad_mode, ("wrap", "constant"))  # type: ignore[assignment]
        self.fill = _check_finite("fill", fill)

    def _describe(self) -> str:
        return f"rate=[{self.min_rate}, {self.max_rate}], keep_length={self.keep_length}, "

    def _draw(self, batch: int, applied: torch.Tensor, gen: torch.Generator | None) -> TempoParams:
        u = _uniform((batch,), gen)
        rates = self.min_rate + (self.max_rate - self.min_rate) * u
        return TempoParams(applied=applied, rates=rates, offsets=_uniform((batch,), gen))

    def apply(self, x: torch.Tensor, params: TempoParams) -> torch.Tensor:
        """Apply given parameters; see :meth:`Transform.apply`."""
        if not self.keep_length and _batch_size(x, "TempoChange") > 1:
            raise ParameterError(
                f"TempoChange(keep_length=False) gives items of different lengths, so it "
                f"takes one item at a time; got a batch of {x.shape[0]} (use keep_length=True "
                "on batches)"
            )
        return super().apply(x, params)

    def _apply(self, x: torch.Tensor, params: TempoParams) -> torch.Tensor:
        n = x.shape[-1]
        rates = params.rates.to(torch.float64)
        lengths = torch.clamp(torch.round(n / rates), min=1).to(torch.int64)  # (B,)
        if not self.keep_length:
            return _resample_time(x, lengths, torch.arange(int(lengths[0]))[None, :], n)
        # Output frame j shows frame (start + j) of the resampled item of length L.
        free = (lengths - n).clamp(min=0)
        start = torch.floor(params.offsets * (free + 1).to(torch.float64)).to(torch.int64)
        start = torch.minimum(start, free)
        frame = start[:, None] + torch.arange(n)[None, :]  # (B, T)
        past_end = frame >= lengths[:, None]
        frame = torch.where(past_end, frame.remainder(lengths[:, None]), frame)
        out = _resample_time(x, lengths, frame, n)
        if self.pad_mode == "constant":
            out = out.masked_fill(past_end.to(x.device)[:, None, None, :], self.fill)
        return out


class _Mask(Transform[MaskParams]):
    _axis: int
    _unit: str

    def __init__(
        self,
        max_width: int,
        min_width: int,
        n_masks: int,
        fill: float,
        p: float,
        seed: Seed,
    ) -> None:
        super().__init__(p=p, seed=seed)
        unit = self._unit
        self.max_width = _check_int(f"max_{unit}", max_width, low=1)
        self.min_width = _check_int(f"min_{unit}", min_width, low=0)
        if self.min_width > self.max_width:
            raise ParameterError(
                f"{type(self).__name__}: min_{unit}={min_width} must not exceed "
                f"max_{unit}={max_width}"
            )
        self.n_masks = _check_int("n_masks", n_masks, low=1)
        self.fill = _check_finite("fill", fill)

    def _describe(self) -> str:
        return (
            f"{self._unit}=[{self.min_width}, {self.max_width}], n_masks={self.n_masks}, "
            f"fill={self.fill}, "
        )

    def _draw(self, batch: int, applied: torch.Tensor, gen: torch.Generator | None) -> MaskParams:
        shape = (batch, self.n_masks)
        widths = torch.randint(
            self.min_width, self.max_width + 1, shape, generator=gen, device=_dev(gen)
        )
        return MaskParams(applied=applied, widths=widths.cpu(), starts=_uniform(shape, gen))

    def _apply(self, x: torch.Tensor, params: MaskParams) -> torch.Tensor:
        size = x.shape[self._axis]
        widths = params.widths.clamp(max=size)
        starts = torch.floor(params.starts * (size - widths + 1).to(torch.float64))
        starts = starts.to(torch.int64)
        pos = torch.arange(size)[None, None, :]  # (1, 1, size)
        hit = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
        hit = hit.any(dim=1).to(x.device)  # (B, size)
        mask = hit[:, None, :, None] if self._axis == -2 else hit[:, None, None, :]
        return x.masked_fill(mask, self.fill)


class TimeMask(_Mask):
    """Time masking (SpecAugment): set ``n_masks`` runs of consecutive frames to ``fill``.

    Each run's width is drawn uniformly from the integers in ``[min_frames, max_frames]``
    (clipped to the item's length) and its start uniformly among the positions where it
    fits. Runs may overlap, so at most ``n_masks * max_frames`` frames are masked.

    Parameters
    ----------
    max_frames : int
        Widest run (>= 1).
    min_frames : int
        Narrowest run (>= 0, default 1).
    n_masks : int
        Number of runs per item (>= 1).
    fill : float
        Value of masked frames: 0 (silence) for features, -1 for model space.
    p, seed
        See :class:`Transform`.

    Raises
    ------
    ParameterError
        A width or count out of range, or a non-finite ``fill``.
    """

    _axis = -1
    _unit = "frames"

    def __init__(
        self,
        max_frames: int = 20,
        *,
        min_frames: int = 1,
        n_masks: int = 1,
        fill: float = 0.0,
        p: float = 0.5,
        seed: Seed = None,
    ) -> None:
        super().__init__(max_frames, min_frames, n_masks, fill, p, seed)


class FrequencyMask(_Mask):
    """Frequency masking (SpecAugment): set ``n_masks`` bands of consecutive bins to ``fill``.

    Widths and positions are drawn as in :class:`TimeMask`, along the bin axis.

    Parameters
    ----------
    max_bins : int
        Widest band (>= 1).
    min_bins : int
        Narrowest band (>= 0, default 1).
    n_masks : int
        Number of bands per item (>= 1).
    fill : float
        Value of masked bins: 0 (silence) for features, -1 for model space.
    p, seed
        See :class:`Transform`.

    Raises
    ------
    ParameterError
        A width or count out of range, or a non-finite ``fill``.
    """

    _axis = -2
    _unit = "bins"

    def __init__(
        self,
        max_bins: int = 12,
        *,
        min_bins: int = 1,
        n_masks: int = 1,
        fill: float = 0.0,
        p: float = 0.5,
        seed: Seed = None,
    ) -> None:
        super().__init__(max_bins, min_bins, n_masks, fill, p, seed)


class Gain(Transform[GainParams]):
    """Loudness change by a gain drawn uniformly in ``[min_db, max_db]`` decibels.

    What a gain of ``g`` dB does depends on the value space of the tensor:

    ``space="features"``
        Linear magnitudes (the extractor's default): ``x * 10 ** (g / 20)``.
    ``space="db"``
        dB features: ``x + g``.
    ``space="model"``
        The ``[-1, 1]`` model space of a fitted :class:`~covergan.cqt.CQTNormalizer`:
        ``normalizer.forward(normalizer.inverse(x) * 10 ** (g / 20))``, i.e. the same gain on
        the underlying features, seen in model space (about ``+ g ln(10) / (20 * clip * std)``
        per bin, saturating at +-1). Values the normaliser had clipped stay approximate.

    For power features (``CQTConfig.scale="power"``) use ``space="features"`` with twice
    the dB range. Note that max-normalised features are invariant to a global gain once
    re-normalised; the transform changes the level the model sees, not the file.

    Parameters
    ----------
    min_db, max_db : float
        Range of gains in dB (default -6 to 6).
    space : {"features", "db", "model"}
        Value space of the input (see above).
    normalizer : CQTNormalizer, optional
        Required (fitted) for ``space="model"``.
    p, seed
        See :class:`Transform`.

    Raises
    ------
    ParameterError
        Non-finite or inverted range, an unknown ``space``, or ``space="model"`` without a
        normaliser.
    NotFittedError
        The normaliser is not fitted.
    """

    def __init__(
        self,
        min_db: float = -6.0,
        max_db: float = 6.0,
        *,
        space: GainSpace = "features",
        normalizer: CQTNormalizer | None = None,
        p: float = 0.5,
        seed: Seed = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        lo, hi = _check_finite("min_db", min_db), _check_finite("max_db", max_db)
        if lo > hi:
            raise ParameterError(f"Gain: min_db={min_db!r} must not exceed max_db={max_db!r}")
        self.min_db, self.max_db = lo, hi
        self.space: GainSpace = _check_choice("space", space, ("features", "db", "model"))  # type: ignore[assignment]
        if self.space == "model":
            if not isinstance(normalizer, CQTNormalizer):
                raise ParameterError(
                    f"Gain(space='model') needs normalizer=<a fitted CQTNormalizer>, "
                    f"got {normalizer!r}"
                )
            if not normalizer.is_fitted:
                raise NotFittedError(
                    "Gain(space='model'): the CQTNormalizer is not fitted; call fit() first"
                )
        self.normalizer = normalizer

    def _describe(self) -> str:
        return f"db=[{self.min_db}, {self.max_db}], space={self.space!r}, "

    def _draw(self, batch: int, applied: torch.Tensor, gen: torch.Generator | None) -> GainParams:
        u = _uniform((batch,), gen)
        return GainParams(applied=applied, gains_db=self.min_db + (self.max_db - self.min_db) * u)

    def _apply(self, x: torch.Tensor, params: GainParams) -> torch.Tensor:
        g = params.gains_db.to(device=x.device, dtype=x.dtype)[:, None, None, None]
        if self.space == "db":
            return x + g
        factor = torch.pow(10.0, g / 20.0)
        if self.space == "features":
            return x * factor
        norm = self.normalizer
        if norm is None:  # pragma: no cover - guarded in __init__
            raise ParameterError("Gain(space='model') has no normalizer")
        return norm.forward(norm.inverse(x) * factor)


# --------------------------------------------------------------------------------------
# Combinators
# --------------------------------------------------------------------------------------


class Compose(Transform[ComposeParams]):
    """Apply transforms one after the other, in the given order.

    Parameters
    ----------
    transforms : sequence of Transform
        Applied in order; each keeps its own ``p``.
    p : float
        Probability, per item, that the whole chain runs (default 1).
    seed : int, torch.Generator or None
        The chain's random stream; when set (or when a ``generator`` is passed to the
        call) it drives every child too, so one seed reproduces the whole chain.
        When None, each child draws from its own stream.

    Raises
    ------
    ParameterError
        ``transforms`` is empty or holds something that is not a :class:`Transform`.
    """

    def __init__(
        self, transforms: Sequence[Transform[Any]], *, p: float = 1.0, seed: Seed = None
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.transforms = _check_transforms(transforms, type(self).__name__)

    def _describe(self) -> str:
        return f"[{', '.join(repr(t) for t in self.transforms)}], "

    def _draw(
        self, batch: int, applied: torch.Tensor, gen: torch.Generator | None
    ) -> ComposeParams:
        probe = torch.empty(batch, 0, 0, 0)
        children = tuple(
            t.randomize(probe, gen if gen is not None else t.generator) for t in self.transforms
        )
        return ComposeParams(applied=applied, children=children)

    def _apply(self, x: torch.Tensor, params: ComposeParams) -> torch.Tensor:
        for t, child in zip(self.transforms, params.children, strict=True):
            x = t.apply(x, child)
        return x

    def _check_input(self, x: torch.Tensor) -> None:
        _check_children(self.transforms, x)


class OneOf(Transform[OneOfParams]):
    """Apply one transform chosen at random (per item), with optional weights.

    The chosen transform then applies with its own ``p``.

    Parameters
    ----------
    transforms : sequence of Transform
    weights : sequence of float, optional
        Relative probabilities of choosing each transform (default: equal).
    p : float
        Probability, per item, that any transform is applied (default 1).
    seed : int, torch.Generator or None
        As for :class:`Compose`.

    Raises
    ------
    ParameterError
        ``transforms`` empty or not transforms; ``weights`` of another length, negative,
        non-finite or all zero.
    """

    def __init__(
        self,
        transforms: Sequence[Transform[Any]],
        *,
        weights: Sequence[float] | None = None,
        p: float = 1.0,
        seed: Seed = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.transforms = _check_transforms(transforms, type(self).__name__)
        if weights is None:
            w = [1.0] * len(self.transforms)
        else:
            w = [float(v) for v in weights]
            if len(w) != len(self.transforms) or not all(math.isfinite(v) and v >= 0 for v in w):
                raise ParameterError(
                    f"OneOf: weights={list(weights)!r} must be {len(self.transforms)} finite "
                    "non-negative numbers"
                )
            if sum(w) <= 0:
                raise ParameterError(f"OneOf: weights={list(weights)!r} must not all be zero")
        self.weights = torch.tensor(w, dtype=torch.float64) / sum(w)

    def _describe(self) -> str:
        return f"[{', '.join(repr(t) for t in self.transforms)}], "

    def _draw(self, batch: int, applied: torch.Tensor, gen: torch.Generator | None) -> OneOfParams:
        cdf = torch.cumsum(self.weights, 0)
        u = _uniform((batch,), gen)
        choices = torch.searchsorted(cdf, u, right=True).clamp(max=len(self.transforms) - 1)
        probe = torch.empty(batch, 0, 0, 0)
        children: list[Params] = []
        for k, t in enumerate(self.transforms):
            child = t.randomize(probe, gen if gen is not None else t.generator)
            children.append(dataclasses.replace(child, applied=child.applied & (choices == k)))
        return OneOfParams(applied=applied, choices=choices, children=tuple(children))

    def _apply(self, x: torch.Tensor, params: OneOfParams) -> torch.Tensor:
        # Each item is enabled in exactly one child, so running them in turn applies the choice.
        for t, child in zip(self.transforms, params.children, strict=True):
            x = t.apply(x, child)
        return x

    def _check_input(self, x: torch.Tensor) -> None:
        _check_children(self.transforms, x)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def csi_augment(*, bins_per_semitone: int = 1, silence: float = -1.0, seed: Seed = None) -> Compose:
    """The classic augmentation CSI systems train with: a key roll of up to 6 semitones
    (p 0.5), a tempo change of 0.8-1.25 (p 0.5) and a time mask of up to 15 frames (p 0.3).

    Parameters
    ----------
    bins_per_semitone : int
        Frequency bins per semitone of the windows.
    silence : float
        Value of the masked frames (-1 in model space; the features' silence value, e.g.
        0, on feature-format windows).
    seed : int, torch.Generator or None
        The transform's own random stream; ``None``: the generator ``train_csi`` passes (its
        training seed) or torch's global one.

    Returns
    -------
    Compose
        Works on batches ``[B, 1, n_bins, T]``.
    """
    return Compose(
        [
            SemitoneRoll(6, bins_per_semitone=bins_per_semitone, p=0.5),
            TempoChange(0.8, 1.25, p=0.5),
            TimeMask(15, p=0.3, fill=silence),
        ],
        seed=seed,
    )


def _make_generator(seed: object, name: str) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return torch.Generator().manual_seed(int(seed))
    raise ParameterError(f"{name}: seed={seed!r} must be an int, a torch.Generator or None")


def _dev(gen: torch.Generator | None) -> torch.device:
    return gen.device if gen is not None else torch.device("cpu")


def _uniform(shape: tuple[int, ...], gen: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(shape, generator=gen, device=_dev(gen), dtype=torch.float64)
    return u.cpu()


def _batch_size(x: object, name: str) -> int:
    if not isinstance(x, torch.Tensor):
        raise ParameterError(
            f"{name}: expected a torch.Tensor or np.ndarray, got {type(x).__name__}"
        )
    if x.ndim not in (3, 4):
        raise ParameterError(
            f"{name}: expected one item (C, n_bins, n_frames) or a batch "
            f"(B, C, n_bins, n_frames), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ParameterError(f"{name}: expected floating-point values, got {x.dtype}")
    return 1 if x.ndim == 3 else int(x.shape[0])


def _select(applied: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if y.shape != x.shape:  # a length change: only single items get here
        return y if bool(applied[0]) else x
    return torch.where(applied.to(x.device)[:, None, None, None], y, x)


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[b, c, h, t] = x[b, c, index[b, h], t]`` for ``index`` (B, H)."""
    b, c, _, t = x.shape
    idx = index.to(x.device)[:, None, :, None].expand(b, c, index.shape[1], t)
    return torch.gather(x, 2, idx)


def _resample_time(
    x: torch.Tensor, lengths: torch.Tensor, frame: torch.Tensor, n: int
) -> torch.Tensor:
    """Frames ``frame`` (B or 1, T_out) of each item linearly resampled to ``lengths`` (B,)."""
    scale = n / lengths.to(torch.float64)  # input frames per output frame
    pos = ((frame.to(torch.float64) + 0.5) * scale[:, None] - 0.5).clamp(0, n - 1)
    left = pos.floor().to(torch.int64)
    right = (left + 1).clamp(max=n - 1)
    w = (pos - left.to(torch.float64)).to(device=x.device, dtype=x.dtype)
    b, c, h, _ = x.shape
    t_out = pos.shape[1]

    def take(index: torch.Tensor) -> torch.Tensor:
        idx = index.to(x.device)[:, None, None, :].expand(b, c, h, t_out)
        return torch.gather(x, 3, idx)

    return take(left) * (1 - w[:, None, None, :]) + take(right) * w[:, None, None, :]


def _check_probability(p: object, name: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise ParameterError(f"{name}: p={p!r} must be a number in [0, 1]")
    if not 0.0 <= float(p) <= 1.0:
        raise ParameterError(f"{name}: p={p!r} must be in [0, 1]")
    return float(p)


def _check_int(name: str, value: object, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name}={value!r} must be an integer")
    if low is not None and value < low:
        raise ParameterError(f"{name}={value!r} must be >= {low}")
    return int(value)


def _check_finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ParameterError(f"{name}={value!r} must be a finite number")
    if not math.isfinite(float(value)):
        raise ParameterError(f"{name}={value!r} must be a finite number")
    return float(value)


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ParameterError(f"{name}={value!r} must be one of {list(allowed)}")
    return str(value)


def _check_children(transforms: Sequence[Transform[Any]], x: torch.Tensor) -> None:
    """Each child's input checks on the chain's input ``x``, so a chain that draws no item
    (``p < 1``) still refuses what a child would."""
    for t in transforms:
        t._check_input(x)


def _check_transforms(transforms: object, name: str) -> list[Transform[Any]]:
    if not isinstance(transforms, Sequence) or isinstance(transforms, (str, bytes)):
        raise ParameterError(f"{name}: transforms must be a list of transforms")
    items = list(transforms)
    if not items:
        raise ParameterError(f"{name}: transforms must not be empty")
    bad = [t for t in items if not isinstance(t, Transform)]
    if bad:
        raise ParameterError(
            f"{name}: {bad[0]!r} is not a covergan.augment.classic Transform "
            "(wrap other callables in a function applied before or after)"
        )
    return items
