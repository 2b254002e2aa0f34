"""The ``covergan`` command line.

Subcommands::

    covergan demo      the main job on the built-in Bach-chorale demo data
    covergan extract   audio folder or manifest -> cached CQT features (.npy)

Every subcommand prints what it wrote and exits non-zero with a one-line message on
bad input (``covergan: error: ...``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

logger = logging.getLogger("covergan")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _jobs(text: str) -> int:
    value = int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("n_jobs must be non-zero (-1 = every core)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``covergan`` command (exposed for the docs and tests)."""
    from covergan import __version__

    parser = argparse.ArgumentParser(
        prog="covergan",
        description="Class-conditional GAN augmentation of CQT spectrograms for cover-song "
        "identification.",
    )
    parser.add_argument("--version", action="version", version=f"covergan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job on the built-in Bach-chorale demo data",
        description="Build the chorale demo data, extract CQTs, fit an Augmenter, sample "
        "synthetic versions of the rarest songs and write a quality report (Markdown + PNG). "
        "About 10 minutes on a 2-core CPU; --steps trains longer.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("covergan-report"),
        help="report folder (default: %(default)s)",
    )
    demo.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="GAN training steps (default: about 6 CPU-minutes' worth, 1500)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of data, training and sampling (default: %(default)s)",
    )
    demo.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="data cache (default: $COVERGAN_CACHE or ~/.cache/covergan)",
    )
    demo.add_argument(
        "--n-jobs",
        type=_jobs,
        default=2,
        help="processes for parsing, rendering and extraction (default: %(default)s)",
    )
    demo.add_argument(
        "--max-works",
        type=_positive_int,
        default=None,
        help="use only this many chorale works (quick runs)",
    )
    demo.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: %(default)s)"
    )
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    extract = sub.add_parser(
        "extract",
        help="audio folder or manifest -> cached CQT features",
        description="Extract CQT features (the CQTNet recipe by default) from a folder laid out as "
        "ROOT/<song_id>/<recording>.<wav|flac|ogg|mp3> or a CSV manifest with path,song_id "
        "columns, in parallel with an on-disk cache, and write OUT/<song_id>/<recording>.npy "
        "(a folder CQTDataset.from_folder reads with no audio decoding).",
    )
    extract.add_argument("source", type=Path, help="audio folder or manifest .csv")
    extract.add_argument("out", type=Path, help="output folder for .npy features")
    extract.add_argument(
        "--n-jobs", type=_jobs, default=-1, help="worker processes (default: every core)"
    )
    extract.add_argument(
        "--cache-dir", type=Path, default=None, help="feature cache folder (default: none)"
    )
    extract.add_argument(
        "--bins-per-octave", type=_positive_int, default=12, help="(default: %(default)s)"
    )
    extract.add_argument("--n-bins", type=_positive_int, default=84, help="(default: %(default)s)")
    extract.add_argument(
        "--pool",
        type=_positive_int,
        default=20,
        help="mean over this many frames (default: %(default)s)",
    )
    extract.add_argument(
        "--scale",
        choices=("magnitude", "power", "db"),
        default="magnitude",
        help="(default: %(default)s)",
    )
    extract.add_argument(
        "--skip-errors", action="store_true", help="skip unreadable files instead of failing"
    )
    extract.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _cmd_extract(args: argparse.Namespace) -> int:
    import numpy as np

    from covergan.cqt import CQTExtractor
    from covergan.data import CQTDataset

    extractor = CQTExtractor(
        bins_per_octave=args.bins_per_octave, n_bins=args.n_bins, pool=args.pool, scale=args.scale
    )
    build = (
        CQTDataset.from_manifest if args.source.suffix.lower() == ".csv" else CQTDataset.from_folder
    )
    dataset = build(
        args.source,
        extractor=extractor,
        n_jobs=args.n_jobs,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
        on_error="skip" if args.skip_errors else "raise",
    )
    for song, name, feats in zip(dataset.song_ids, dataset.names, dataset.features, strict=True):
        target = args.out / str(song) / f"{Path(name).stem}.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, feats)
    print(f"wrote {len(dataset)} feature files of {dataset.n_songs} songs to {args.out}")
    for failure in dataset.failures:
        print(f"skipped {failure}", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from covergan.augmenter import Augmenter
    from covergan.data import split_recordings
    from covergan.datasets import chorale_covers
    from covergan.plots import plot_features
    from covergan.report import quality_report

    t0 = time.perf_counter()
    progress = not args.no_progress
    print("1/4 building the Bach-chorale demo data (cached after the first run)")
    data = chorale_covers(
        max_works=args.max_works,
        seed=args.seed,
        cache_dir=args.cache_dir,
        n_jobs=args.n_jobs,
        progress=progress,
    )
    counts = data.class_counts()
    print(f"    {len(data)} recordings of {data.n_songs} works ({time.perf_counter() - t0:.0f} s)")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    big = max(counts, key=lambda s: (counts[s], str(s)))
    other = min(counts, key=lambda s: (counts[s], str(s)))
    first = [i for i, s in enumerate(data.song_ids) if s == big][:2]
    versions = [(f"{big}: {Path(data.names[i]).stem}", data.features[i]) for i in first]
    versions.append((f"{other} (another work)", data.features[data.song_ids.index(other)]))
    plot_features(
        versions,
        config=data.config,
        title="two versions of one work, and another work",
        path=out / "versions.png",
    )

    train, heldout = split_recordings(data, holdout=1, min_recordings=3, seed=args.seed)
    steps = args.steps if args.steps is not None else 1500
    print(f"2/4 fitting the Augmenter: {len(train)} training recordings, {steps} steps")
    aug = Augmenter(steps=steps, seed=args.seed, device=args.device, progress=progress).fit(train)
    aug.save(out / "augmenter.pt")

    print("3/4 sampling synthetic versions of the rarest works")
    plan = aug.plan("median", max_ratio=4)
    needed = {s: n for s, n in plan.items() if n > 0}
    samples = aug.sample_many(needed, seed=args.seed)
    n_synth = sum(len(x) for x in samples.values())
    print(f"    {n_synth} synthetic CQTs for {len(needed)} works below the median count")

    print("4/4 measuring quality against held-out recordings")
    report = quality_report(
        aug,
        train,
        heldout,
        out,
        seed=args.seed,
        title="covergan demo: Bach chorales",
        notes=[
            f"data: {len(data)} renders of {data.n_songs} chorale works (music21 corpus, "
            "additive synthesiser, random key/tempo/timbre)",
            f"plan('median', max_ratio=4): {n_synth} synthetic samples for {len(needed)} works",
            f"wall time {time.perf_counter() - t0:.0f} s",
        ],
    )
    print(
        f"done in {time.perf_counter() - t0:.0f} s: per-song distance {report.per_song.ratio:.2f}x "
        f"the real floor, memorisation ratio {report.memorization.ratio:.2f}"  # type: ignore[union-attr]
    )
    print(f"report: {report.markdown}")
    return 0


_COMMANDS = {"demo": _cmd_demo, "extract": _cmd_extract}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 a covergan error, 2 usage)."""
    from covergan.errors import CoverGANError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _COMMANDS[args.command](args)
    except CoverGANError as error:
        print(f"covergan: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("covergan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
