"""How much of a discriminator's gradient reaches each frequency bin of its input.

Every stride-2 convolution of the discriminators' trunk (:func:`covergan.models.dcgan.conv_trunk`)
pads its input with zeros, so a cell at the window's edge enters fewer of its outputs than an
inner one, at every stage. This script measures what that does to the gradient the generator
learns from: the mean absolute gradient of the score with respect to each bin of the input,
over random inputs in ``[-1, 1]``, divided by its mean over the inner bins
``[H // 8, H - H // 8)``. It prints the lowest and highest bins for

- the version model's :class:`~covergan.models.reference.PairDiscriminator` and the class
  GAN's :class:`~covergan.models.dcgan.ProjectionDiscriminator` at initialisation (each seed a
  fresh network), the pair discriminator also through the version model's DiffAugment policy
  (which drops the lowest bins of a window it shifts down);
- with ``--augmenter PATH``, the trained pair discriminator of a saved augmenter, on the
  augmenter's own versions of its first 64 songs (model space).

No training; seconds on a CPU (``docs/benchmarks.md``, "Why the edge learns last").

Usage::

    python benchmarks/edge_coverage.py                          # 84 x 116 windows, 6 seeds
    python benchmarks/edge_coverage.py --size 84 200 --seeds 10
    python benchmarks/edge_coverage.py --augmenter demo-out/augmenter.pt
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable

import torch
from torch import Tensor

from covergan import Augmenter
from covergan.augment.differentiable import DiffAugment
from covergan.models.dcgan import ProjectionDiscriminator
from covergan.models.reference import PairDiscriminator
from covergan.versions import VersionConfig

SHOWN = 4  # bins printed at each edge
MAX_SONGS = 64  # songs of a saved augmenter whose versions are scored


def profile(score: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Mean ``|d score.sum() / d x|`` per bin ``[H]`` of ``x`` ``[B, 1, H, W]``."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(x).sum(), x)
    return grad.abs().mean(dim=(0, 1, 3))


def relative(total: Tensor) -> Tensor:
    """``total`` divided by its mean over the inner bins."""
    h = total.shape[0]
    return total / total[h // 8 : h - h // 8].mean()


def show(name: str, shares: Tensor) -> None:
    low = " ".join(f"{v:.2f}" for v in shares[:SHOWN].tolist())
    high = " ".join(f"{v:.2f}" for v in shares[-SHOWN:].tolist())
    print(f"| {name} | {low} | {high} |")


def one_seed(
    size: tuple[int, int], seed: int, batch: int, augment: DiffAugment
) -> dict[str, Tensor]:
    """Per-bin gradients of fresh discriminators initialised from ``seed``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, *size) * 2 - 1
    pair = PairDiscriminator(image_size=size)
    emb = torch.randn(batch, pair.channels)
    klass = ProjectionDiscriminator(n_classes=4, image_size=size)
    labels = torch.randint(0, 4, (batch,))
    for _ in range(3):  # a few power iterations settle the spectral norms
        pair(None, x, emb)
        klass(x, labels)
    return {
        "pair": profile(lambda v: pair(None, v, emb), x),
        "pair, DiffAugment": profile(lambda v: pair(None, augment(v, gen), emb), x),
        "class": profile(lambda v: klass(v, labels), x),
    }


def at_initialisation(size: tuple[int, int], seeds: int, batch: int) -> None:
    """The three rows of fresh discriminators, averaged over ``seeds``."""
    augment = VersionConfig(image_size=size).augmentation()
    runs = [one_seed(size, seed, batch, augment) for seed in range(seeds)]
    for name in runs[0]:
        show(f"{name}, initialised", relative(sum(run[name] for run in runs)))


def trained(path: str, per_song: int) -> None:
    """The row of a saved augmenter's trained pair discriminator, on its own versions."""
    aug = Augmenter.load(path)
    model = aug.versions_
    if model is None:
        raise SystemExit(f"{path} has no version model")
    songs = list(aug.songs_)[:MAX_SONGS]
    samples = aug.sample_many({s: per_song for s in songs}, space="model", seed=0)
    x = torch.cat(list(samples.values())).to(model.device)
    disc = model.discriminator.eval()
    with torch.no_grad():
        emb = disc.embed_reference(x)
    show(f"pair, trained ({path})", relative(profile(lambda v: disc(None, v, emb), x).cpu()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(84, 116), metavar=("H", "W"))
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--augmenter", help="a saved Augmenter with a version model")
    parser.add_argument("--per-song", type=int, default=4, help="versions per song (--augmenter)")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {threads} threads")
    print(f"gradient per bin / inner bins' mean; lowest {SHOWN} and highest {SHOWN} bins")
    print(f"| discriminator | bins 0-{SHOWN - 1} | top {SHOWN} bins |")
    print("|---|---|---|")
    at_initialisation(tuple(args.size), args.seeds, args.batch)
    if args.augmenter:
        trained(args.augmenter, args.per_song)


if __name__ == "__main__":
    main()
