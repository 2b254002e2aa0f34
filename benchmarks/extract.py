"""Extraction throughput: covergan's extract_many against a plain librosa loop.

Prints seconds of audio processed per wall-clock second for

* ``baseline``: a plain loop of ``soundfile.read`` + ``librosa.cqt`` + 20x mean pooling
  + max normalisation, the recipe CSI repositories use,
* ``covergan n_jobs=1`` and ``n_jobs=2`` with no cache (cold),
* ``covergan cached``: the same call again over a warm cache,

and the ratios the project tracks (2 jobs vs baseline >= 1.7x, cached vs cold >= 50x).
All runs happen in this process, on the same files, after one warm-up of librosa's
numba code and of the worker pool, so the ratios compare like with like.

Usage::

    python benchmarks/extract.py                  # toy covers written to a temp folder
    python benchmarks/extract.py --data DIR       # any folder of audio files
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from covergan.cqt import CQTConfig, CQTExtractor
from covergan.data import AUDIO_SUFFIXES
from covergan.datasets import toy_covers


def plain_loop(paths: list[Path], cfg: CQTConfig) -> list[np.ndarray]:
    out = []
    for p in paths:
        y, sr = sf.read(p, dtype="float32")
        if y.ndim == 2:
            y = y.mean(axis=1)
        if sr != cfg.sr:
            y = librosa.resample(y, orig_sr=sr, target_sr=cfg.sr)
        c = np.abs(
            librosa.cqt(
                y,
                sr=cfg.sr,
                hop_length=cfg.hop_length,
                fmin=cfg.fmin,
                n_bins=cfg.n_bins,
                bins_per_octave=cfg.bins_per_octave,
            )
        )
        n = c.shape[1] // cfg.pool
        c = c[:, : n * cfg.pool].reshape(c.shape[0], n, cfg.pool).mean(axis=2)
        out.append(c / max(float(c.max()), 1e-12))
    return out


def timed(fn, *args, repeats: int = 1, **kwargs):  # type: ignore[no-untyped-def]
    best = float("inf")
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="folder of audio files (searched recursively)")
    parser.add_argument("--songs", type=int, default=12, help="toy songs when --data is not given")
    parser.add_argument("--versions", type=int, default=4, help="toy versions per song")
    parser.add_argument("--duration", type=float, default=30.0, help="toy recording length (s)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="covergan-bench-"))
    try:
        if args.data:
            paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            toy = toy_covers(args.songs, args.versions, seed=0, duration=args.duration)
            paths = toy.write(tmp / "audio")
        seconds = sum(sf.info(p).duration for p in paths)
        ext = CQTExtractor()
        cfg = ext.config
        print(
            f"{len(paths)} files, {seconds:.0f} s of audio; "
            f"{platform.processor() or platform.machine()}"
        )

        # warm-up: librosa's numba code here and in the worker pool
        plain_loop(paths[:1], cfg)
        ext.extract_many(paths[:4], n_jobs=2, progress=False)

        t_base, base = timed(plain_loop, paths, cfg)
        t_one, one = timed(ext.extract_many, paths, n_jobs=1, progress=False)
        t_two, two = timed(ext.extract_many, paths, n_jobs=2, progress=False)
        cache = tmp / "cache"
        t_cold, _ = timed(ext.extract_many, paths, n_jobs=2, cache_dir=cache, progress=False)
        t_warm, warm = timed(
            ext.extract_many, paths, n_jobs=1, cache_dir=cache, progress=False, repeats=3
        )
        assert warm.n_cached == len(paths)
        for a, b, c in zip(base, one.features, two.features, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
            np.testing.assert_array_equal(b, c)

        rows = [
            ("baseline (plain librosa loop)", t_base),
            ("covergan n_jobs=1, no cache", t_one),
            ("covergan n_jobs=2, no cache", t_two),
            ("covergan n_jobs=2, cold cache", t_cold),
            ("covergan cached re-run", t_warm),
        ]
        print(f"\n{'run':34s} {'wall s':>8s} {'audio s / s':>12s}")
        for name, t in rows:
            print(f"{name:34s} {t:8.2f} {seconds / t:12.0f}")
        print("\nratios")
        print(f"  n_jobs=1 vs baseline      {t_base / t_one:6.2f}x")
        print(f"  n_jobs=2 vs baseline      {t_base / t_two:6.2f}x   (target >= 1.7x)")
        print(f"  n_jobs=2 vs n_jobs=1      {t_one / t_two:6.2f}x")
        print(f"  cached vs cold (2 jobs)   {t_cold / t_warm:6.1f}x   (target >= 50x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
