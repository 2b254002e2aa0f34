"""Version synthesis: a reference-conditioned GAN that turns one recording into other versions.

A class-conditional GAN (:class:`~covergan.gan.ConditionalDCGAN`) can only generate songs it
was trained on, and for a song with one recording it can only vary that recording. The
:class:`VersionGAN` learns instead *how versions of the same work differ*, from the works that
have several recordings, and applies that to any CQT window, including songs it never saw.

Model (see ``docs/versions.md``)
    A version is ``G(T_{k, r}(ref), z)``: an explicit key change by ``k`` semitones and tempo
    change by a factor ``r`` (:func:`~covergan.models.reference.version_transform`; the two
    invariances every CSI system trains for), then a learned content-encoder / style-decoder
    (:class:`~covergan.models.reference.VersionGenerator`) that keeps the pitch-time layout and
    draws a new sound (timbre, voicing, texture, level) from the style latent ``z`` through
    adaptive instance norm. ``k``, ``r`` and ``z`` are the randomness of a sample.

Training
    Pairs ``(ref, cand)`` are random crops of two *different* recordings of a work with two or
    more recordings. The :class:`~covergan.models.reference.PairDiscriminator` scores pairs
    (projection of the reference's embedding onto the candidate's features, spectral norm,
    hinge loss, DiffAugment on every input). Extra negatives make it a matching-aware
    discriminator (Reed et al. 2016; see :class:`VersionConfig`): *copy* pairs (the
    reference only transposed and tempo-changed, on by default: no real version is that) and,
    optionally, *mismatched* pairs (a candidate of another work, against a song-independent
    average); a mode-seeking term (Mao et al. 2019) keeps different ``z`` apart. Before the
    adversarial steps, :meth:`VersionGAN.pretrain_autoencoder` initialises the generator as
    the decoder of a style autoencoder. The generator's weights are averaged (EMA with the
    ramped decay of the class GAN); every step's randomness derives from ``(seed, step)``
    so training resumes exactly.

The facade is :meth:`covergan.Augmenter.sample_like`; :func:`sample_versions` is the same
feature-format sampler for a :class:`VersionGAN` and a :class:`~covergan.cqt.CQTNormalizer`
used directly, and :func:`check_versions` measures the two ways such a model fails (copying
the reference, or an average that ignores it).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor, nn

from covergan._checks import (
    check_adam,
    check_choice,
    check_count,
    check_image_size,
    check_ints,
    check_reals,
    config_from_dict,
    config_to_dict,
)
from covergan._checks import is_int as _is_int
from covergan._checks import is_real as _is_real
from covergan._io import check_header, header, read_checkpoint
from covergan.augment.classic import Params, Transform
from covergan.augment.differentiable import DEFAULT_POLICY, DiffAugment
from covergan.batches import prefetch
from covergan.cqt import CQTNormalizer, center_crop_or_pad, random_crop
from covergan.data import CQTDataset, SongId
from covergan.distributed import (
    _average_gradients,
    _average_logs,
    _broadcast_modules,
    _rank_world,
    rank_key,
    resolve_device,
)
from covergan.errors import CheckpointError, DatasetError, ParameterError
from covergan.models.dcgan import ConvEncoder
from covergan.models.reference import (
    KeyFill,
    PairDiscriminator,
    TempoInterpolation,
    VersionGenerator,
    chroma_correlation,
    version_transform,
    warp_silence,
)
from covergan.training import (
    AdversarialModel,
    Callback,
    check_pretrain,
    check_truncation,
    derive_seed,
    noise_source,
    truncated_normal,
    vae_loss,
)

__all__ = [
    "VERSIONS_FORMAT",
    "VERSIONS_FORMAT_VERSION",
    "VERSION_AUGMENT_P",
    "VersionAugment",
    "VersionCheck",
    "VersionConfig",
    "VersionGAN",
    "VersionParams",
    "check_versions",
    "generate_versions",
    "min_reference_frames",
    "sample_versions",
]

#: ``format`` field of a :meth:`VersionGAN.save` file.
VERSIONS_FORMAT = "covergan.versions"
#: Newest layout this version reads and the one it writes.
VERSIONS_FORMAT_VERSION = 1
#: Default share of windows :class:`VersionAugment` replaces: most stay real, since on top of
#: classic augmentation a larger share cost retrieval MAP (docs/benchmarks-log.md, "A larger
#: corpus").
VERSION_AUGMENT_P = 0.2
#: Largest model-space gap, in any bin, of a reference frame counted as silent.
SILENCE_TOLERANCE = 1e-5

_STREAM_STEP = 11
_STREAM_DATA = 12
_STREAM_INIT = 13
_STREAM_SAMPLE = 14
_STREAM_AE_DATA = 15
_STREAM_AE_STEP = 16
_STREAM_AE_INIT = 17

Crop = Literal["random", "center"]
Space = Literal["features", "model"]


# ----------------------------------------------------------------------------------- config


@dataclass(frozen=True, kw_only=True)
class VersionConfig:
    """Architecture and training hyper-parameters of a :class:`VersionGAN`.

    Parameters
    ----------
    image_size : tuple of int
        ``(H, W)``: frequency bins x frames of a generated window.
    z_dim : int
        Length of the style latent.
    g_width : int
        Generator channels at full resolution (doubling per stage).
    d_width : int
        Discriminator channels at its first stage (doubling per stage).
    max_width : int
        Channel cap of both networks.
    g_stages : int
        Stride-2 stages of the generator's encoder and decoder (content map at
        ``1 / 2**g_stages`` resolution).
    g_blocks : int
        Residual AdaIN blocks at the content resolution.
    g_refine : int
        Channels of the generator's full-resolution output stage
        (:class:`~covergan.models.reference.VersionGenerator`); 0: none. Files saved
        before it existed load with 0.
    d_stages : int, optional
        Stride-2 stages of the discriminator; ``None``: :func:`~covergan.models.auto_stages`.
    max_semitones : int
        Key change of a sample, uniform in ``[-max_semitones, max_semitones]`` semitones
        (0 disables it).
    tempo_range : tuple of float
        Tempo factor of a sample, log-uniform in ``[low, high]`` (``(1, 1)`` disables it).
    key_fill : {"octave", "keep", "silence"}
        What fills the bins a key change vacates
        (:func:`~covergan.models.reference.version_transform`): the pitch class an octave
        away, the reference's own untransposed content, or silence. Files saved before
        ``"octave"`` existed load with ``"silence"``.
    tempo_interpolation : {"nearest", "linear"}
        How the tempo change reads between reference frames
        (:func:`~covergan.models.reference.version_transform`): ``"nearest"`` keeps every
        frame a real one, so the reference's frame-to-frame change survives; ``"linear"``
        blends two frames and smooths it (the lowest bins of tempo-changed windows fell below
        every real window's frame-to-frame change, and the artefact check flagged them).
        Files saved before ``"nearest"`` existed load with ``"linear"``.
    lr_g, lr_d : float
        Adam learning rates.
    betas : tuple of float
        Adam betas.
    batch_size : int
        Pairs per step (at least 2; half of them are generated twice with two style latents).
    ema_decay : float or None
        Generator EMA decay, ramped as ``min(ema_decay, (1 + t) / (10 + t))``; ``None``: off.
    augment, augment_strength, augment_p
        Differentiable augmentation of every discriminator input (see
        :mod:`covergan.augment.differentiable`).
    bins_per_semitone : int
        Frequency bins per semitone of the features.
    mismatch_weight : float
        Weight of the mismatched real pairs (candidate of another work) among the
        discriminator's negatives (a matching-aware discriminator); 0 (default) disables
        them. Off by default: in short CPU runs the discriminator did not yet tell them from
        real pairs and they pushed samples towards other works (``docs/versions.md``).
    copy_weight : float
        Weight of the copy pairs (the reference, only transposed and tempo-changed) among
        the discriminator's negatives: a real version is never its reference in another
        key and tempo, so neither may a sample be. Default 0.5; 0 disables them. Off in the
        first short CPU runs (above); with the content term holding the notes they raised
        within-song diversity (chorales 0.71x to 0.79x the real floor at 1000 steps, and
        unchanged at 0.84x at 3000; toy 1.05x to 1.15x at 3000) for about 10% of identity,
        and the toy corpus's downstream MAP with classic augmentation
        (``docs/benchmarks.md``). Files saved before this default load with their own
        value.
    diversity_weight : float
        Weight of the mode-seeking term ``1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + 1e-5)``
        (Mao et al. 2019), which pushes two styles of one reference apart; default 0.01,
        0 disables it. At 0.01 within-song diversity rose on every seed of both built-in
        corpora (chorales 0.67x to 0.76x the real floor, toy 0.88x to 1.04x) for about 18%
        of identity; 0.02 gave no more diversity and worse realism, and 0.05 broke the
        samples within 100 steps (``docs/benchmarks.md``).
    content_weight : float
        Weight of the content term ``1 - chroma_correlation(G(src, z), src)``
        (:func:`~covergan.models.reference.chroma_correlation`): a sample must play the
        pitch classes of its transposed, tempo-changed reference frame by frame, whatever
        sound the style latent gives it. The pair discriminator sees only a pooled
        embedding of the reference, so nothing else ties a sample's notes to it. Default
        1 (on a 300-work benchmark its samples teach a CSI model more; docs/benchmarks.md);
        0 disables it; ``history["content"]`` logs the correlation either way.
    """

    image_size: tuple[int, int] = (84, 200)
    z_dim: int = 64
    g_width: int = 16
    d_width: int = 16
    max_width: int = 128
    g_stages: int = 2
    g_blocks: int = 2
    g_refine: int = 8
    d_stages: int | None = None
    max_semitones: int = 6
    tempo_range: tuple[float, float] = (0.8, 1.25)
    key_fill: KeyFill = "octave"
    tempo_interpolation: TempoInterpolation = "nearest"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)
    batch_size: int = 32
    ema_decay: float | None = 0.999
    augment: str = DEFAULT_POLICY
    augment_strength: float = 1.0
    augment_p: float = 1.0
    bins_per_semitone: int = 1
    mismatch_weight: float = 0.0
    copy_weight: float = 0.5
    diversity_weight: float = 0.01
    content_weight: float = 1.0

    def __post_init__(self) -> None:
        check_image_size(self, 4)
        check_ints(
            self, ("z_dim", "g_width", "d_width", "max_width", "g_stages", "bins_per_semitone")
        )
        check_ints(self, ("batch_size",), minimum=2)
        check_ints(self, ("g_blocks", "g_refine", "max_semitones"), minimum=0)
        if 2**self.g_stages > min(self.image_size):
            raise ParameterError(
                f"VersionConfig.g_stages={self.g_stages} is too many for "
                f"image_size={self.image_size}"
            )
        check_count("VersionConfig.d_stages", self.d_stages, 1, optional=True)
        tempo = self.tempo_range
        if (
            not isinstance(tempo, (tuple, list))
            or len(tempo) != 2
            or not all(_is_real(t) and math.isfinite(t) and t > 0 for t in tempo)
            or tempo[0] > tempo[1]
        ):
            raise ParameterError(
                f"VersionConfig.tempo_range={tempo!r} must be two positive numbers low <= high"
            )
        object.__setattr__(self, "tempo_range", (float(tempo[0]), float(tempo[1])))
        check_choice("VersionConfig.key_fill", self.key_fill, KeyFill)
        check_choice(
            "VersionConfig.tempo_interpolation", self.tempo_interpolation, TempoInterpolation
        )
        check_reals(self, ("lr_g", "lr_d"), positive=True)
        check_reals(
            self,
            (
                "mismatch_weight",
                "copy_weight",
                "diversity_weight",
                "content_weight",
                "augment_strength",
            ),
            positive=False,
        )
        check_adam(self)
        if not isinstance(self.augment, str):
            raise ParameterError(f"VersionConfig.augment={self.augment!r} must be a policy string")
        self.augmentation()  # validates the policy, p and bins_per_semitone

    @property
    def source_width(self) -> int:
        """Frames of reference a sample reads: ``ceil(W * tempo_range[1]) + 1``."""
        return math.ceil(self.image_size[1] * self.tempo_range[1]) + 1

    def augmentation(self) -> DiffAugment:
        """The discriminator's :class:`~covergan.augment.differentiable.DiffAugment`."""
        return DiffAugment(
            policy=self.augment,
            strength=float(self.augment_strength),
            p=float(self.augment_p),
            bins_per_semitone=self.bins_per_semitone,
        )

    def draw_changes(
        self, n: int, generator: torch.Generator, device: torch.device | None = None
    ) -> tuple[Tensor, Tensor]:
        """A sample's key and tempo change, drawn as training and sampling draw them.

        Parameters
        ----------
        n : int
            Number of draws.
        generator : torch.Generator
            Source of randomness (on ``device``).
        device : torch.device, optional
            Where the draws are made; ``None``: the generator's device.

        Returns
        -------
        semitones : torch.LongTensor [shape=(n,)]
            Uniform in ``[-max_semitones, max_semitones]``.
        rates : torch.Tensor [shape=(n,)]
            Log-uniform in ``tempo_range``.
        """
        n = check_count("n", n, 0)
        device = generator.device if device is None else device
        k = self.max_semitones
        u = torch.rand(n, generator=generator, device=device)
        semitones = torch.floor(u * (2 * k + 1)).long().clamp(max=2 * k) - k
        low, high = (math.log(t) for t in self.tempo_range)
        rates = torch.exp(low + (high - low) * torch.rand(n, generator=generator, device=device))
        return semitones, rates

    def transform(self, refs: Tensor, semitones: Tensor, rates: Tensor) -> Tensor:
        """The explicit part of a version, ``T_{k, r}``, as this config sets it up
        (:func:`~covergan.models.reference.version_transform` with its width, bins per
        semitone, key fill and tempo interpolation).

        Parameters
        ----------
        refs : torch.Tensor [shape=(B, 1, H, W_src)]
        semitones : torch.LongTensor [shape=(B,)]
        rates : torch.Tensor [shape=(B,)]

        Returns
        -------
        torch.Tensor [shape=(B, 1, H, image_size[1])]
        """
        return version_transform(
            refs,
            semitones,
            rates,
            width=self.image_size[1],
            bins_per_semitone=self.bins_per_semitone,
            fill=self.key_fill,
            interpolation=self.tempo_interpolation,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (safe for ``torch.load(weights_only=True)``)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error. A dict without
        ``g_refine``, ``key_fill`` or ``tempo_interpolation`` (written before they existed)
        describes the model of that time: no refinement stage, silence in the bins a key
        change vacates, a linear tempo change."""
        before = {"g_refine": 0, "key_fill": "silence", "tempo_interpolation": "linear"}
        result: VersionConfig = config_from_dict(cls, {**before, **data})
        return result


# ----------------------------------------------------------------------------------- model


class VersionGAN(AdversarialModel):
    """Reference-conditioned GAN: a CQT window in, plausible other versions of its work out.

    Works in model space (``[-1, 1]``, see :class:`~covergan.cqt.CQTNormalizer`); use
    :func:`sample_versions` or :meth:`covergan.Augmenter.sample_like` for feature-format
    input and output.

    Parameters
    ----------
    config : VersionConfig, optional
        Default ``VersionConfig()`` (84 x 200 windows).
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU) or explicit.
    seed : int, optional
        Seeds the weight initialisation (torch's global generator is left alone) and is the
        default training seed; ``None`` draws one at the first :meth:`fit`.

    Attributes
    ----------
    generator, discriminator : nn.Module
    generator_ema : nn.Module or None
        Moving average of the generator, used for sampling.
    step : int
        Training steps done.
    history : dict of str to list of float
        Per-step ``loss_d``, ``loss_g``, ``d_real``, ``d_fake`` and, when enabled,
        ``d_mismatch``, ``d_copy`` (mean logits), and ``diversity``
        (``mean|G(z1) - G(z2)| / mean|z1 - z2|`` for one reference, key and tempo).

    Examples
    --------
    >>> model = VersionGAN(VersionConfig(image_size=(84, 100)), device="cpu", seed=0)
    >>> model.fit(train.windows(100, transform=normalizer), steps=800)   # doctest: +SKIP
    >>> out = model.generate(refs, generator=0)   # refs [n, 1, 84, W_src] -> [n, 1, 84, 100]
    """

    config: VersionConfig

    def __init__(
        self,
        config: VersionConfig | None = None,
        *,
        device: str | torch.device = "auto",
        seed: int | None = None,
    ) -> None:
        if config is None:
            config = VersionConfig()
        elif not isinstance(config, VersionConfig):
            raise ParameterError(f"config must be a VersionConfig, got {type(config).__name__}")
        check_count("seed", seed, 0, optional=True)
        self.config = config
        self.device = resolve_device(device)
        self.seed = None if seed is None else int(seed)
        networks = _networks(config, self.seed)
        self.generator: VersionGenerator = networks[0]
        self.discriminator: PairDiscriminator = networks[1]
        self.generator.to(self.device)
        self.discriminator.to(self.device)
        self._init_training(config)

    def __repr__(self) -> str:
        return (
            f"VersionGAN(image_size={self.config.image_size}, step={self.step}, "
            f"device={str(self.device)!r})"
        )

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of a generated window."""
        return self.config.image_size

    # ------------------------------------------------------------------ training

    def fit(
        self,
        data: CQTDataset,
        *,
        steps: int,
        batch_size: int | None = None,
        progress: bool = True,
        seed: int | None = None,
        callbacks: Sequence[Callback] = (),
        workers: int = 0,
    ) -> VersionGAN:
        """Train on pairs of recordings of the same work; a second call continues exactly.

        Parameters
        ----------
        data : CQTDataset
            Full tracks labelled by work, with ``transform`` mapping an item
            ``[1, n_bins, frames]`` into model space (a fitted ``CQTNormalizer``); its
            ``pad_mode`` and silence value pad crops of short tracks. Only works with two or
            more recordings give pairs; the others are not used.
        steps : int
            Training steps to run now (>= 0).
        batch_size : int, optional
            Pairs per step; default ``config.batch_size``.
        progress : bool
            tqdm bar.
        seed : int, optional
            Training seed (pairs, crops, noise, augmentation); default the constructor's,
            the previous call's, or a fresh one (kept in ``self.seed``).
        callbacks : sequence of Callback
            Each gets ``on_step_end(model, step, logs)`` after every step, as in
            :meth:`ConditionalDCGAN.fit` (checkpoints, a graceful Ctrl-C).
        workers : int
            Processes that cut each step's pairs ahead of the step (0: this process); the pairs
            are the same either way. Worth it where the model's step is faster than cutting
            (a GPU; a catalogue read from a memory-mapped store).

        Returns
        -------
        VersionGAN
            ``self``.

        Raises
        ------
        ParameterError
            Bad arguments, a dataset that is not a CQTDataset, bins that do not match
            ``image_size``, or a transform that does not return ``[1, n_bins, frames]``.
        DatasetError
            No work has two recordings.
        """
        if not _is_int(steps) or steps < 0:
            raise ParameterError(f"steps={steps!r} must be a non-negative integer")
        batch = _start(self, data, batch_size, seed, minimum=2)
        rank, world = _rank_world()
        if world > 1:
            _broadcast_modules([self.generator, self.discriminator, self.generator_ema])
        draw = _Draw(_PairSource(data, self.config), "pairs", int(batch), self.seed, rank_key())
        batches = prefetch(draw, self.step, steps, workers)

        def one_step(_: int) -> dict[str, float]:
            refs, cands, works = next(batches)
            return self._train_step(refs.to(self.device), cands.to(self.device), works)

        self._loop(
            steps, one_step, desc="versions", progress=progress and rank == 0, callbacks=callbacks
        )
        return self

    def pretrain_autoencoder(
        self,
        data: CQTDataset,
        *,
        steps: int,
        batch_size: int | None = None,
        lr: float = 1e-3,
        kl_weight: float = 0.1,
        progress: bool = True,
        seed: int | None = None,
        workers: int = 0,
    ) -> VersionGAN:
        """Initialise the generator as the decoder of a style autoencoder (before :meth:`fit`).

        A :class:`~covergan.models.ConvEncoder` maps a window to a Gaussian over the style
        latent; the generator rebuilds the window from itself (content path, after a random
        key and tempo change) and a sample of that Gaussian (style path). Loss: per-window L1
        plus ``kl_weight`` times the KL divergence to ``N(0, I)``, which keeps encoded styles
        where :meth:`generate` draws them. The generator thus learns to draw spectrograms
        and to take their sound from ``z`` in a few hundred steps; :meth:`fit` then teaches
        it, adversarially, to make *other* versions (its copy negatives push it away from
        the reconstruction). Every recording serves, single ones included. The encoder is
        discarded and the EMA generator is reset to the result.

        Parameters
        ----------
        data : CQTDataset
            As in :meth:`fit`.
        steps : int
            Autoencoder updates (>= 1).
        batch_size : int, optional
            Default ``config.batch_size``.
        lr : float
            Adam learning rate (betas (0.5, 0.999)).
        kl_weight : float
            Weight of the KL term (summed over the latent; the L1 term is summed over cells).
        progress : bool
            tqdm bar.
        seed, workers
            As in :meth:`fit`.

        Returns
        -------
        VersionGAN
            ``self``; ``self.pretrain_history`` holds ``ae_l1`` (per cell) and ``ae_kl``.

        Raises
        ------
        ParameterError
            Bad arguments, or a model that has already been trained adversarially.
        """
        check_pretrain(self.step, "adversarial", steps, lr, kl_weight)
        batch = _start(self, data, batch_size, seed, minimum=1)
        _pretrain(self, data, steps, batch, float(lr), kl_weight, progress, workers)
        self._reset_ema()
        return self

    def _draw(
        self,
        n: int,
        gen: torch.Generator,
        device: torch.device,
        truncation: float | None = None,
    ) -> tuple[Tensor, ...]:
        """Key changes ``[n]``, tempo factors ``[n]`` (:meth:`VersionConfig.draw_changes`)
        and style latents ``[n, z_dim]`` (truncated at ``truncation`` when given)."""
        semitones, rates = self.config.draw_changes(n, gen, device)
        z = truncated_normal(n, self.config.z_dim, gen, device, truncation)
        return semitones, rates, z

    def _train_step(self, refs: Tensor, cands: Tensor, works: np.ndarray) -> dict[str, float]:
        cfg = self.config
        G, D = self.generator, self.discriminator
        G.train()
        D.train()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(cast(int, self.seed), _STREAM_STEP, self.step, *rank_key()))
        half = refs.shape[0] // 2
        semis, rates, _ = self._draw(half, gen, self.device)
        z = torch.randn(2 * half, cfg.z_dim, generator=gen, device=self.device)
        fake_refs = torch.cat([refs[:half], refs[:half]])
        src = cfg.transform(fake_refs, torch.cat([semis, semis]), torch.cat([rates, rates]))
        fake = G(src, z)
        logs = self._d_step(refs, cands, works, fake.detach(), src, gen)
        logs.update(self._g_step(refs, fake, src, z, gen))
        self._update_ema()
        world = _rank_world()[1]
        return _average_logs(logs, world, self.device) if world > 1 else logs

    def _d_step(
        self,
        refs: Tensor,
        cands: Tensor,
        works: np.ndarray,
        fake: Tensor,
        src: Tensor,
        gen: torch.Generator,
    ) -> dict[str, float]:
        """One discriminator update: real pairs, generated pairs and the optional mismatched
        and copy negatives, every candidate batch in one forward pass."""
        D = self.discriminator
        loss_d, d_real, d_fake, logs = _d_loss(self, refs, cands, works, fake, src, gen)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()  # type: ignore[no-untyped-call]
        _sync_gradients(D)
        self.opt_d.step()
        logs.update(
            loss_d=float(loss_d.detach()),
            d_real=float(d_real.detach().mean()),
            d_fake=float(d_fake.detach().mean()),
        )
        return logs

    def _g_step(
        self, refs: Tensor, fake: Tensor, src: Tensor, z: Tensor, gen: torch.Generator
    ) -> dict[str, float]:
        """One generator update (the discriminator frozen): adversarial, mode-seeking and
        content terms."""
        trainable = [p for p in self.discriminator.parameters() if p.requires_grad]
        for p in trainable:
            p.requires_grad_(False)
        try:
            loss_g, spread, content = _g_loss(self, refs, fake, src, z, gen)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()  # type: ignore[no-untyped-call]
            _sync_gradients(self.generator)
            self.opt_g.step()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        return {
            "loss_g": float(loss_g.detach()),
            "diversity": float(spread.detach()),
            "content": float(content.detach()),
        }

    # ------------------------------------------------------------------ sampling

    def generate(
        self,
        refs: Tensor,
        *,
        generator: torch.Generator | int | None = None,
        truncation: float | None = None,
        batch_size: int = 256,
        use_ema: bool = True,
        silence: Tensor | None = None,
    ) -> Tensor:
        """One version per reference window (eval mode, no gradients, in batches).

        Parameters
        ----------
        refs : torch.Tensor [shape=(n, 1, H, W_src)]
            Reference windows in model space; ``W_src >= config.source_width`` frames let the
            fastest tempo read fresh frames (a shorter window repeats its last frame).
        generator : torch.Generator or int, optional
            Source of the key change, tempo factor and style latent of each sample, or its
            seed (drawn on the CPU, so a seed gives the same samples on every device).
            ``None``: torch's global generator.
        truncation : float, optional
            Truncation trick on the style latent: entries with ``|z| > truncation`` are
            redrawn. Smaller keeps more of the reference's rendering (the key change and
            tempo are drawn as usual).
        batch_size : int
            Samples per forward pass.
        use_ema : bool
            Sample the EMA generator (when there is one).
        silence : torch.Tensor [shape=(H,)], optional
            Model-space value of silence per bin (the normaliser's image of the features'
            silence value). Given, a version keeps the reference's silence: reference frames
            equal to it (every bin within ``1e-5``), such as the padding after a short
            recording, are silent in the version where the tempo change puts them (see
            :func:`~covergan.models.reference.warp_silence`). ``None``: the generator's
            output everywhere.

        Returns
        -------
        torch.Tensor [shape=(n, 1, H, W)]
            float32 on the CPU, in ``[-1, 1]``.
        """
        return _generate(self, refs, generator, truncation, batch_size, use_ema, silence)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`save` writes, as plain containers and tensors."""
        return {
            **header(VERSIONS_FORMAT, VERSIONS_FORMAT_VERSION),
            "config": self.config.to_dict(),
            **self._training_state(),
        }

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, device: str | torch.device = "auto"
    ) -> VersionGAN:
        """Rebuild from :meth:`save` output with ``torch.load(weights_only=True)``.

        Raises
        ------
        CheckpointError
            Missing, truncated, corrupt or foreign file, objects other than tensors and
            plain containers, a newer ``format_version``, or weights that do not fit.
        """
        source = Path(path).expanduser()
        return cls.from_state_dict(read_checkpoint(source), device=device, source=str(source))

    @classmethod
    def from_state_dict(
        cls,
        state: Any,
        *,
        device: str | torch.device = "auto",
        source: str = "the state dict",
    ) -> VersionGAN:
        """Rebuild from :meth:`state_dict` output (e.g. embedded in an augmenter file).

        Raises
        ------
        CheckpointError
            As in :meth:`load`.
        """
        return _from_state(cls, state, device, source)


def _start(
    model: VersionGAN, data: object, batch_size: int | None, seed: int | None, *, minimum: int
) -> int:
    """Checks ``data`` (a CQTDataset with the model's bins) and sets the training seed; returns
    the batch size (default the config's, >= ``minimum``)."""
    if not isinstance(data, CQTDataset):
        raise ParameterError(f"data must be a CQTDataset, got {type(data).__name__}")
    batch = check_count(
        "batch_size", model.config.batch_size if batch_size is None else batch_size, minimum
    )
    model._set_training_seed(seed)
    if data.n_bins != model.image_size[0]:
        raise ParameterError(
            f"the dataset has {data.n_bins} bins but image_size={model.image_size}"
        )
    return batch


def _generate(
    model: VersionGAN,
    refs: Tensor,
    generator: torch.Generator | int | None,
    truncation: float | None,
    batch_size: int,
    use_ema: bool,
    silence: Tensor | None,
) -> Tensor:
    """:meth:`VersionGAN.generate`."""
    height, width = model.image_size
    if not isinstance(refs, Tensor) or refs.dim() != 4 or refs.shape[1:3] != (1, height):
        got = tuple(refs.shape) if isinstance(refs, Tensor) else type(refs).__name__
        raise ParameterError(f"refs must be a tensor [n, 1, {height}, W_src], got {got}")
    check_count("batch_size", batch_size, 1)
    check_truncation(truncation)
    silent = None if silence is None else _silent_frames(refs, silence)
    gen = noise_source(generator)
    gen = torch.default_generator if gen is None else gen
    semis, rates, z = model._draw(refs.shape[0], gen, gen.device, truncation)

    def forward(module: nn.Module, start: int, stop: int) -> Tensor:
        src = model.config.transform(
            refs[start:stop].to(model.device, torch.float32), semis[start:stop], rates[start:stop]
        )
        out: Tensor = module(src, z[start:stop].to(model.device))
        if silent is not None and silence is not None:
            keep = warp_silence(
                silent[start:stop], rates[start:stop], width, model.config.tempo_interpolation
            ).to(out.device)
            out = torch.where(keep[:, None, None, :], silence.to(out).view(1, 1, -1, 1), out)
        return out

    return model._sample(refs.shape[0], batch_size, use_ema, forward)


def _silent_frames(refs: Tensor, silence: Tensor) -> Tensor:
    """Frames of ``refs`` [n, 1, H, W_src] equal to the model-space ``silence`` [H] in every
    bin (within ``1e-5``), bool [n, W_src]."""
    height = refs.shape[2]
    if not isinstance(silence, Tensor) or tuple(silence.shape) != (height,):
        got = tuple(silence.shape) if isinstance(silence, Tensor) else type(silence).__name__
        raise ParameterError(f"silence must be a tensor [{height}] (one value per bin), got {got}")
    if not bool(torch.isfinite(silence).all()):
        raise ParameterError("silence contains NaN or inf")
    gap = (refs[:, 0].float() - silence.to(refs.device).float().view(1, -1, 1)).abs()
    return gap.amax(dim=1).cpu() <= SILENCE_TOLERANCE


def _from_state(
    cls: type[VersionGAN], state: Any, device: str | torch.device, source: str
) -> VersionGAN:
    """:meth:`VersionGAN.from_state_dict`."""
    state = check_header(state, VERSIONS_FORMAT, VERSIONS_FORMAT_VERSION, source, "version-model")
    device = resolve_device(device)  # a machine without it is not a bad checkpoint
    try:
        model = cls(VersionConfig.from_dict(state["config"]), device=device, seed=0)
        model._load_training_state(state, source)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{source} is an incomplete or inconsistent version-model checkpoint: {exc}; fit "
            "the model again (Augmenter.fit, or VersionGAN.fit) and save it"
        ) from exc
    return model


def _networks(
    config: VersionConfig, seed: int | None
) -> tuple[VersionGenerator, PairDiscriminator]:
    """The generator and pair discriminator of ``config``, initialised from ``seed`` when given
    (without touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(derive_seed(seed, _STREAM_INIT))
        generator = VersionGenerator(
            image_size=config.image_size,
            z_dim=config.z_dim,
            width=config.g_width,
            max_width=config.max_width,
            n_stages=config.g_stages,
            n_blocks=config.g_blocks,
            refine=config.g_refine,
        )
        discriminator = PairDiscriminator(
            image_size=config.image_size,
            width=config.d_width,
            max_width=config.max_width,
            n_stages=config.d_stages,
        )
    return generator, discriminator


def _pretrain(
    model: VersionGAN,
    data: CQTDataset,
    steps: int,
    batch: int,
    lr: float,
    kl_weight: float,
    progress: bool,
    workers: int,
) -> None:
    """The steps of :meth:`VersionGAN.pretrain_autoencoder` (arguments checked)."""
    cfg = model.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cast(int, model.seed), _STREAM_AE_INIT))
        encoder = ConvEncoder(
            image_size=cfg.image_size, z_dim=cfg.z_dim, width=cfg.d_width, max_width=64
        ).to(model.device)
    G = model.generator
    rank, world = _rank_world()
    if world > 1:
        _broadcast_modules([G])
    params = [*encoder.parameters(), *G.parameters()]
    optimiser = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    draw = _Draw(_PairSource(data, cfg, pairs=False), "singles", batch, model.seed, rank_key())
    batches = prefetch(draw, 0, steps, workers)
    G.train()

    def one_step(step: int) -> dict[str, float]:
        refs = next(batches).to(model.device)
        gen = torch.Generator(device=model.device)
        gen.manual_seed(derive_seed(cast(int, model.seed), _STREAM_AE_STEP, step, *rank_key()))
        semis, rates, eps = model._draw(refs.shape[0], gen, model.device)
        x = cfg.transform(refs, semis, rates)
        mu, log_var = encoder(x)
        loss, logs = vae_loss(mu, log_var, eps, lambda z: G(x, z), x, kl_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if world > 1:
            _average_gradients(params, world)
        optimiser.step()
        return _average_logs(logs, world, model.device) if world > 1 else logs

    model._loop(steps, one_step, desc="versions AE", progress=progress and rank == 0, pretrain=True)


def _d_loss(
    model: VersionGAN,
    refs: Tensor,
    cands: Tensor,
    works: np.ndarray,
    fake: Tensor,
    src: Tensor,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
    """The discriminator's hinge loss on real pairs, generated pairs and the optional
    mismatched and copy negatives (every candidate batch in one forward pass); returns the
    loss, the real and fake scores and the logs of the optional terms."""
    cfg, D, aug = model.config, model.discriminator, model.augment
    b, half, width = refs.shape[0], fake.shape[0] // 2, model.image_size[1]
    e_ref = D.embed_reference(aug(refs[..., :width], gen))  # [b, C]
    e_half = torch.cat([e_ref[:half], e_ref[:half]])
    cand_list, emb_list, sizes = [cands, fake], [e_ref, e_half], [b, 2 * half]
    perm = torch.roll(torch.arange(b), 1)
    keep = torch.as_tensor(works != works[perm.numpy()]).nonzero().reshape(-1)
    use_mismatch = cfg.mismatch_weight > 0 and keep.numel() > 0
    if use_mismatch:
        cand_list.append(cands[perm[keep].to(model.device)])
        emb_list.append(e_ref[keep.to(model.device)])
        sizes.append(keep.numel())
    if cfg.copy_weight > 0:
        cand_list.append(src[:half])
        emb_list.append(e_ref[:half])
        sizes.append(half)
    scores = D(None, aug(torch.cat(cand_list), gen), torch.cat(emb_list)).split(sizes)
    d_real, d_fake = scores[0], scores[1]
    loss_d = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
    logs: dict[str, float] = {}
    at = 2
    if use_mismatch:
        loss_d = loss_d + cfg.mismatch_weight * torch.relu(1 + scores[at]).mean()
        logs["d_mismatch"] = float(scores[at].detach().mean())
        at += 1
    elif cfg.mismatch_weight > 0:  # no pair of other works in this batch
        logs["d_mismatch"] = float("nan")
    if cfg.copy_weight > 0:
        loss_d = loss_d + cfg.copy_weight * torch.relu(1 + scores[at]).mean()
        logs["d_copy"] = float(scores[at].detach().mean())
    return loss_d, d_real, d_fake, logs


def _g_loss(
    model: VersionGAN, refs: Tensor, fake: Tensor, src: Tensor, z: Tensor, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """The generator's loss (adversarial, mode-seeking and content terms), the spread of its
    two styles per reference and the content correlation."""
    cfg, D, aug = model.config, model.discriminator, model.augment
    half, width = fake.shape[0] // 2, model.image_size[1]
    with torch.no_grad():
        e_g = D.embed_reference(aug(refs[:half, :, :, :width], gen))
    g_out = D(None, aug(fake, gen), torch.cat([e_g, e_g]))
    loss_g: Tensor = -g_out.mean()
    spread = (fake[:half] - fake[half:]).abs().mean() / ((z[:half] - z[half:]).abs().mean() + 1e-8)
    if cfg.diversity_weight > 0:
        loss_g = loss_g + cfg.diversity_weight / (spread + 1e-5)
    with torch.set_grad_enabled(cfg.content_weight > 0):
        content = chroma_correlation(fake, src, bins_per_semitone=cfg.bins_per_semitone).mean()
    if cfg.content_weight > 0:
        loss_g = loss_g + cfg.content_weight * (1 - content)
    return loss_g, spread, content


def _sync_gradients(module: nn.Module) -> None:
    """Average ``module``'s gradients over the ranks (nothing in one process)."""
    world = _rank_world()[1]
    if world > 1:
        _average_gradients(list(module.parameters()), world)


class _Draw:
    """Step ``t``'s training data, a function of ``t`` alone (so it can be cut ahead, in
    worker processes): ``pairs`` (references, candidates, works) or ``singles`` (windows)."""

    def __init__(
        self,
        source: _PairSource,
        kind: Literal["pairs", "singles"],
        batch: int,
        seed: int | None,
        shard: tuple[int, ...],
    ) -> None:
        self.source, self.kind, self.batch = source, kind, batch
        self.key = [cast(int, seed), _STREAM_DATA if kind == "pairs" else _STREAM_AE_DATA, *shard]

    def __call__(self, step: int) -> Any:
        rng = np.random.default_rng([*self.key[:2], step, *self.key[2:]])
        if self.kind == "pairs":
            return self.source.batch(self.batch, rng)
        return self.source.singles(self.batch, rng)


class _PairSource:
    """Random ``(reference, candidate)`` crops of two recordings of the same work."""

    def __init__(self, data: CQTDataset, config: VersionConfig, *, pairs: bool = True) -> None:
        self.data = data
        self.height, self.width = config.image_size
        self.source_width = config.source_width
        if not pairs:
            return
        groups: dict[SongId, list[int]] = {}
        for i, song in enumerate(data.song_ids):
            groups.setdefault(song, []).append(i)
        self.groups = {s: np.asarray(g) for s, g in groups.items() if len(g) >= 2}
        if not self.groups:
            raise DatasetError(
                "a version model learns from works with two or more recordings; every work in "
                "this dataset has one"
            )
        work_ids = {s: k for k, s in enumerate(self.groups)}
        self.items = np.concatenate(list(self.groups.values()))
        self.item_work = np.concatenate(
            [np.full(len(g), work_ids[s]) for s, g in self.groups.items()]
        )

    def singles(self, n: int, rng: np.random.Generator) -> Tensor:
        """``n`` source-width crops of random recordings (any work)."""
        picks = rng.integers(0, len(self.data), size=n)
        return torch.stack([self._crop(int(i), self.source_width, rng) for i in picks])

    def batch(self, n: int, rng: np.random.Generator) -> tuple[Tensor, Tensor, np.ndarray]:
        data = self.data
        picks = rng.integers(0, len(self.items), size=n)
        refs, cands = [], []
        for p in picks:
            i = int(self.items[p])
            group = self.groups[data.song_ids[i]]
            j = int(rng.choice(group[group != i]))
            refs.append(self._crop(i, self.source_width, rng))
            cands.append(self._crop(j, self.width, rng))
        return torch.stack(refs), torch.stack(cands), self.item_work[picks]

    def _crop(self, i: int, width: int, rng: np.random.Generator) -> Tensor:
        data = self.data
        x = random_crop(
            data.features[i],
            width,
            rng=rng,
            pad_mode=data.pad_mode,
            pad_value=data.silence_value,
        )
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        if data.transform is not None:
            t = data.transform(t)
        if not isinstance(t, Tensor) or tuple(t.shape) != (1, self.height, width):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ParameterError(
                f"the dataset's transform must return [1, {self.height}, {width}], got {got}"
            )
        return t.float()


# ----------------------------------------------------------------------------------- sampling


def _reference_track(features: Any, n_bins: int) -> np.ndarray:
    """Validate one reference recording and return it as float32 ``[n_bins, n_frames]``."""
    if isinstance(features, Tensor):
        if features.is_complex():
            raise ParameterError(f"features must be real numbers, got dtype {features.dtype}")
        # float32 first: NumPy has no bfloat16 (nor torch's other narrow floats)
        arr = features.detach().cpu().to(torch.float32).numpy()
    elif isinstance(features, np.ndarray):
        arr = features
    else:
        raise ParameterError(
            f"features must be a numpy array or torch tensor [n_bins, n_frames], got "
            f"{type(features).__name__}"
        )
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ParameterError(f"features must be [n_bins, n_frames], got shape {arr.shape}")
    if arr.shape[0] != n_bins:
        raise ParameterError(
            f"features have {arr.shape[0]} bins on axis 0, the model makes {n_bins}; "
            "features are [n_bins, n_frames] in the extractor's format"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ParameterError(f"features must be real numbers, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float32)


def min_reference_frames(window: int) -> int:
    """Frames a recording needs at least to be a version's reference: a quarter of the
    ``window`` (at least 2); a shorter one would be mostly padding."""
    return max(2, window // 4)


def _check_values(x: np.ndarray | Tensor, normalizer: CQTNormalizer, what: str) -> None:
    """``x`` is finite, and non-negative where ``normalizer`` takes a log."""
    values = torch.as_tensor(x)
    if not bool(torch.isfinite(values).all()):
        raise ParameterError(f"{what} contain NaN or inf")
    if normalizer.log and bool((values < 0).any()):
        raise ParameterError(f"{what} must be non-negative (the normaliser takes a log)")


def sample_versions(
    model: VersionGAN,
    normalizer: CQTNormalizer,
    features: np.ndarray | Tensor,
    n: int,
    *,
    seed: int | None = None,
    space: Space = "features",
    crop: Crop = "random",
    silence: float = 0.0,
    pad_mode: Literal["constant", "wrap"] = "constant",
    truncation: float | None = None,
) -> Tensor:
    """Synthetic versions of one recording, in the feature format (the sampler behind
    :meth:`covergan.Augmenter.sample_like`).

    Crop and pad policy: sample ``i`` reads a window of ``model.config.source_width`` frames
    of the recording (``ceil(W * tempo_range[1]) + 1``: what the fastest tempo consumes);
    ``crop="random"`` draws each sample's window start uniformly (seeded), ``"center"`` uses
    the centre for every sample. A recording shorter than that is padded at the end with
    ``silence`` (``pad_mode="constant"``, as training windows are) or tiled (``"wrap"``).
    A recording needs at least ``max(2, W // 4)`` frames.

    Parameters
    ----------
    model : VersionGAN
    normalizer : CQTNormalizer
        The fitted feature <-> model-space map the model was trained with.
    features : np.ndarray or torch.Tensor [shape=(n_bins, n_frames)]
        One recording in the extractor's format (``[1, n_bins, n_frames]`` is accepted).
    n : int
        Number of versions (> 0).
    seed : int, optional
        Same seed, same samples (crops, key, tempo and style). ``None``: fresh randomness.
    space : {"features", "model"}
        Output in the extractor's format or in the model's ``[-1, 1]``.
    crop : {"random", "center"}
        Where the windows are read (see above).
    silence : float
        Feature value of silence (0, or ``-top_db`` for dB features): it pads short
        recordings, and reference frames at it in every bin stay silent in the versions
        (see :func:`generate_versions`).
    pad_mode : {"constant", "wrap"}
        Padding of short recordings.
    truncation : float, optional
        Truncation of the style latent (see :meth:`VersionGAN.generate`).

    Returns
    -------
    torch.Tensor [shape=(n, 1, n_bins, W), dtype=float32, device=cpu]

    Raises
    ------
    ParameterError
        ``n`` not a positive int, bad ``space``/``crop``/``pad_mode``/``seed``/``truncation``,
        features that are not a 2-D real array with the model's bins, contain NaN or inf, are
        negative where the normaliser takes a log, or are shorter than ``max(2, W // 4)``
        frames.
    """
    check_count("n", n, 1)
    if space not in ("features", "model"):
        raise ParameterError(f"space={space!r} must be 'features' or 'model'")
    if crop not in ("random", "center"):
        raise ParameterError(f"crop={crop!r} must be 'random' or 'center'")
    if pad_mode not in ("constant", "wrap"):
        raise ParameterError(f"pad_mode={pad_mode!r} must be 'constant' or 'wrap'")
    check_count("seed", seed, 0, optional=True)
    height, width = model.image_size
    track = _reference_track(features, height)
    min_frames = min_reference_frames(width)
    if track.shape[1] < min_frames:
        raise ParameterError(
            f"the reference has {track.shape[1]} frames; a reference needs at least "
            f"{min_frames} (a quarter of the {width}-frame window)"
        )
    _check_values(track, normalizer, "features")
    source_width = model.config.source_width
    rng = np.random.default_rng(None if seed is None else [seed, _STREAM_SAMPLE])
    if crop == "random":
        windows = [
            random_crop(track, source_width, rng=rng, pad_mode=pad_mode, pad_value=silence)
            for _ in range(int(n))
        ]
    else:
        one = center_crop_or_pad(track, source_width, pad_mode=pad_mode, pad_value=silence)
        windows = [one] * int(n)
    return generate_versions(
        model,
        normalizer,
        torch.from_numpy(np.stack(windows)),
        seed=seed,
        space=space,
        truncation=truncation,
        silence=silence,
    )


def generate_versions(
    model: VersionGAN,
    normalizer: CQTNormalizer,
    windows: Tensor,
    *,
    seed: int | None = None,
    space: Space = "features",
    truncation: float | None = None,
    silence: float | None = 0.0,
) -> Tensor:
    """One synthetic version of each reference window (no cropping, no checks of values).

    The step after the crop in :func:`sample_versions`, and what
    :meth:`covergan.Augmenter.sample` runs on its reference bank.

    Parameters
    ----------
    windows : torch.Tensor [shape=(n, n_bins, W_src)]
        Reference windows in the feature format, ``W_src >= model.config.source_width``.
    seed, space, truncation
        As in :func:`sample_versions`.
    silence : float or None
        Feature value of silence (0, or ``-top_db`` for dB features). Reference frames
        that are silent in every bin (the padding after a short recording, a pause) stay
        silent in the versions, moved by the tempo change (see :meth:`VersionGAN.generate`);
        ``None``: the generator fills them too.

    Returns
    -------
    torch.Tensor [shape=(n, 1, n_bins, W), dtype=float32, device=cpu]
    """
    generator = None if seed is None else int(derive_seed(seed, _STREAM_SAMPLE))
    return _versions(model, normalizer, windows, generator, space, truncation, silence)


def _versions(
    model: VersionGAN,
    normalizer: CQTNormalizer,
    windows: Tensor,
    generator: int | None,
    space: Space,
    truncation: float | None,
    silence: float | None,
) -> Tensor:
    """:func:`generate_versions` from a generator seed. Frames kept silent come out as
    exactly ``silence`` in the feature format (the normaliser's clip would decode its floor
    to a faint level otherwise)."""
    refs = normalizer.forward(windows.float())[:, None].float()
    floor = None
    if silence is not None:
        column = torch.full((1, windows.shape[1], 1), float(silence))
        floor = normalizer.forward(column)[0, :, 0].float()
    out = model.generate(refs, generator=generator, truncation=truncation, silence=floor)
    if space == "model":
        return out
    features = normalizer.inverse(out)
    if floor is not None and silence is not None:
        silent = (out == floor.view(1, 1, -1, 1)).all(dim=2, keepdim=True)
        features = features.masked_fill(silent, float(silence))
    return features


# ----------------------------------------------------------------------- as a transform


@dataclass(frozen=True)
class VersionParams(Params):
    """:class:`VersionAugment` parameters; ``seeds`` [shape=(B,), int64]: sampling seeds."""

    seeds: Tensor


class VersionAugment(Transform[VersionParams]):
    """Replace training windows, each with probability ``p``, by a synthetic version of itself.

    A :mod:`covergan.augment.classic` transform (composable with :class:`Compose
    <covergan.augment.classic.Compose>`, seeded the same way, usable as ``train_csi``'s
    ``augment``) built on a trained :class:`VersionGAN`: a chosen window becomes another
    version of the same work (a new key, tempo and sound) *of the same label*. Unlike a bank
    of synthetic items for a few songs, every song's windows can be re-rendered, and the real
    windows keep their share of each batch.

    Pad policy: a window of ``W`` frames is tiled (``pad_mode="wrap"``) or padded with
    ``silence`` (``"constant"``) to the model's ``config.source_width`` frames (what the
    fastest tempo reads) before the version is drawn.

    Parameters
    ----------
    model : VersionGAN
        Trained version model; its ``image_size`` must be the windows' ``(n_bins, W)``.
    normalizer : CQTNormalizer
        The fitted feature <-> model-space map the model was trained with.
    p : float
        Probability per window, in ``[0, 1]``; default :data:`VERSION_AUGMENT_P` (0.2).
    silence : float
        Feature value of silence (0, or ``-top_db`` for dB features); frames of a window at
        it in every bin stay silent in its version.
    pad_mode : {"wrap", "constant"}
        How a window is extended to ``source_width`` frames.
    truncation : float, optional
        Style-latent truncation (see :meth:`VersionGAN.generate`).
    seed : int, torch.Generator or None
        The transform's own random stream (see :mod:`covergan.augment.classic`).

    Raises
    ------
    ParameterError
        A model that is not a VersionGAN, an unfitted normaliser, a bad ``p``, ``pad_mode``,
        ``truncation`` or ``seed``; at call time (whether or not a window is drawn),
        windows that are not ``(B, 1, n_bins, W)`` with the model's ``image_size``, or
        windows with NaN, inf or (magnitude formats) negative values.

    Examples
    --------
    >>> from covergan.augment.classic import Compose, SemitoneRoll
    >>> augment = Compose([aug.version_augment(p=0.3), SemitoneRoll(6, p=0.5)])
    >>> train_csi(model, windows, steps=300, augment=augment)
    """

    def __init__(
        self,
        model: VersionGAN,
        normalizer: CQTNormalizer,
        *,
        p: float = VERSION_AUGMENT_P,
        silence: float = 0.0,
        pad_mode: Literal["wrap", "constant"] = "wrap",
        truncation: float | None = None,
        seed: int | torch.Generator | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        if not isinstance(model, VersionGAN):
            raise ParameterError(f"model must be a VersionGAN, got {type(model).__name__}")
        if not isinstance(normalizer, CQTNormalizer) or not normalizer.is_fitted:
            raise ParameterError("normalizer must be a fitted CQTNormalizer")
        if pad_mode not in ("wrap", "constant"):
            raise ParameterError(f"pad_mode={pad_mode!r} must be 'wrap' or 'constant'")
        if not _is_real(silence) or not math.isfinite(silence):
            raise ParameterError(f"silence={silence!r} must be a finite number")
        check_truncation(truncation)
        self.model = model
        self.normalizer = normalizer
        self.silence = float(silence)
        self.pad_mode = pad_mode
        self.truncation = truncation

    def _describe(self) -> str:
        return f"truncation={self.truncation}, pad_mode={self.pad_mode!r}, "

    def _draw(self, batch: int, applied: Tensor, gen: torch.Generator | None) -> VersionParams:
        device = gen.device if gen is not None else torch.device("cpu")
        seeds = torch.randint(0, 2**62, (batch,), generator=gen, device=device).cpu()
        return VersionParams(applied=applied, seeds=seeds)

    def _check_input(self, x: Tensor) -> None:
        height, width = self.model.image_size
        if x.shape[1] != 1 or tuple(x.shape[2:]) != (height, width):
            raise ParameterError(
                f"VersionAugment: windows must be (B, 1, {height}, {width}) for this model, "
                f"got {tuple(x.shape)}"
            )
        _check_values(x.detach(), self.normalizer, "VersionAugment: windows")

    def _apply(self, x: Tensor, params: VersionParams) -> Tensor:
        chosen = params.applied.nonzero().reshape(-1)  # never empty: apply() skips that
        src = x[chosen.to(x.device), 0].detach().float().cpu()  # [k, H, W]
        src = center_crop_or_pad(
            src, self.model.config.source_width, pad_mode=self.pad_mode, pad_value=self.silence
        )  # W < source_width: tiled or padded at the end
        out = x.clone()
        seed = int(derive_seed(*params.seeds[chosen].tolist()))
        versions = _versions(
            self.model, self.normalizer, src, seed, "features", self.truncation, self.silence
        )
        out[chosen.to(x.device)] = versions.to(x.device, x.dtype)
        return out


# ----------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class VersionCheck:
    """The two collapse checks of a version generator, measured with a CSI model.

    Distances are cosine distances between CSI embeddings of ``W``-frame windows and the
    embedding of a reference's full track, averaged over references. Retrieval ranks the
    real full tracks other than the reference by distance to a query window; relevant are
    the other recordings of the reference's work.

    Attributes
    ----------
    n_references, n_samples : int
        References (recordings of works with two or more recordings) and samples drawn.
    distance_copy : float
        Window of the reference itself <-> the reference: what copying scores.
    distance_version : float
        Window of another real version of the work <-> the reference.
    distance_synthetic : float
        Synthetic version <-> its reference. Copying: close to ``distance_copy``; a good
        version generator: about ``distance_version``.
    distance_other_work : float
        Window of a recording of another work <-> the reference: what a song-independent
        output scores.
    distance_between_samples : float
        Between two synthetic versions of the same reference (diversity; 0 = one output).
    map_synthetic, top1_synthetic : float
        MAP and top-1 hit rate of synthetic versions as queries.
    map_real, top1_real : float
        The same for a real window of the reference itself as query (what a real recording
        of the work retrieves: the level to reach).
    map_chance : float
        Expected MAP of a random ranking (about the share of relevant items), what a
        song-independent average scores.
    """

    n_references: int
    n_samples: int
    distance_copy: float
    distance_version: float
    distance_synthetic: float
    distance_other_work: float
    distance_between_samples: float
    map_synthetic: float
    top1_synthetic: float
    map_real: float
    top1_real: float
    map_chance: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return (
            f"distance to reference: copy {self.distance_copy:.3f}, real version "
            f"{self.distance_version:.3f}, synthetic {self.distance_synthetic:.3f}, other work "
            f"{self.distance_other_work:.3f}; between samples {self.distance_between_samples:.3f}"
            f"\nretrieval of the reference's work: synthetic MAP {self.map_synthetic:.3f} "
            f"(top-1 {self.top1_synthetic:.3f}), real window MAP {self.map_real:.3f} "
            f"(top-1 {self.top1_real:.3f}), chance {self.map_chance:.3f} "
            f"({self.n_references} references, {self.n_samples} samples)"
        )


def check_versions(
    sample_like: Callable[..., Tensor],
    data: CQTDataset,
    model: Any,
    *,
    n: int = 4,
    seed: int = 0,
) -> VersionCheck:
    """Measure whether a version generator copies its reference or ignores it.

    Parameters
    ----------
    sample_like : callable
        ``sample_like(features [n_bins, n_frames], n, seed=int) -> Tensor [n, 1, n_bins, W]``
        in the feature format, e.g. ``augmenter.sample_like``.
    data : CQTDataset
        Real recordings (feature format, no transform), e.g. held-out works the generator
        never saw; recordings of works with two or more recordings are the references, all
        recordings form the retrieval collection.
    model : CSINet
        A CSI model trained on the feature format (e.g. trained with classic augmentation).
    n : int
        Synthetic versions per reference.
    seed : int
        Seeds the samples and the real windows.

    Returns
    -------
    VersionCheck

    Raises
    ------
    DatasetError
        Fewer than two works with two or more recordings.
    """
    from covergan.csi import embed_dataset

    counts = data.class_counts()
    refs = [i for i, s in enumerate(data.song_ids) if counts[s] >= 2]
    if len({data.song_ids[i] for i in refs}) < 2:
        raise DatasetError("check_versions needs at least two works with two or more recordings")
    plain = data.windows(None, transform=None)
    tracks = embed_dataset(model, plain).numpy()  # [N, D], unit norm
    songs = np.asarray([str(s) for s in data.song_ids])
    rng = np.random.default_rng([seed, 99])
    synth, width = [], 0
    copy_w: list[np.ndarray] = []
    version_w: list[np.ndarray] = []
    other_w: list[np.ndarray] = []
    for k, i in enumerate(refs):
        x = sample_like(data.features[i], n, seed=seed * 100003 + k)
        synth.append(x)
        width = x.shape[-1]
    for i in refs:
        same = [j for j in range(len(data)) if songs[j] == songs[i] and j != i]
        diff = [j for j in range(len(data)) if songs[j] != songs[i]]
        for pool, dest in (([i], copy_w), (same, version_w), (diff, other_w)):
            j = int(rng.choice(pool))
            dest.append(random_crop(data.features[j], width, rng=rng, pad_value=data.silence_value))

    def embed(xs: Tensor) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return cast(np.ndarray, model.embed(xs).numpy())

    e_synth = embed(torch.cat(synth)).reshape(len(refs), n, -1)
    e_copy, e_version, e_other = (
        embed(torch.from_numpy(np.stack(w))[:, None].float()) for w in (copy_w, version_w, other_w)
    )
    e_ref = tracks[refs]

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, 1.0 - (a * b).sum(-1))

    between = dist(e_synth[:, :1], e_synth[:, 1:]).mean() if n > 1 else float("nan")
    ap_s, hit_s, ap_v, hit_v, chance = [], [], [], [], []
    for k, i in enumerate(refs):
        keep = np.arange(len(data)) != i
        relevant = songs[keep] == songs[i]
        chance.append(relevant.mean())
        for q in e_synth[k]:
            ap, hit = _average_precision(dist(q[None], tracks[keep]), relevant)
            ap_s.append(ap)
            hit_s.append(hit)
        ap, hit = _average_precision(dist(e_copy[k][None], tracks[keep]), relevant)
        ap_v.append(ap)
        hit_v.append(hit)
    return VersionCheck(
        n_references=len(refs),
        n_samples=len(refs) * n,
        distance_copy=float(dist(e_copy, e_ref).mean()),
        distance_version=float(dist(e_version, e_ref).mean()),
        distance_synthetic=float(dist(e_synth, e_ref[:, None]).mean()),
        distance_other_work=float(dist(e_other, e_ref).mean()),
        distance_between_samples=float(between),
        map_synthetic=float(np.mean(ap_s)),
        top1_synthetic=float(np.mean(hit_s)),
        map_real=float(np.mean(ap_v)),
        top1_real=float(np.mean(hit_v)),
        map_chance=float(np.mean(chance)),
    )


def _average_precision(distances: np.ndarray, relevant: np.ndarray) -> tuple[float, float]:
    """AP and top-1 hit of one ranking (ascending distance, ties broken pessimistically)."""
    order = np.lexsort((relevant.astype(int), distances))  # relevant items last among ties
    rel = relevant[order]
    hits = np.cumsum(rel)
    ranks = np.flatnonzero(rel) + 1
    ap = float((hits[rel] / ranks).mean()) if len(ranks) else 0.0
    return ap, float(rel[0])
