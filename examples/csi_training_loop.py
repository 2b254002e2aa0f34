"""A plain PyTorch CSI training loop that gains synthetic minority-song samples.

Everything here except the lines marked ``# covergan`` is an ordinary training loop a CSI team
already has: a dataset of CQT windows labelled by song, a small CNN classifier, a
``DataLoader``, cross-entropy. Those lines fit an :class:`~covergan.Augmenter` on the training
set, add synthetic items for the songs with few recordings, and draw the batches with a
:class:`~covergan.ClassBalancedSampler` that keeps every song's share of the data and swaps
synthetic items into half of the rare songs' draws (``weights="real", ratio=(1, 1)``: adding
them as extra items would rebalance the data, which cost retrieval of unseen songs on the
benchmark's 300-work corpus, see ``docs/benchmarks.md``). Items stay ``(x, label)`` in the
same feature format.

Run it on toy covers (a long-tailed set of synthetic songs, no downloads)::

    python examples/csi_training_loop.py                 # with covergan
    python examples/csi_training_loop.py --no-covergan   # the same loop without it

It prints the accuracy on held-out recordings of the training songs. With the defaults it
takes about 15 s on a 2-core CPU; the toy data and the short version-model fit make it a usage
example, not a benchmark (``covergan compare`` measures the effect on your data).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from covergan import Augmenter, ClassBalancedSampler  # covergan
from covergan.data import split_recordings
from covergan.datasets import toy_covers


class SmallCNN(nn.Module):
    """A user's CQT classifier: ``[B, 1, n_bins, frames] -> logits [B, n_songs]``."""

    def __init__(self, n_songs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(32, n_songs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def main(argv: Sequence[str] | None = None) -> float:
    """Train and evaluate; returns the held-out accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=12, help="toy songs (default: %(default)s)")
    parser.add_argument("--window", type=int, default=16, help="frames per training window")
    parser.add_argument("--epochs", type=int, default=30, help="classifier epochs")
    parser.add_argument("--steps", type=int, default=300, help="Augmenter (version model) steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-covergan", action="store_true", help="the loop without covergan")
    parser.add_argument("--tiny", action="store_true", help="a tiny version model (for tests)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    # the user's data: CQT features of recordings labelled by song, long-tailed
    covers = toy_covers(args.songs, 6, seed=args.seed, long_tail=True, duration=6.0)
    data = covers.to_dataset()
    train, test = split_recordings(data, holdout=1, min_recordings=2, seed=args.seed)
    train = train.windows(args.window, crop="random", seed=args.seed)
    songs = train.index.ids  # class index -> song id
    test_labels = torch.tensor([songs.index(s) for s in test.song_ids])
    test_x = torch.stack([x for x, _ in test.windows(args.window, crop="center")])

    sampler = None
    if not args.no_covergan:
        options = {"steps": args.steps, "window": args.window, "seed": args.seed}
        if args.tiny:  # a small version model for the tests
            options["versions"] = {"g_width": 4, "d_width": 4, "z_dim": 8}
        aug = Augmenter(**options).fit(train)  # covergan
        train = aug.balance(train, target="max", max_ratio=4, return_flag=False)  # covergan
        sampler = ClassBalancedSampler(train, weights="real", ratio=(1, 1))  # covergan

    # the user's training loop; the sampler, when there is one, replaces shuffle=True
    model = SmallCNN(len(songs))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(train, batch_size=16, shuffle=sampler is None, sampler=sampler)
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)  # covergan
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(test_x).argmax(1) == test_labels).float().mean())
    print(f"{len(train)} training items, held-out accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
