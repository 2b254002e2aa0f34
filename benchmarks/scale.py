"""How covergan's time and memory grow with the catalogue (issue 20).

For each size it builds (or reuses) a synthetic feature store on disk through the library
(:class:`covergan.store.FeatureStore`: 84 bins, 300-500 frames per recording, 10 recordings per
work), then runs each step in a fresh process and prints its time and that process's peak
resident memory (``ru_maxrss``, which counts the memory-mapped pages it touched):

- ``open``: :meth:`CQTDataset.from_folder` on the store (reads the index only);
- ``normaliser``: :meth:`CQTNormalizer.fit` on the augmenter's bounded draw;
- ``versions`` / ``class GAN``: ``Augmenter(model=...).fit`` for ``--steps`` steps (no
  autoencoder pretraining), steps per second measured between the first and last step;
- ``sample`` (in the ``versions`` process, after its fit): ``Augmenter.sample_many`` of 10
  versions for each of 100 songs (1,000 windows);
- ``report`` / ``report, all songs``: :func:`covergan.report.quality_report` of a version
  model fitted for ``--steps`` steps on the recordings left by holding out one of each work
  (``split_recordings``), its CSI embedding trained for ``--steps`` steps, with the default
  cap of :data:`~covergan.report.MAX_REPORT_SONGS` songs or with ``max_songs=None`` (every
  held-out work, the report before the cap; too big for the largest catalogues). Time and
  peak memory of the report alone (the fit before it is not counted in the time).

Steps per second are printed against the smallest size's run of the same step. Every
process imports torch first; its resident memory after the imports is printed as ``import``.

Usage::

    python benchmarks/scale.py --root /tmp/scale --sizes 1500 10000 100000
    python benchmarks/scale.py --root /tmp/scale --sizes 300 1500 --steps 20   # a quick run
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

N_BINS = 84
PER_WORK = 10


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(root: Path, size: int, dtype: str) -> tuple[float, int]:
    """The store of ``size`` recordings at ``root`` (only what is missing is written)."""
    from covergan.cqt import CQTConfig
    from covergan.store import FeatureStore

    store = FeatureStore.create(root, config=CQTConfig(n_bins=N_BINS), dtype=dtype)  # type: ignore[arg-type]
    todo = [k for k in range(size) if f"rec-{k}" not in store]
    t0 = time.perf_counter()
    for k in todo:
        rng = np.random.default_rng(k)
        frames = int(rng.integers(300, 501))
        track = rng.gamma(1.0, 0.05, size=(N_BINS, frames)).astype(np.float32)
        store.add(f"work-{k // PER_WORK}", f"rec-{k}", track)
    return time.perf_counter() - t0, len(todo)


def stage(name: str, root: str, steps: int, queue: Any) -> None:
    """One step in this (fresh) process; puts rows ``(name, seconds, rate, import MB, peak
    MB)`` (``versions`` also samples from the model it fitted)."""
    import torch

    from covergan.augmenter import NORMALIZER_TRACKS, Augmenter
    from covergan.cqt import CQTNormalizer
    from covergan.data import CQTDataset

    torch.manual_seed(0)
    base = peak_mb()
    t0 = time.perf_counter()
    data = CQTDataset.from_folder(root)
    seconds, rate = time.perf_counter() - t0, float("nan")
    if name == "normaliser":
        t0 = time.perf_counter()
        CQTNormalizer().fit(data, max_tracks=NORMALIZER_TRACKS, seed=0)
        seconds = time.perf_counter() - t0
    elif name.startswith("report"):
        seconds = report(data, steps, all_songs=name.endswith("all songs"))
    elif name in ("versions", "class GAN"):
        clock = _StepClock()
        model = "gan" if name == "class GAN" else "versions"
        aug = Augmenter(model=model, steps=steps, pretrain_steps=0, seed=0, progress=False)
        t0 = time.perf_counter()
        aug.fit(data, callbacks=[clock])
        seconds, rate = time.perf_counter() - t0, clock.rate()
        if name == "versions":
            queue.put((name, seconds, rate, base, peak_mb()))
            name = "sample"
            songs = list(data.index.ids)[:: max(1, data.n_songs // 100)][:100]
            t0 = time.perf_counter()
            out = aug.sample_many(dict.fromkeys(songs, 10), seed=0)
            seconds = time.perf_counter() - t0
            rate = sum(len(x) for x in out.values()) / seconds
    queue.put((name, seconds, rate, base, peak_mb()))
    queue.put(None)


def report(data: Any, steps: int, *, all_songs: bool) -> float:
    """Seconds of ``quality_report`` after fitting a version model on a held-out split."""
    import tempfile

    from covergan.augmenter import Augmenter
    from covergan.data import split_recordings
    from covergan.report import MAX_REPORT_SONGS, quality_report

    train, heldout = split_recordings(data, holdout=1, min_recordings=3, seed=0)
    aug = Augmenter(steps=steps, seed=0, progress=False).fit(train)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        quality_report(
            aug,
            train,
            heldout,
            out,
            embedding_steps=steps,
            max_songs=None if all_songs else MAX_REPORT_SONGS,
        )
        return time.perf_counter() - t0


class _StepClock:
    """Times steps 2..last (the first carries one-off set-up)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_end(self, gan: Any, step: int, logs: dict[str, float]) -> None:
        self.times.append(time.perf_counter())

    def rate(self) -> float:
        if len(self.times) < 2:
            return float("nan")
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def run_stage(name: str, root: Path, steps: int) -> list[tuple[str, float, float, float, float]]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=stage, args=(name, str(root), steps, queue))
    proc.start()
    rows = list(iter(queue.get, None))
    proc.join()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("scale-bench"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1500, 10000])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=("open", "normaliser", "versions", "class GAN", "report", "report, all songs"),
        default=["open", "normaliser", "versions", "class GAN", "report"],
        help="steps to run (default: all)",
    )
    args = parser.parse_args()
    import torch

    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}; storage {args.dtype}; {args.steps} steps per model"
    )
    first: dict[str, float] = {}
    header = f"{'recordings':>10} {'step':<11} {'seconds':>8} {'per s':>9} {'vs first':>8} "
    print(header + f"{'import MB':>9} {'peak MB':>8}")
    for size in args.sizes:
        root = args.root / f"n{size}"
        seconds, written = build(root, size, args.dtype)
        note = f"{written} written in {seconds:.1f} s" if written else "reused"
        disk = sum(p.stat().st_size for p in root.rglob("*.npy")) / 2**30
        print(f"{size:>10} store       {note}; {disk:.2f} GiB on disk")
        for stage_name in args.stages:
            for name, sec, rate, base, peak in run_stage(stage_name, root, args.steps):
                first.setdefault(name, rate)
                ratio = rate / first[name] if np.isfinite(rate) else float("nan")
                print(
                    f"{size:>10} {name:<11} {sec:>8.2f} {rate:>9.2f} {ratio:>8.2f} {base:>9.0f} "
                    f"{peak:>8.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
