"""Catalogue-scale CQT extraction on a Dask cluster, checked against a local run.

``CQTExtractor`` holds only its ``CQTConfig``, so it pickles in a few hundred bytes and
computes the same features in any process. This example extracts the same files

1. locally, with ``extractor.extract_many(paths)`` (the reference),
2. on Dask through joblib's ``"dask"`` backend (``extract_many`` unchanged: cache,
   failure report and progress bar included),
3. on Dask with ``client.map(extractor.extract_file, paths)``,

and checks that the three give identical features, bit for bit. It starts a
``distributed.LocalCluster`` unless ``--scheduler`` names a running one (whose workers
must then see the audio files and the cache folder at the same paths).

Needs the optional extra: ``pip install "covergan[dask]"``.

Usage::

    python examples/dask_extraction.py                        # toy covers, temp folder
    python examples/dask_extraction.py --chorales --max-works 8
    python examples/dask_extraction.py --data /shared/audio --cache-dir /shared/cqt-cache \\
        --scheduler tcp://scheduler:8786
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from covergan.cqt import CQTExtractor
from covergan.data import AUDIO_SUFFIXES


def toy_paths(root: Path, n_songs: int, versions: int) -> list[Path]:
    """Write seeded toy covers under ``root`` and return their paths."""
    from covergan.datasets import toy_covers

    return toy_covers(n_songs, versions, seed=0, duration=8.0).write(root)


def chorale_paths(max_works: int, n_jobs: int) -> list[Path]:
    """Render (or reuse from the covergan cache) one version of each chorale harmonisation."""
    from covergan.datasets import chorale_works, render_chorales

    works = chorale_works(max_works=max_works, n_jobs=n_jobs)
    return [r.path for r in render_chorales(works, renders=1, seed=0, n_jobs=n_jobs)]


def folder_paths(root: Path) -> list[Path]:
    """Every audio file under ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def identical(a: Sequence[np.ndarray | None], b: Sequence[np.ndarray | None]) -> bool:
    """Same length, each pair equal bit for bit (dtype, shape, bytes) or both ``None``."""

    def same(x: np.ndarray | None, y: np.ndarray | None) -> bool:
        if x is None or y is None:
            return x is None and y is None
        return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()

    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))


def warm_up(extractor: CQTExtractor) -> None:
    """Pay librosa's one-off import and numba compilation (per process)."""
    extractor(np.zeros(extractor.config.sr, dtype=np.float32), extractor.config.sr)


@contextlib.contextmanager
def dask_client(scheduler: str | None, n_workers: int) -> Iterator[Any]:
    """A client of ``scheduler``, or of a new process-based ``LocalCluster``."""
    try:
        dist: Any = importlib.import_module("distributed")
    except ImportError:
        sys.exit('this example needs Dask: pip install "covergan[dask]"')
    if scheduler is not None:
        with dist.Client(scheduler) as client:
            yield client
        return
    with (
        dist.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,  # e.g. "Worker process still alive ..., killing"
        ) as cluster,
        dist.Client(cluster) as client,
    ):
        yield client


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--chorales", action="store_true", help="Bach chorale renders")
    source.add_argument("--data", type=Path, help="a folder of audio files (searched recursively)")
    parser.add_argument("--max-works", type=int, default=8, help="chorale works (--chorales)")
    parser.add_argument("--songs", type=int, default=4, help="toy songs (default data)")
    parser.add_argument("--versions", type=int, default=3, help="versions per toy song")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (shared by all workers)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="covergan-dask-"))
    try:
        if args.chorales:
            paths = chorale_paths(args.max_works, args.workers)
            what = f"{len(paths)} Bach chorale renders"
        elif args.data is not None:
            paths = folder_paths(args.data)
            what = f"{len(paths)} audio files under {args.data}"
        else:
            paths = toy_paths(tmp / "toy", args.songs, args.versions)
            what = f"{len(paths)} toy covers in {tmp / 'toy'}"
        if not paths:
            print("no audio files found", file=sys.stderr)
            return 2
        print(f"data: {what}")

        extractor = CQTExtractor()
        warm_up(extractor)
        t0 = time.perf_counter()
        local = extractor.extract_many(paths, n_jobs=1, progress=False, on_error="skip")
        t_local = time.perf_counter() - t0
        print(f"{'local, 1 process:':28} {t_local:7.2f} s  ({local.report()})")

        t0 = time.perf_counter()
        with dask_client(args.scheduler, args.workers) as client:
            n_workers = len(client.scheduler_info()["workers"])
            client.run(warm_up, extractor)  # one-off costs, kept out of the timings
            t_up = time.perf_counter() - t0
            print(f"cluster: {n_workers} workers, started and warmed up in {t_up:.1f} s")

            t0 = time.perf_counter()
            with joblib.parallel_config(backend="dask"):
                remote = extractor.extract_many(paths, n_jobs=-1, progress=False, on_error="skip")
            t_joblib = time.perf_counter() - t0
            same_joblib = identical(remote.features, local.features)
            print(f"{'dask, joblib backend:':28} {t_joblib:7.2f} s  identical: {same_joblib}")

            ok_paths = [p for p, f in zip(paths, local.features, strict=True) if f is not None]
            t0 = time.perf_counter()
            mapped = client.gather(client.map(extractor.extract_file, ok_paths, pure=False))
            t_map = time.perf_counter() - t0
            same_map = identical(mapped, [f for f in local.features if f is not None])
            print(f"{'dask, client.map:':28} {t_map:7.2f} s  identical: {same_map}")

            same_cache = True
            if args.cache_dir is not None:
                with joblib.parallel_config(backend="dask"):
                    for run in ("first", "second"):
                        t0 = time.perf_counter()
                        cached = extractor.extract_many(
                            paths,
                            n_jobs=-1,
                            cache_dir=args.cache_dir,
                            progress=False,
                            on_error="skip",
                        )
                        same_cache &= identical(cached.features, local.features)
                        print(
                            f"{f'dask, cache ({run} run):':28} {time.perf_counter() - t0:7.2f} s  "
                            f"{cached.n_cached}/{len(paths)} from cache"
                        )
                print(f"cached results identical: {same_cache}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if local.failures:
        print(local.report(), file=sys.stderr)
    ok = same_joblib and same_map and same_cache
    print("results equal the local run" if ok else "RESULTS DIFFER from the local run")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
