"""Cost of ``VersionAugment`` (the version model as a training-time transform).

Times, in one process on the same batches, the classic CSI augmentation
(``covergan.augment.classic.csi_augment``: key roll, tempo change, time mask), ``VersionAugment`` at
its default ``p = VERSION_AUGMENT_P`` (0.2), ``p = 0.5`` and ``p = 1``, and one training
step of the reference CSI model (``CSINet``, default channels), all on
``[32, 1, 84, 100]`` windows, and prints milliseconds per batch and the ratios to the
classic augmentation and to the CSI step.
The version model is untrained (its cost does not depend on its weights); the features are
random non-negative CQT-like arrays.

Usage::

    python benchmarks/version_augment.py                 # one torch thread
    python benchmarks/version_augment.py --threads 2 --repeats 50
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from covergan.augment.classic import csi_augment
from covergan.cqt import CQTNormalizer
from covergan.csi import CSINet
from covergan.versions import VERSION_AUGMENT_P, VersionAugment, VersionConfig, VersionGAN

N_BINS, WINDOW, BATCH = 84, 100, 32


def per_call_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall milliseconds of ``fn()`` over ``repeats`` calls (after two warm-ups)."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    tracks = [rng.random((N_BINS, 400), dtype=np.float32) ** 4 for _ in range(8)]
    normalizer = CQTNormalizer().fit(tracks)
    model = VersionGAN(VersionConfig(image_size=(N_BINS, WINDOW)), device="cpu", seed=0)
    x = torch.from_numpy(np.stack([t[:, :WINDOW] for t in tracks * 4]))[:, None]
    labels = torch.arange(BATCH) % 8

    classic = csi_augment(seed=0)
    versions = {
        p: VersionAugment(model, normalizer, p=p, seed=0) for p in (VERSION_AUGMENT_P, 0.5, 1.0)
    }
    net = CSINet(n_classes=8, n_bins=N_BINS, channels=(24, 48, 96, 192), seed=0)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)

    def csi_step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), labels)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()

    rows = {"classic (roll, tempo, mask)": per_call_ms(lambda: classic(x), args.repeats)}
    for p, transform in versions.items():
        rows[f"VersionAugment p={p:g}"] = per_call_ms(partial(transform, x), args.repeats)
    rows["CSI training step"] = per_call_ms(csi_step, args.repeats)
    base, step = rows["classic (roll, tempo, mask)"], rows["CSI training step"]
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s), batch {BATCH} x 1 x {N_BINS} x {WINDOW}"
    )
    print("| per batch | ms | x classic | x CSI step |")
    print("|---|---|---|---|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.1f} | {ms / base:.1f} | {ms / step:.2f} |")


if __name__ == "__main__":
    main()
