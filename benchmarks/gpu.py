"""Training and generation speed of both models on one CUDA GPU (issue 20), in about 5 minutes.

For the version model (:class:`covergan.versions.VersionGAN`) and the class GAN
(:class:`covergan.ConditionalDCGAN`), at batch 64 and 256, it prints training samples per
second with float32 against bfloat16 autocast and with ``channels_last`` off and on, then
``torch.compile`` off and on for the fastest of those, and generation CQTs per second. Every
setting is applied from outside the library, the same way for both models (an autocast
context around ``fit``/``generate``, ``module.to(memory_format=...)``, ``module.compile()``),
and the class GAN's own ``amp``/``channels_last`` options are off, so the baseline is plain
float32 for both. Data: synthetic 84 x 400 recordings (60 works of 4) in memory, crops drawn
by the library on the CPU as in a real fit.

Without CUDA it says so and exits 0 (the test suite skips it). Usage::

    python benchmarks/gpu.py                 # about 5 minutes on one GPU
    python benchmarks/gpu.py --steps 5       # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from covergan.cqt import CQTNormalizer
from covergan.data import CQTDataset
from covergan.gan import ConditionalDCGAN, GANConfig
from covergan.versions import VersionConfig, VersionGAN

WINDOW = 200


def corpus() -> CQTDataset:
    rng = np.random.default_rng(0)
    tracks = [rng.gamma(1.0, 0.05, size=(84, 400)).astype(np.float32) for _ in range(240)]
    return CQTDataset(tracks, [f"work-{k // 4}" for k in range(240)])


@contextlib.contextmanager
def precision(bf16: bool) -> Iterator[None]:
    if bf16:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def prepare(modules: list[torch.nn.Module], channels_last: bool, compiled: bool) -> None:
    for m in modules:
        if channels_last:
            m.to(memory_format=torch.channels_last)
        if compiled:
            m.compile()


def timed(run: Callable[[int], Any], steps: int, per_step: int) -> float:
    """Items per second of ``run(steps)`` after a two-step warm-up."""
    run(2)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    run(steps)
    torch.cuda.synchronize()
    return steps * per_step / (time.perf_counter() - t0)


def version_model(batch: int, bf16: bool, channels_last: bool, compiled: bool, steps: int) -> str:
    data = corpus()
    norm = CQTNormalizer().fit(data)
    config = VersionConfig(image_size=(84, WINDOW), batch_size=batch)
    model = VersionGAN(config, device="cuda", seed=0)
    prepare([model.generator, model.discriminator], channels_last, compiled)
    view = data.windows(WINDOW, transform=norm)

    def train(n: int) -> None:
        with precision(bf16):
            model.fit(view, steps=n, progress=False)

    rate = timed(train, steps, batch)
    refs = torch.rand(1024, 1, 84, model.config.source_width) * 2 - 1
    with precision(bf16):
        gen = timed(lambda n: model.generate(refs, generator=0, batch_size=256), 1, len(refs))
    return f"{rate:>10.0f} {gen:>10.0f}"


def class_gan(batch: int, bf16: bool, channels_last: bool, compiled: bool, steps: int) -> str:
    data = corpus()
    norm = CQTNormalizer().fit(data)
    config = GANConfig(image_size=(84, WINDOW), batch_size=batch, amp=False, channels_last=False)
    gan = ConditionalDCGAN(data.n_songs, config=config, device="cuda", seed=0)
    prepare([gan.generator, gan.discriminator], channels_last, compiled)
    view = data.windows(WINDOW, transform=norm)

    def train(n: int) -> None:
        with precision(bf16):
            gan.fit(view, steps=n, progress=False)

    rate = timed(train, steps, batch * config.d_steps)
    labels = torch.arange(1024) % data.n_songs
    with precision(bf16):
        gen = timed(lambda n: gan.generate(labels, generator=0, batch_size=256), 1, len(labels))
    return f"{rate:>10.0f} {gen:>10.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        sys.exit(0)
    torch.backends.cudnn.benchmark = True
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {platform.machine()} host")
    print(f"{'model':<10} {'batch':>5} {'bf16':>5} {'ch_last':>7} {'compile':>7} "
          f"{'train/s':>10} {'gen/s':>10}")  # fmt: skip
    for name, run in (("versions", version_model), ("class GAN", class_gan)):
        best: tuple[float, tuple[int, bool, bool]] = (0.0, (64, False, False))
        for batch in (64, 256):
            for bf16 in (False, True):
                for channels_last in (False, True):
                    line = run(batch, bf16, channels_last, False, args.steps)
                    print(f"{name:<10} {batch:>5} {bf16!s:>5} {channels_last!s:>7} {'off':>7} "
                          f"{line}", flush=True)  # fmt: skip
                    best = max(best, (float(line.split()[0]), (batch, bf16, channels_last)))
        batch, bf16, channels_last = best[1]
        line = run(batch, bf16, channels_last, True, args.steps)
        print(f"{name:<10} {batch:>5} {bf16!s:>5} {channels_last!s:>7} {'on':>7} {line}")


if __name__ == "__main__":
    main()
