"""Networks of the reference-conditioned version generator (:mod:`covergan.versions`).

Generator (:class:`VersionGenerator`): a content encoder and a style-modulated decoder
    ``ref [B, 1, H, W]`` (a reference window already transposed and tempo-changed by
    :func:`version_transform`) -> ``n_stages`` x ``Conv(4, stride 2)`` + LeakyReLU(0.2): a
    spatial *content* map at ``1 / 2**n_stages`` resolution -> ``n_blocks`` residual blocks
    whose normalisation is adaptive instance norm driven by the *style* latent ``z`` (AdaIN,
    Huang & Belongie 2017; MUNIT) -> ``n_stages - 1`` x ``ConvTranspose(4, stride 2)`` + AdaIN
    + ReLU -> a sub-pixel output layer (``Conv3x3`` to 4 channels, pixel shuffle x2) -> tanh.
    As in the class GAN's generator, no multi-channel tensor exists at full resolution (on a
    CPU those layers are memory-bound and dominate the cost).
    Instance normalisation removes the reference's per-channel statistics (its timbre,
    level and texture) from the content map and the style latent sets new ones, so a
    sample keeps the reference's pitch-time layout (melody, harmony, form) and takes a new
    sound from ``z``: the network cannot pass the reference's timbre through unchanged.
    Any ``(H, W)``: the input is padded with silence to a multiple of ``2**n_stages`` and the
    output cropped back.

Discriminator (:class:`PairDiscriminator`): judges a ``(reference, candidate)`` pair.
    One spectral-norm convolutional trunk (as in
    :class:`~covergan.models.dcgan.ProjectionDiscriminator`) embeds both. The candidate is
    sum-pooled to ``h``; the reference is max-pooled over frequency and mean-pooled over time
    (as CSI models do, so its embedding does not depend on the reference's key or tempo) and
    projected to ``e``. The logit is ``linear(h) + <e, h>``: a projection discriminator whose
    "class embedding" is the reference's embedding.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from covergan._checks import check_choice
from covergan.augment.differentiable import FLOOR, apply_freq_shift
from covergan.errors import ParameterError
from covergan.models.base import auto_stages
from covergan.models.dcgan import conv_trunk

__all__ = [
    "AdaIN",
    "PairDiscriminator",
    "VersionGenerator",
    "chroma_correlation",
    "pitch_class_profile",
    "version_transform",
    "warp_silence",
]


KeyFill = Literal["octave", "keep", "silence"]
TempoInterpolation = Literal["nearest", "linear"]


def version_transform(
    ref: Tensor,
    semitones: Tensor,
    rates: Tensor,
    *,
    width: int,
    bins_per_semitone: int = 1,
    fill: KeyFill = "octave",
    interpolation: TempoInterpolation = "nearest",
) -> Tensor:
    """Transpose and tempo-change reference windows (the explicit part of a version).

    Frame ``t`` of the output reads source position ``t * rates[b]`` (clamped at the last
    source frame), so ``rates > 1`` plays the reference faster and consumes
    ``rates * width`` source frames. ``interpolation="nearest"`` takes the source frame
    nearest that position (a slower version repeats some frames, a faster one skips some):
    every output frame is a real frame, so the frame-to-frame change of the reference is
    kept. ``"linear"`` blends the two frames around it, which averages that change away (in
    the lowest bins of both built-in corpora about half the tempo-changed windows fell
    below every real window's frame-to-frame change; ``docs/versions.md``); models saved
    before the nearest read existed use it. Then the window is shifted by
    ``semitones[b] * bins_per_semitone`` bins. The bins a shift vacates are filled with the
    same pitch class an octave away (``fill="octave"``: moved up, the lowest bins repeat the
    bins an octave above them; moved down, the highest repeat those an octave below), so
    every bin keeps real texture and the window stays in one key; ``fill="keep"`` leaves the
    reference's own, untransposed content in them, so each of those bins keeps the texture
    of its own register too (an edge of up to ``max_semitones`` bins in the old key);
    ``fill="silence"`` fills them with ``-1`` (a flat band that no real window has; models
    saved before the octave fill existed use it). A window of fewer than 12 semitones of
    bins takes silence in place of the octave fill.

    Parameters
    ----------
    ref : torch.Tensor [shape=(B, 1, H, W_src)]
        Reference windows in model space; ``W_src >= ceil(width * max(rates))`` avoids
        reading past the end (the last frame is repeated otherwise).
    semitones : torch.LongTensor [shape=(B,)]
        Key change per sample (positive = up).
    rates : torch.Tensor [shape=(B,)]
        Tempo factor per sample (> 0).
    width : int
        Output frames ``W``.
    bins_per_semitone : int
        Frequency bins per semitone.
    fill : {"octave", "keep", "silence"}
        What fills the bins a key change vacates (see above).
    interpolation : {"nearest", "linear"}
        How a tempo change reads between source frames (see above).

    Returns
    -------
    torch.Tensor [shape=(B, 1, H, width)]
    """
    check_choice("fill", fill, KeyFill)
    if ref.dim() != 4 or ref.shape[1] != 1:
        raise ParameterError(f"ref must be [B, 1, H, W_src], got {tuple(ref.shape)}")
    b, _, h, w_src = ref.shape
    i0, i1, frac_ = _tempo_positions(rates.to(ref.device), width, w_src, interpolation)
    frac = frac_.view(b, 1, 1, width).to(ref.dtype)
    idx0 = i0.view(b, 1, 1, width).expand(b, 1, h, width)
    idx1 = i1.view(b, 1, 1, width).expand(b, 1, h, width)
    out = torch.gather(ref, 3, idx0) * (1 - frac) + torch.gather(ref, 3, idx1) * frac
    shift = semitones.to(ref.device).long() * int(bins_per_semitone)
    octave = 12 * int(bins_per_semitone)
    if fill == "keep":
        return _shift_keeping_edge(out, shift)
    if fill == "silence" or h < octave:
        return apply_freq_shift(out, shift)
    return _octave_shift(out, shift, octave)


def warp_silence(
    silent: Tensor, rates: Tensor, width: int, interpolation: TempoInterpolation = "nearest"
) -> Tensor:
    """Which output frames of :func:`version_transform` read only silent source frames.

    Frame ``t`` of a version reads the source frame nearest ``t * rate`` (or, with linear
    interpolation, ``floor(t * rate)`` and the one after it); it is silent when every frame
    it reads with a non-zero weight is. A key change moves bins, not frames, so it does not
    enter.

    Parameters
    ----------
    silent : torch.Tensor [shape=(B, W_src), dtype=bool]
        Silent frames of the reference windows.
    rates : torch.Tensor [shape=(B,)]
        Tempo factor per sample, as given to :func:`version_transform`.
    width : int
        Output frames ``W``.
    interpolation : {"nearest", "linear"}
        As given to :func:`version_transform`.

    Returns
    -------
    torch.Tensor [shape=(B, width), dtype=bool]
    """
    if silent.dim() != 2 or silent.dtype != torch.bool:
        raise ParameterError(f"silent must be a bool tensor [B, W_src], got {tuple(silent.shape)}")
    i0, i1, frac = _tempo_positions(rates.to(silent.device), width, silent.shape[1], interpolation)
    first = torch.gather(silent, 1, i0)
    second = torch.gather(silent, 1, i1)
    return first & (second | (frac == 0))


def _tempo_positions(
    rates: Tensor, width: int, w_src: int, interpolation: TempoInterpolation
) -> tuple[Tensor, Tensor, Tensor]:
    """Source frames ``i0``, ``i1`` [B, width] (long) and the weight ``frac`` [B, width] of
    ``i1`` that output frame ``t`` reads at tempo factor ``rates[b]`` (clamped at the last
    source frame)."""
    check_choice("interpolation", interpolation, TempoInterpolation)
    steps = torch.arange(width, device=rates.device, dtype=torch.float32)[None]
    pos = (steps * rates.float().view(-1, 1)).clamp(max=w_src - 1)
    if interpolation == "nearest":
        pos = torch.floor(pos + 0.5).clamp(max=w_src - 1)
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=w_src - 1)
    return i0, i1, pos - i0.float()


def _octave_shift(x: Tensor, shift: Tensor, octave: int) -> Tensor:
    """``y[..., f, :] = x[..., f - shift[b], :]``, a source bin outside ``[0, H)`` moved by
    whole octaves back inside (needs ``H >= octave``)."""
    h = x.shape[2]
    src = torch.arange(h, device=x.device)[None, :] - shift.view(-1, 1)  # [B, H]
    src = torch.where(src < 0, src % octave, src)
    top = h - octave  # bins [top, h) hold the highest octave
    src = torch.where(src >= h, top + (src - top) % octave, src)
    return _gather_bins(x, src)


def _shift_keeping_edge(x: Tensor, shift: Tensor) -> Tensor:
    """``y[..., f, :] = x[..., f - shift[b], :]``, and ``x[..., f, :]`` where ``f - shift[b]``
    falls outside ``[0, H)``."""
    bins = torch.arange(x.shape[2], device=x.device)[None, :]
    src = bins - shift.view(-1, 1)  # [B, H]
    return _gather_bins(x, torch.where((src < 0) | (src >= x.shape[2]), bins, src))


def _gather_bins(x: Tensor, src: Tensor) -> Tensor:
    """``y[b, :, f, :] = x[b, :, src[b, f], :]`` for source bins ``src`` [B, H]."""
    b, c, h, w = x.shape
    return torch.gather(x, 2, src.view(b, 1, h, 1).expand(b, c, h, w))


def pitch_class_profile(x: Tensor, *, bins_per_semitone: int = 1) -> Tensor:
    """Fold model-space CQT windows into 12 pitch classes per frame (a differentiable chroma).

    Bin ``i`` counts towards pitch class ``(i // bins_per_semitone) % 12`` (bin 0 is pitch
    class 0); the bins of a class are summed over octaves. Model space is per-bin
    standardised log magnitude, so the profile measures which pitch classes sound louder
    than usual in a frame, whatever the instrument's spectral envelope.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, 1, H, W)]
        Windows in model space (silence ``-1``).
    bins_per_semitone : int
        Frequency bins per semitone.

    Returns
    -------
    torch.Tensor [shape=(B, 12, W)]
    """
    if x.dim() != 4 or x.shape[1] != 1:
        raise ParameterError(f"x must be [B, 1, H, W], got {tuple(x.shape)}")
    octave = 12 * int(bins_per_semitone)
    b, _, h, w = x.shape
    pad = -h % octave
    if pad:  # silence above the top bin completes the last octave
        x = torch.nn.functional.pad(x, (0, 0, 0, pad), value=FLOOR)
    folded = x.reshape(b, (h + pad) // octave, 12, int(bins_per_semitone), w)
    return folded.sum(dim=(1, 3))


def chroma_correlation(a: Tensor, b: Tensor, *, bins_per_semitone: int = 1) -> Tensor:
    """Frame-by-frame correlation of the pitch-class profiles of two batches of windows.

    For every frame, the Pearson correlation over the 12 pitch classes of
    :func:`pitch_class_profile` of ``a`` and ``b``, averaged over frames: 1 when the two
    windows play the same pitch classes at the same times, whatever their timbre, octave
    placement or level; about 0 for unrelated content. A frame in which either profile is
    flat (silence) counts as 0. The version model's content term
    (``VersionConfig.content_weight``) is ``1 -`` this between a sample and its transposed,
    tempo-changed reference.

    Parameters
    ----------
    a, b : torch.Tensor [shape=(B, 1, H, W)]
        Windows in model space, same shape.
    bins_per_semitone : int
        Frequency bins per semitone.

    Returns
    -------
    torch.Tensor [shape=(B,)]
        Mean per-frame correlation in ``[-1, 1]``.
    """
    if a.shape != b.shape:
        raise ParameterError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    pa = pitch_class_profile(a, bins_per_semitone=bins_per_semitone)
    pb = pitch_class_profile(b, bins_per_semitone=bins_per_semitone)
    pa = pa - pa.mean(dim=1, keepdim=True)
    pb = pb - pb.mean(dim=1, keepdim=True)
    num = (pa * pb).sum(dim=1)
    den = torch.sqrt(pa.pow(2).sum(dim=1) * pb.pow(2).sum(dim=1) + 1e-6)
    corr: Tensor = (num / den).mean(dim=1)
    return corr


class AdaIN(nn.Module):
    """Adaptive instance norm: ``IN(x) * (1 + W_g z) + W_b z`` (``W`` zero-initialised).

    Parameters
    ----------
    num_features : int
        Channels ``C``.
    z_dim : int
        Style latent length.
    """

    def __init__(self, num_features: int, z_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.style = nn.Linear(z_dim, 2 * num_features)
        nn.init.zeros_(self.style.weight)
        nn.init.zeros_(self.style.bias)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """``x : [B, C, H, W]``, ``z : [B, z_dim]`` -> ``[B, C, H, W]``."""
        gain, bias = self.style(z).chunk(2, dim=1)
        out: Tensor = torch.addcmul(
            bias[:, :, None, None], self.norm(x), 1 + gain[:, :, None, None]
        )
        return out


class _ResBlock(nn.Module):
    def __init__(self, channels: int, z_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = AdaIN(channels, z_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = AdaIN(channels, z_dim)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = torch.relu(self.norm1(self.conv1(x), z))
        h = self.norm2(self.conv2(h), z)
        out: Tensor = x + h
        return out


class VersionGenerator(nn.Module):
    """Content encoder + AdaIN style decoder (see the module docstring).

    Parameters
    ----------
    image_size : tuple of int
        ``(H, W)`` of input and output.
    z_dim : int
        Style latent length.
    width : int
        Channels at half resolution; each further stage doubles them (capped at
        ``max_width``).
    max_width : int
        Channel cap.
    n_stages : int
        Stride-2 stages of encoder and decoder.
    n_blocks : int
        Residual AdaIN blocks at the coarsest scale.
    refine : int
        Channels of the full-resolution output stage: the sub-pixel layer gives ``refine``
        maps at full resolution and one 3 x 3 convolution (edge-replicating padding) mixes
        them into the output, so no output cell comes from a single 2 x 2 sub-pixel block
        (whose period-2 pattern showed as a comb across the lowest bins). It reads the
        decoder only: given the reference too, the model learnt to copy it (the suite's
        memorisation check failed). 0: the sub-pixel layer is the output (the layout of
        models saved before this stage existed).
    """

    def __init__(
        self,
        *,
        image_size: tuple[int, int],
        z_dim: int = 64,
        width: int = 16,
        max_width: int = 128,
        n_stages: int = 2,
        n_blocks: int = 2,
        refine: int = 8,
    ) -> None:
        super().__init__()
        if n_stages < 1 or n_blocks < 0 or refine < 0:
            raise ParameterError(
                f"n_stages={n_stages} must be >= 1, n_blocks={n_blocks} and refine={refine} >= 0"
            )
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.z_dim = int(z_dim)
        self.n_stages = int(n_stages)
        # channels at 1/2, 1/4, ... resolution; nothing multi-channel exists at full resolution
        chans = [min(max_width, width * 2**k) for k in range(n_stages)]
        self.down = nn.ModuleList(
            nn.Conv2d(1 if k == 0 else chans[k - 1], chans[k], 4, stride=2, padding=1)
            for k in range(n_stages)
        )
        self.blocks = nn.ModuleList(_ResBlock(chans[-1], z_dim) for _ in range(n_blocks))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[k + 1], chans[k], 4, stride=2, padding=1)
            for k in reversed(range(n_stages - 1))
        )
        self.up_norms = nn.ModuleList(AdaIN(chans[k], z_dim) for k in reversed(range(n_stages - 1)))
        # sub-pixel layer: 3 x 3 conv to 4 maps per output channel at half resolution, then
        # pixel shuffle; with ``refine``, a full-resolution conv mixes them
        self.refine = int(refine)
        self.out = nn.Conv2d(chans[0], 4 * max(1, self.refine), 3, padding=1)
        self.final = (
            nn.Conv2d(self.refine, 1, 3, padding=1, padding_mode="replicate")
            if self.refine
            else None
        )

    def forward(self, ref: Tensor, z: Tensor) -> Tensor:
        """Generate versions.

        Parameters
        ----------
        ref : torch.Tensor [shape=(B, 1, H, W)]
            Transformed reference windows in model space.
        z : torch.Tensor [shape=(B, z_dim)]
            Style latents.

        Returns
        -------
        torch.Tensor [shape=(B, 1, H, W)]
            Values in [-1, 1].
        """
        height, width = self.image_size
        if ref.dim() != 4 or tuple(ref.shape[1:]) != (1, height, width):
            raise ParameterError(
                f"the version generator takes [B, 1, {height}, {width}], got {tuple(ref.shape)}"
            )
        m = 2**self.n_stages
        pad_h, pad_w = (-height) % m, (-width) % m
        x = ref
        if pad_h or pad_w:
            x = nn.functional.pad(ref, (0, pad_w, 0, pad_h), value=FLOOR)
        h = x
        for down in self.down:
            h = nn.functional.leaky_relu(down(h), 0.2)
        for block in self.blocks:
            h = block(h, z)
        for up, norm in zip(self.up, self.up_norms, strict=True):
            h = torch.relu(norm(up(h), z))
        h = nn.functional.pixel_shuffle(self.out(h), 2)
        if self.final is not None:
            h = self.final(nn.functional.leaky_relu(h, 0.2))
        out = torch.tanh(h)
        return out[:, :, :height, :width]


class PairDiscriminator(nn.Module):
    """Spectral-norm discriminator of ``(reference, candidate)`` pairs (module docstring).

    Parameters
    ----------
    image_size : tuple of int
        ``(H, W)`` of the candidates (references may have any width).
    width : int
        Channels of the first stage; each stage doubles them.
    max_width : int
        Channel cap.
    n_stages : int, optional
        Stride-2 convolutions; default :func:`~covergan.models.base.auto_stages`.
    """

    def __init__(
        self,
        *,
        image_size: tuple[int, int],
        width: int = 16,
        max_width: int = 128,
        n_stages: int | None = None,
    ) -> None:
        super().__init__()
        n = auto_stages(*image_size) if n_stages is None else int(n_stages)
        if n < 1:
            raise ParameterError(f"n_stages={n_stages!r} must be >= 1")
        self.features, c_in = conv_trunk(width, max_width, n)
        self.linear = spectral_norm(nn.Linear(c_in, 1))
        self.ref_proj = nn.Linear(c_in, c_in)
        self.channels = c_in
        # the sum-pooled candidate feature grows with the number of cells; scale the
        # projection so that <e, h> starts at the size of linear(h)
        self._cells = max(1.0, math.prod(image_size) / 4**n)

    def embed_reference(self, ref: Tensor) -> Tensor:
        """``ref : [B, 1, H, W_ref]`` -> key- and tempo-robust embedding ``[B, C]``."""
        f = self.features(ref)
        out: Tensor = self.ref_proj(f.amax(dim=2).mean(dim=2)) / math.sqrt(self._cells)
        return out

    def forward(self, ref: Tensor | None, x: Tensor, ref_embedding: Tensor | None = None) -> Tensor:
        """Score candidates given their references.

        Parameters
        ----------
        ref : torch.Tensor [shape=(B, 1, H, W_ref)] or None
            Reference windows (ignored when ``ref_embedding`` is given).
        x : torch.Tensor [shape=(B, 1, H, W)]
            Candidates.
        ref_embedding : torch.Tensor [shape=(B, C)], optional
            :meth:`embed_reference` output, to reuse it across several candidate batches.

        Returns
        -------
        torch.Tensor [shape=(B,)]
            Logits (higher = a real pair of versions).
        """
        if ref_embedding is None:
            if ref is None:
                raise ParameterError("give ref or ref_embedding")
            ref_embedding = self.embed_reference(ref)
        h = self.features(x).sum(dim=(2, 3))
        out: Tensor = self.linear(h).squeeze(1) + (ref_embedding * h).sum(dim=1)
        return out
