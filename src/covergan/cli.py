"""The ``covergan`` command line.

Subcommands::

    covergan demo      the main job on the built-in Bach-chorale demo data, in a time budget
    covergan extract   audio folder or manifest -> CQT features (.npy folder)
    covergan fit       features or audio folder -> augmenter file (Ctrl-C saves, --resume)
    covergan sample    augmenter file -> synthetic CQTs (.npy folder), per song or balanced
    covergan evaluate  augmenter file + real features -> quality report (Markdown + PNG)
    covergan listen    CQT .npy file, or augmenter + song -> WAV

Every subcommand prints what it wrote. Bad input gives a one-line ``covergan: error: ...``
on stderr and a non-zero exit status: 1 for a covergan error (missing or corrupt file,
unknown song, ...), 2 for bad usage, 130 when interrupted (Ctrl-C). ``docs/cli.md`` has a
walk-through.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import math
import os
import signal
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import torch

    from covergan.augmenter import Augmenter
    from covergan.cqt import CQTConfig
    from covergan.data import CQTDataset, SongId

__all__ = ["CONFIG_FILE", "build_parser", "main"]

logger = logging.getLogger("covergan")

CONFIG_FILE = "cqt_config.json"
"""Name of the file that ``extract`` and ``sample`` write beside the ``<song_id>/*.npy``
folders: the :class:`~covergan.cqt.CQTConfig` of the features, as JSON. ``fit`` and
``listen`` read it, so a features folder describes its own format."""

DEFAULT_CHECKPOINT_MINUTES = 10.0
"""``fit``: minutes of training between the resumable checkpoints saved by time
(``--checkpoint-minutes``)."""
DEMO_RESERVE_S = 180.0
"""``demo``: seconds kept back from the budget for sampling, saving and the report (whose
CSI embedding trains for about a minute on the chorales)."""
DEMO_PROBE_STEPS = 8
"""``demo``: steps of each model in the timing probe (a step's time is the median of the
intervals between them, so one slow step on a busy machine does not set the budget)."""
DEMO_MIN_STEPS = 10
"""``demo``: the fewest steps (of each model) the budget may choose."""
DEMO_RUN_FILE = "demo-fit.json"
"""``demo``: the settings and steps of its fit, written beside ``augmenter.pt`` when training
starts and again once the augmenter is saved. A rerun with the same settings reuses that
finished fit, or continues an interrupted one from ``augmenter.pt.partial`` (``--refit``
trains afresh)."""

DEMO_AUGMENTER = "augmenter.pt"
"""``demo``: its finished fit, in ``--out``."""
DEMO_PARTIAL = DEMO_AUGMENTER + ".partial"
"""``demo``: the resumable checkpoint of its fit, saved on a Ctrl-C (at the end of the step
under way) and every :data:`DEFAULT_CHECKPOINT_MINUTES` minutes; removed once the fit is
saved."""

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line: ``covergan: error: ...``."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("covergan").strip()
        where = f"{command}: " if command else ""
        hint = f"see '{self.prog} --help'"
        self.exit(EXIT_USAGE, f"covergan: error: {where}{message} ({hint})\n")


class _CLIError(Exception):
    """Bad command-line input found after parsing (a one-line message, exit status 1)."""


# ----------------------------------------------------------------------------- argument types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_seed(parser: argparse.ArgumentParser, *, default: int | None, help: str) -> None:
    parser.add_argument("--seed", metavar="N", type=_non_negative_int, default=default, help=help)


def _add_n_jobs(parser: argparse.ArgumentParser, *, default: int, help: str) -> None:
    parser.add_argument("--n-jobs", metavar="N", type=_jobs, default=default, help=help)


def _add_cache_dir(parser: argparse.ArgumentParser, *, help: str) -> None:
    parser.add_argument("--cache-dir", metavar="DIR", type=Path, default=None, help=help)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("n_jobs must be non-zero (-1 = every core)")
    return value


def _target(text: str) -> str | int:
    if text in ("max", "median"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'max', 'median' or an integer >= 0, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _models(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if (
        not names
        or any(n not in ("versions", "gan") for n in names)
        or len(set(names)) < len(names)
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give versions, gan, or both comma-separated (versions,gan)"
        )
    return names


def _names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """A comma-separated list of names from ``allowed``."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in allowed]
        if not names or unknown:
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose comma-separated names from {', '.join(allowed)}"
            )
        return names

    return parse


def _seeds(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seeds or 'auto'") from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object like '{\"g_width\": 8}'")
    return value


# ----------------------------------------------------------------------------- the parser


def _add_feature_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The CQT recipe options; without ``defaults`` they override a folder's config file."""
    group = parser.add_argument_group(
        "feature format",
        None
        if defaults
        else f"How the features are made (audio) or were made (.npy). Default: the folder's "
        f"{CONFIG_FILE} (written by 'covergan extract'), else the CQTNet recipe; each option "
        "given replaces one field.",
    )
    group.add_argument(
        "--n-bins",
        metavar="N",
        type=_positive_int,
        default=84 if defaults else None,
        help="frequency bins" + (" (default: %(default)s)" if defaults else ""),
    )
    group.add_argument(
        "--bins-per-octave",
        metavar="N",
        type=_positive_int,
        default=12 if defaults else None,
        help="bins per octave, a multiple of 12" + (" (default: %(default)s)" if defaults else ""),
    )
    group.add_argument(
        "--pool",
        metavar="N",
        type=_positive_int,
        default=20 if defaults else None,
        help="mean over this many CQT frames" + (" (default: %(default)s)" if defaults else ""),
    )
    group.add_argument(
        "--scale",
        choices=("magnitude", "power", "db"),
        default="magnitude" if defaults else None,
        help="value scale" + (" (default: %(default)s)" if defaults else ""),
    )


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda, cuda:1, mps (default: %(default)s)",
        metavar="DEVICE",
    )


def _add_gan_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gan-config",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="advanced: GANConfig fields to override, as a JSON object, e.g. "
        '\'{"g_width": 8, "d_width": 8, "batch_size": 4}\' for a tiny, fast model',
    )


def _add_embedding_steps(parser: argparse.ArgumentParser) -> None:
    from covergan.quality import DEFAULT_EMBEDDING_STEPS

    parser.add_argument(
        "--embedding-steps",
        metavar="N",
        type=_positive_int,
        default=DEFAULT_EMBEDDING_STEPS,
        help="training steps of the report's CSI embedding (default: %(default)s)",
    )


def _add_version_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version-config",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="advanced: VersionConfig fields to override, as a JSON object, e.g. "
        '\'{"g_width": 4, "d_width": 4, "z_dim": 8}\' for a tiny, fast model',
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``covergan`` command (exposed for the docs and tests).

    Returns
    -------
    argparse.ArgumentParser
        Its usage errors print one line, ``covergan: error: ...``, and exit with status 2.
    """
    from covergan import __version__

    parser = _Parser(
        prog="covergan",
        description="Synthetic versions of rare songs, as CQT spectrograms, for cover-song "
        "identification training sets.",
    )
    parser.add_argument("--version", action="version", version=f"covergan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_extract(sub)
    _add_fit(sub)
    _add_sample(sub)
    _add_evaluate(sub)
    _add_listen(sub)
    _add_compare(sub)
    return parser


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="the main job on the built-in Bach-chorale demo data",
        description="Build the chorale demo data, extract CQTs, fit an Augmenter, sample "
        "synthetic versions of the rarest works and write a quality report (Markdown + PNG). "
        "Finishes within --minutes (default 9) on a 2-core CPU, first data build included: a "
        "short probe times a training step and the number of steps is chosen to fit what is "
        "left of the budget. --steps N fixes the number instead (reproducible run for run). "
        "Ctrl-C during training saves a checkpoint; the same command continues it.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("covergan-report"),
        help="report folder (default: %(default)s)",
    )
    demo.add_argument(
        "--minutes",
        metavar="M",
        type=_positive_float,
        default=9.0,
        help="wall-time budget of the whole run, in minutes (default: %(default)s)",
    )
    demo.add_argument(
        "--steps",
        metavar="N",
        type=_positive_int,
        default=None,
        help="training steps of each model (plus steps // 5 autoencoder pretraining steps); "
        "overrides --minutes, so the run is exactly reproducible",
    )
    _add_seed(demo, default=0, help="seed of data, training and sampling (default: %(default)s)")
    _add_cache_dir(demo, help="data cache (default: $COVERGAN_CACHE or ~/.cache/covergan)")
    _add_n_jobs(
        demo,
        default=2,
        help="processes for parsing, rendering and extraction (default: %(default)s)",
    )
    demo.add_argument(
        "--max-works",
        metavar="N",
        type=_positive_int,
        default=None,
        help="use only this many chorale works (quick runs)",
    )
    _add_device(demo)
    _add_gan_config(demo)
    _add_version_config(demo)
    _add_embedding_steps(demo)
    demo.add_argument(
        "--refit",
        action="store_true",
        help="train afresh even where OUT holds the finished fit of an earlier run with the "
        "same release, --seed, --max-works, model configs and --steps (or, without it, "
        "--minutes), which a rerun reuses, or its interrupted fit (augmenter.pt.partial, saved "
        "on Ctrl-C and every 10 minutes), which a rerun continues",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_extract(sub: Any) -> None:
    extract = sub.add_parser(
        "extract",
        help="audio folder or manifest -> CQT feature store (.npy folder with an index)",
        description="Extract CQT features (the CQTNet recipe by default) from a folder laid out as "
        "ROOT/<song_id>/<recording>.<wav|flac|ogg|mp3> or a CSV manifest with path,song_id "
        "columns, in parallel with an optional on-disk cache, into a feature store: "
        f"OUT/<song_id>/<recording>.npy, OUT/{CONFIG_FILE} and an index that "
        "CQTDataset.from_folder and 'covergan fit' open in seconds at any size, memory-mapping "
        "the tracks. Each recording is stored as soon as it is extracted: run the same command "
        "again after an interruption and it continues; run it on several machines at once with "
        "--shard K/N and the same OUT.",
    )
    extract.add_argument(
        "source", metavar="SOURCE", type=Path, help="audio folder or manifest .csv"
    )
    extract.add_argument("out", metavar="OUT", type=Path, help="output folder for .npy features")
    _add_n_jobs(extract, default=-1, help="worker processes (default: every core)")
    _add_cache_dir(extract, help="feature cache folder (default: none)")
    _add_feature_options(extract, defaults=True)
    extract.add_argument(
        "--skip-errors", action="store_true", help="skip unreadable files instead of failing"
    )
    extract.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="storage dtype; float16 halves disk and page cache (default: %(default)s)",
    )
    extract.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        metavar="K/N",
        help="take files K, K+N, K+2N, ... (0 <= K < N) of SOURCE, for N writers at once",
    )
    extract.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (e.g. 0/4)") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= K < N")
    return k, n


def _add_fit(sub: Any) -> None:
    fit = sub.add_parser(
        "fit",
        help="features or audio folder -> augmenter file",
        description="Fit an Augmenter (normaliser + version model by default, see --model) on a "
        "folder laid out as "
        "ROOT/<song_id>/<recording>.<npy|wav|flac|ogg|mp3> (e.g. the output of 'covergan "
        "extract') and save it to OUT. Ctrl-C stops at the end of the current training step and "
        "saves a resumable checkpoint (exit status 130); run the same command with --resume to "
        "continue exactly where it stopped (on CPU, weight for weight the model an "
        "uninterrupted run gives). A Ctrl-C before the first training step ends (during "
        "autoencoder pretraining) saves nothing; a second Ctrl-C quits at once, without saving.",
    )
    fit.add_argument("data", metavar="DATA", type=Path, help="features or audio folder")
    fit.add_argument(
        "out", metavar="OUT", type=Path, help="augmenter file to write (e.g. augmenter.pt)"
    )
    _add_training_options(fit)
    _add_seed(fit, default=None, help="seed of crops, initialisation and training (default: 0)")
    _add_device(fit)
    _add_checkpoint_options(fit)
    _add_n_jobs(fit, default=1, help="extraction processes for audio (default: 1)")
    _add_cache_dir(fit, help="feature cache for audio (default: none)")
    _add_gan_config(fit)
    _add_version_config(fit)
    _add_feature_options(fit, defaults=False)
    fit.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_training_options(fit: argparse.ArgumentParser) -> None:
    """``fit``'s choice of models, steps, window, batch and data workers."""
    group = fit.add_argument_group("training")
    group.add_argument(
        "--steps",
        metavar="N",
        type=_positive_int,
        default=None,
        help="training steps of each model in all (default: 3000; with --resume, the checkpoint's)",
    )
    group.add_argument(
        "--model",
        type=_models,
        default=None,
        metavar="NAMES",
        help="models to fit, comma-separated, the first is what 'sample' draws: versions "
        "(the version model; default), gan (the class-conditional GAN), or versions,gan",
    )
    group.add_argument(
        "--version-steps",
        metavar="N",
        type=_positive_int,
        default=None,
        help="version-model steps (default: --steps)",
    )
    group.add_argument(
        "--pretrain-steps",
        metavar="N",
        type=_non_negative_int,
        default=None,
        help="class-GAN autoencoder pretraining steps (default: steps // 5 for the default "
        "preset, 0 for thesis)",
    )
    group.add_argument(
        "--preset",
        choices=("default", "thesis"),
        default=None,
        help="class-GAN architecture and recipe (default: default)",
    )
    group.add_argument(
        "--window",
        metavar="FRAMES",
        type=_positive_int,
        default=None,
        help="window width in pooled frames, >= 2 (default: the median track length, at most "
        "200, rounded down to a multiple of 4)",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="(default: the preset's)",
        metavar="N",
    )
    group.add_argument(
        "--workers",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="processes that cut training windows ahead of each step; the same windows either "
        "way, worth it on a GPU (default: 0, this process)",
    )


def _add_checkpoint_options(fit: argparse.ArgumentParser) -> None:
    """``fit``'s options for periodic checkpoints and resuming."""
    group = fit.add_argument_group("interrupting and resuming")
    group.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=None,
        metavar="N",
        help="also save a resumable checkpoint every N training steps (of each model)",
    )
    group.add_argument(
        "--checkpoint-minutes",
        type=_non_negative_float,
        default=DEFAULT_CHECKPOINT_MINUTES,
        metavar="M",
        help="also save a resumable checkpoint, at the end of a step, once M minutes have passed "
        "since the last one, so a killed run (kill -9, a lost machine) loses at most about M "
        "minutes; 0 turns it off (default: %(default)s)",
    )
    group.add_argument(
        "--checkpoint",
        metavar="FILE",
        type=Path,
        default=None,
        help="checkpoint file (default: OUT with '.partial' appended); removed once OUT is written",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue the checkpoint (or, without one, the augmenter at OUT) on the same "
        "data, up to --steps steps of each model in all; --model, --seed, --window, "
        "--version-steps and (with a class GAN) --preset, --batch-size and --gan-config must "
        "match it or be left out; the pretraining, model-config and feature options are the "
        "checkpoint's",
    )


def _add_sample(sub: Any) -> None:
    sample = sub.add_parser(
        "sample",
        help="augmenter file -> synthetic CQTs (.npy folder)",
        description="Draw synthetic CQT windows from a fitted augmenter and write one file per "
        "sample, OUT/<song_id>/synthetic-s<seed>-<k>.npy, each a float32 [n_bins, window] "
        f"array in the feature format of the training data, plus OUT/{CONFIG_FILE}: the "
        "layout 'covergan extract' writes, so CQTDataset.from_folder, 'covergan evaluate' "
        "and 'covergan listen' read it. Give song ids and -n, or --balance. A rerun with the "
        "same --seed replaces that seed's files of each song it samples (another seed adds "
        "files beside them); an interrupted run leaves whole files, and the same command "
        "completes it.",
    )
    sample.add_argument(
        "augmenter", metavar="AUGMENTER", type=Path, help="augmenter file (from 'covergan fit')"
    )
    sample.add_argument(
        "songs", nargs="*", metavar="SONG", help="song ids to sample (folder names of the data)"
    )
    sample.add_argument(
        "-n", type=_positive_int, default=1, help="samples per song id (default: %(default)s)"
    )
    sample.add_argument(
        "--balance",
        type=_target,
        default=None,
        metavar="TARGET",
        help="instead of song ids: as many samples as every song needs to reach TARGET "
        "recordings: max, median or a number (Augmenter.plan)",
    )
    sample.add_argument(
        "--max-ratio",
        metavar="R",
        type=float,
        default=None,
        help="with --balance: at most this many synthetic samples per real recording",
    )
    sample.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    sample.add_argument(
        "--method",
        choices=("versions", "gan"),
        default=None,
        help="versions: new versions of each song from its reference windows; gan: the class "
        "GAN's samples (default: the first model the augmenter was fitted with)",
    )
    _add_seed(sample, default=0, help="noise seed (default: %(default)s)")
    sample.add_argument(
        "--space",
        choices=("features", "model"),
        default="features",
        help="features: the training data's format; model: the GAN's [-1, 1] space, without "
        f"a {CONFIG_FILE} (default: %(default)s)",
    )
    sample.add_argument(
        "--truncation",
        metavar="T",
        type=_positive_float,
        default=None,
        help="redraw noise entries beyond this magnitude (less diverse, more typical)",
    )
    _add_device(sample)


def _add_evaluate(sub: Any) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="augmenter file + real features -> quality report",
        description="Measure a fitted augmenter against real recordings and write OUT/report.md "
        "with figures in OUT/figures. Its headline is a quality suite in a CSI embedding "
        "trained on TRAIN (identity, diversity, realism and memorisation of every fitted "
        "model's samples, each beside its real-data floor), with negative controls and an "
        "artefact check of the bins; the cqt-stats Frechet distances (blind to temporal "
        "order) follow as a secondary number. TRAIN is the folder the augmenter was "
        "fitted on; HELDOUT holds other recordings of the same songs. Without HELDOUT, one "
        "recording of every song with 3 or more is held out of TRAIN (seeded): the floors "
        "are then optimistic if the augmenter saw those recordings.",
    )
    evaluate.add_argument(
        "augmenter", metavar="AUGMENTER", type=Path, help="augmenter file (from 'covergan fit')"
    )
    evaluate.add_argument(
        "train", metavar="TRAIN", type=Path, help="features (or audio) folder of the training data"
    )
    evaluate.add_argument(
        "heldout",
        metavar="HELDOUT",
        type=Path,
        nargs="?",
        default=None,
        help="held-out features (or audio) folder",
    )
    evaluate.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("covergan-evaluation"),
        help="report folder (default: %(default)s)",
    )
    evaluate.add_argument(
        "--n-per-song",
        metavar="N",
        type=_positive_int,
        default=16,
        help="synthetic windows per evaluated song, >= 2 (default: %(default)s)",
    )
    evaluate.add_argument(
        "--max-songs",
        metavar="N",
        type=_positive_int,
        default=None,
        help="evaluate at most N held-out songs, a seeded subset, and take real windows of at "
        "most N training songs, so a large catalogue's report stays small (default: "
        "covergan.report.MAX_REPORT_SONGS)",
    )
    _add_embedding_steps(evaluate)
    _add_seed(evaluate, default=0, help="(default: %(default)s)")
    _add_n_jobs(evaluate, default=1, help="extraction processes for audio (default: 1)")
    _add_device(evaluate)
    evaluate.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_listen(sub: Any) -> None:
    listen = sub.add_parser(
        "listen",
        help="CQT .npy file, or augmenter + song -> WAV",
        description="Turn CQT features into audio (Griffin-Lim phase estimation, see "
        "covergan.audio.to_audio). SOURCE is a features .npy file [n_bins, frames] (its "
        f"format from a {CONFIG_FILE} in its folder or the folder above, else the feature "
        "options) or an augmenter file with --song (one fresh sample).",
    )
    listen.add_argument(
        "source", metavar="SOURCE", type=Path, help="features .npy file, or augmenter file"
    )
    listen.add_argument(
        "--song", metavar="SONG", default=None, help="with an augmenter: the song to sample"
    )
    listen.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="WAV file (default, in the working folder: <folder>-<name>.wav for a .npy "
        "<folder>/<name>.npy, so no audio lands in a dataset folder; <song>-s<seed>.wav for an "
        "augmenter)",
    )
    _add_seed(
        listen,
        default=0,
        help="seed of the sample and of the initial phase (default: %(default)s)",
    )
    listen.add_argument(
        "--n-iter",
        metavar="N",
        type=_positive_int,
        default=32,
        help="Griffin-Lim iterations (default: %(default)s)",
    )
    _add_device(listen)
    _add_feature_options(listen, defaults=False)


# ----------------------------------------------------------------------------- helpers


def _add_compare(sub: Any) -> None:
    from covergan.compare import CONDITIONS, DEFAULT_CONDITIONS, PROTOCOLS

    compare = sub.add_parser(
        "compare",
        help="does augmentation help a CSI model on my recordings? (paired comparison)",
        description="Train the reference CSI model under each augmentation condition (none, "
        "classic, versions, classic+versions), protocol (unseen-works, rare-songs) and seed "
        "on DATA, and write OUT/report.md, OUT/comparison.png and OUT/results.jsonl (one line "
        "per finished run) with paired differences and 95%% intervals. DATA: a folder "
        "<work>/<recording>.<npy|wav|flac|ogg|mp3>, a manifest .csv (path,song_id) or a "
        "saved CQTDataset (.pt). Unreadable files are skipped and listed in the report. "
        "Interrupted and run again with the same arguments, it continues from results.jsonl; "
        "an OUT of a run with other settings or data is refused.",
    )
    compare.add_argument("data", metavar="DATA", type=Path, help="recordings by work")
    compare.add_argument("--out", type=Path, required=True, help="output folder")
    compare.add_argument(
        "--minutes",
        metavar="M",
        type=_positive_float,
        default=None,
        help="no new run starts after M minutes (default: no limit)",
    )
    compare.add_argument(
        "--seeds",
        type=_seeds,
        default=3,
        metavar="N|auto",
        help="seeds 0..N-1, or 'auto': add seeds until every difference is resolved "
        "(default: %(default)s)",
    )
    compare.add_argument(
        "--conditions",
        type=_names(CONDITIONS),
        default=list(DEFAULT_CONDITIONS),
        metavar="NAMES",
        help=f"comma-separated, from {','.join(CONDITIONS)} (default: "
        f"{','.join(DEFAULT_CONDITIONS)}; the class GAN's conditions fit a class GAN too)",
    )
    compare.add_argument(
        "--protocols",
        type=_names(PROTOCOLS),
        default=list(PROTOCOLS),
        metavar="NAMES",
        help=f"comma-separated (default: {','.join(PROTOCOLS)})",
    )
    compare.add_argument(
        "--baseline",
        choices=CONDITIONS,
        default="none",
        help="the condition the others are paired against (default: %(default)s)",
    )
    compare.add_argument(
        "--csi-steps", metavar="N", type=_positive_int, default=None, help="(default: adapts)"
    )
    compare.add_argument(
        "--version-steps",
        metavar="N",
        type=_positive_int,
        default=400,
        help="steps of each version model, and of each class GAN for the gan conditions "
        "(default: %(default)s)",
    )
    compare.add_argument(
        "--window", metavar="FRAMES", type=_positive_int, default=None, help="(default: adapts)"
    )
    _add_device(compare)
    _add_n_jobs(compare, default=1, help="extraction processes for audio (default: 1)")
    _add_cache_dir(compare, help="feature cache for audio (default: none)")
    _add_feature_options(compare, defaults=False)
    compare.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _compare_data(args: argparse.Namespace) -> CQTDataset:
    """DATA as a dataset: a saved CQTDataset, a manifest or a folder (failures skipped)."""
    from covergan.cqt import CQTExtractor
    from covergan.data import CQTDataset

    path: Path = args.data
    if path.is_file() and path.suffix.lower() != ".csv":
        return CQTDataset.load(path)
    folder = path.parent if path.is_file() else path
    options = {
        "extractor": CQTExtractor(_feature_config(args, folder)),
        "n_jobs": args.n_jobs,
        "cache_dir": args.cache_dir,
        "progress": not args.no_progress,
        "on_error": "skip",
    }
    if path.is_file():
        return CQTDataset.from_manifest(path, **options)
    if not path.is_dir():
        raise _CLIError(f"{path} is not a folder, a manifest .csv or a saved dataset")
    return CQTDataset.from_folder(path, **options)


def _cmd_compare(args: argparse.Namespace) -> int:
    from covergan.compare import CompareSettings, compare

    data = _compare_data(args)
    failures = list(data.failures)
    settings = CompareSettings(
        window=args.window,
        csi_steps=args.csi_steps,
        version_steps=args.version_steps,
        device=args.device,
    )
    print(
        f"comparing {', '.join(args.conditions)} on {data.n_songs} works, {len(data)} "
        f"recordings ({len(failures)} files skipped); results in {args.out}"
    )
    result = compare(
        data,
        conditions=args.conditions,
        protocols=args.protocols,
        seeds=args.seeds,
        budget=None if args.minutes is None else 60 * args.minutes,
        baseline=args.baseline,
        settings=settings,
        out=args.out,
        progress=not args.no_progress,
    )
    report = result.to_markdown(args.baseline)
    if failures:
        report += "\n## Files skipped\n\n" + "".join(f"- {f}\n" for f in failures)
    (args.out / "report.md").write_text(report, encoding="utf-8")
    result.plot(args.baseline).savefig(args.out / "comparison.png", dpi=120)
    for d in result.differences(args.baseline):
        if d.metric == "map":
            print(
                f"{d.protocol}: {d.condition} vs {d.baseline}: MAP {d.mean:+.4f} "
                f"[{d.low:+.4f}, {d.high:+.4f}] ({d.verdict}, n={d.n})"
            )
    print(f"wrote {args.out / 'report.md'} and {args.out / 'comparison.png'}")
    return 0


def _read_config(path: Path) -> CQTConfig:
    from covergan.cqt import CQTConfig
    from covergan.errors import DatasetError

    try:
        return CQTConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise DatasetError(f"{path} is not a valid feature config: {error}") from error


def _write_config(folder: Path, config: CQTConfig) -> Path:
    from covergan._io import atomic_write

    path = folder / CONFIG_FILE
    with atomic_write(path, text=True) as fh:
        fh.write(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


#: The CQTConfig fields the feature options (``--n-bins``, ...) set.
_FEATURE_OPTIONS = ("n_bins", "bins_per_octave", "pool", "scale")


def _feature_config(args: argparse.Namespace, *folders: Path) -> CQTConfig:
    """The first ``CONFIG_FILE`` of ``folders`` (else the CQTNet recipe), with the options."""
    from covergan.cqt import CQTConfig

    config = CQTConfig()
    for folder in folders:
        if (folder / CONFIG_FILE).is_file():
            config = _read_config(folder / CONFIG_FILE)
            break
    overrides = {n: getattr(args, n) for n in _FEATURE_OPTIONS if getattr(args, n) is not None}
    return dataclasses.replace(config, **overrides) if overrides else config


def _load_augmenter(path: Path, args: argparse.Namespace) -> Augmenter:
    """The augmenter file on ``args.device``, with progress bars unless ``--no-progress``
    (a file does not keep the setting of the run that fitted it)."""
    from covergan.augmenter import Augmenter

    aug = Augmenter.load(path, device=args.device)
    aug.progress = not getattr(args, "no_progress", False)
    if _unfinished(aug):
        print(
            f"note: {path} is a checkpoint at {_steps_text(aug)} (continue it with 'covergan "
            "fit ... --resume')",
            file=sys.stderr,
        )
    return aug


def _unfinished(aug: Augmenter) -> bool:
    done = aug.steps_done
    return any(done.get(name, 0) < steps for name, steps in aug.steps_planned.items())


def _steps_text(aug: Augmenter) -> str:
    """'versions step 10 of 20, gan step 0 of 20'."""
    done = aug.steps_done
    return ", ".join(
        f"{name} step {done.get(name, 0)} of {steps}" for name, steps in aug.steps_planned.items()
    )


def _song_id(aug: Augmenter, text: str) -> SongId:
    """The fitted song id ``text`` names (an int id for digits when the model has int ids)."""
    if text not in aug.songs_ and text.lstrip("-").isdigit() and int(text) in aug.songs_:
        return int(text)
    aug.songs_.index(text)  # UnknownSongError with suggestions
    return text


def _safe_name(song: SongId) -> str:
    from covergan.store import safe_file_name

    return safe_file_name(str(song))


def _checkpoint_path(args: argparse.Namespace) -> Path:
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    out = Path(args.out)
    return out.with_name(out.name + ".partial")


class _GracefulStop:
    """Ctrl-C during training: finish the current training step, then stop (a :class:`Callback`).

    Used as a context manager around ``Augmenter.fit``. The first SIGINT after a training step
    has completed is deferred: :meth:`on_step_end` then raises ``KeyboardInterrupt`` at a
    step boundary, where the model, optimisers and counters are consistent and can be saved.
    A SIGINT before the first training step ends (data loading, pretraining), or a second one,
    interrupts at once. Outside the main thread signals cannot be handled and nothing is
    installed.
    """

    def __init__(self) -> None:
        self.requested = False
        self.stopped_at: int | None = None
        self._training = False
        self._installed = False
        self._previous: Any = None

    def __enter__(self) -> _GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            # None: the previous handler was not installed from Python; the default then
            signal.signal(
                signal.SIGINT,
                self._previous if self._previous is not None else signal.default_int_handler,
            )
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested or not self._training:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ncovergan: stopping after this step to save a checkpoint (Ctrl-C again to quit "
            "without saving)",
            file=sys.stderr,
        )

    def on_step_end(self, gan: Any, step: int, logs: dict[str, float]) -> None:
        """Raise ``KeyboardInterrupt`` if a stop was requested during this step."""
        self._training = True
        if self.requested:
            self.stopped_at = step
            raise KeyboardInterrupt


class _SaveEvery:
    """Save the whole augmenter every ``steps`` training steps and, when ``minutes`` is set,
    whenever that long has passed since the last save (a :class:`Callback`)."""

    def __init__(
        self, aug: Augmenter, path: Path, *, steps: int | None, minutes: float | None
    ) -> None:
        self.aug, self.path, self.steps = aug, path, steps
        self.seconds = None if minutes is None else 60.0 * minutes
        self.last = time.monotonic()

    def on_step_end(self, gan: Any, step: int, logs: dict[str, float]) -> None:
        """Save at a multiple of ``steps`` or once ``minutes`` have passed."""
        due = self.steps is not None and step % self.steps == 0
        if due or (self.seconds is not None and time.monotonic() - self.last >= self.seconds):
            self.aug.save(self.path)
            self.last = time.monotonic()


def _fit_interruptibly(
    aug: Augmenter,
    data: Any,
    checkpoint: Path,
    *,
    resume: bool,
    every: int | None,
    minutes: float,
    again: str,
) -> bool:
    """``aug.fit(data, resume=resume)`` saving a resumable ``checkpoint`` every ``every``
    steps and ``minutes`` (0: not by time), and on a Ctrl-C, at the end of the step under way.
    True once trained; False after an interruption, reported on stderr with ``again``, the
    way to continue."""
    stop = _GracefulStop()
    callbacks: list[Any] = [stop]
    if every is not None or minutes > 0:
        save = _SaveEvery(aug, checkpoint, steps=every, minutes=minutes if minutes > 0 else None)
        callbacks.insert(0, save)
    try:
        with stop:
            aug.fit(data, callbacks=callbacks, resume=resume)
    except KeyboardInterrupt:
        if stop.stopped_at is not None and aug.is_fitted:
            aug.save(checkpoint)
            print(
                f"covergan: interrupted at {_steps_text(aug)}; saved a resumable checkpoint to "
                f"{checkpoint} (continue: {again})",
                file=sys.stderr,
            )
        else:
            kept = f"; {checkpoint} is unchanged" if checkpoint.is_file() else ""
            print(
                f"covergan: interrupted before the end of a training step; nothing saved{kept}",
                file=sys.stderr,
            )
        return False
    return True


# ----------------------------------------------------------------------------- commands


def _cmd_extract(args: argparse.Namespace) -> int:
    from covergan.cqt import CQTExtractor
    from covergan.data import folder_sources, manifest_sources
    from covergan.errors import DatasetError
    from covergan.store import FeatureStore, extract_to_store

    extractor = CQTExtractor(
        bins_per_octave=args.bins_per_octave, n_bins=args.n_bins, pool=args.pool, scale=args.scale
    )
    if args.source.suffix.lower() == ".csv":
        paths, songs = manifest_sources(args.source)
    elif args.source.is_dir():
        out = Path(args.out).resolve()
        if args.source.resolve() in (out, *out.parents):
            raise _CLIError(
                f"OUT {args.out} is SOURCE {args.source} or inside it, where the next scan "
                "would read the store as songs: put the store elsewhere"
            )
        paths, songs = folder_sources(args.source)
    else:
        raise DatasetError(f"SOURCE must be an audio folder or a manifest .csv: {args.source}")
    store = FeatureStore.create(args.out, config=extractor.config, dtype=args.dtype)
    done = extract_to_store(
        store,
        paths,
        songs,
        extractor=extractor,
        n_jobs=args.n_jobs,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
        on_error="skip" if args.skip_errors else "raise",
        shard=args.shard,
    )
    already = f" ({done.present} already there)" if done.present else ""
    print(
        f"stored {done.written} recordings{already}; {args.out} holds {len(store)} recordings "
        f"of {len({r.song for r in store.records})} songs"
    )
    for failure in done.failures:
        print(f"skipped {failure}", file=sys.stderr)
    return 0


def _check_resume_options(aug: Augmenter, args: argparse.Namespace) -> None:
    """Training options given with ``--resume`` must be the checkpoint's own."""
    from covergan.errors import ParameterError

    pairs: list[tuple[str, object, object]] = [
        ("--model", args.model, aug.models),
        ("--seed", args.seed, aug.seed_),
        ("--window", args.window, aug.window_),
        ("--version-steps", args.version_steps, aug.version_steps),
    ]
    if aug.gan_ is not None:
        batch = aug.batch_size if aug.batch_size is not None else aug.gan_.config.batch_size
        pairs += [("--preset", args.preset, aug.preset), ("--batch-size", args.batch_size, batch)]
        stored = aug.gan_.config.to_dict()
        for key, value in (args.gan_config or {}).items():
            pairs.append((f"--gan-config {key}", value, stored.get(key)))
    if aug.versions_ is not None:
        stored = aug.versions_.config.to_dict()
        for key, value in (args.version_config or {}).items():
            pairs.append((f"--version-config {key}", value, stored.get(key)))
    recipe = aug.config_.to_dict()
    for name in _FEATURE_OPTIONS:
        pairs.append((f"--{name.replace('_', '-')}", getattr(args, name), recipe[name]))
    for option, given, own in pairs:
        if given is not None and given != own:
            raise ParameterError(
                f"{option} {given} differs from the checkpoint's {own}; --resume continues a "
                "run with its own settings (leave the option out, or start afresh without "
                "--resume)"
            )
    done = max(aug.steps_done.values(), default=0)
    if args.steps is not None and args.steps < done:
        raise ParameterError(
            f"--steps {args.steps} is below the {done} steps the checkpoint has done"
        )


def _cmd_fit(args: argparse.Namespace) -> int:
    from covergan.augmenter import DEFAULT_STEPS, Augmenter
    from covergan.cqt import CQTExtractor

    out = Path(args.out)
    checkpoint = _checkpoint_path(args)
    progress = not args.no_progress
    if args.resume:
        source = checkpoint if checkpoint.is_file() else out if out.is_file() else None
        if source is None:
            raise _CLIError(
                f"--resume: no checkpoint at {checkpoint} and no augmenter at {out} (a Ctrl-C "
                "during pretraining saves none: run without --resume)"
            )
        aug = Augmenter.load(source, device=args.device)
        _check_resume_options(aug, args)
        if args.steps is not None:
            aug.steps = args.steps
        aug.progress, aug.n_jobs, aug.cache_dir = progress, args.n_jobs, args.cache_dir
        aug.workers = args.workers
        print(f"resuming {source} at {_steps_text(aug)}")
    else:
        aug = Augmenter(
            model=args.model or "versions",
            extractor=CQTExtractor(_feature_config(args, args.data)),
            preset=args.preset or "default",
            gan=args.gan_config,
            versions=args.version_config,
            window=args.window,
            steps=args.steps if args.steps is not None else DEFAULT_STEPS,
            pretrain_steps=args.pretrain_steps,
            version_steps=args.version_steps,
            batch_size=args.batch_size,
            device=args.device,
            n_jobs=args.n_jobs,
            workers=args.workers,
            cache_dir=args.cache_dir,
            progress=progress,
            seed=args.seed if args.seed is not None else 0,
        )
        if checkpoint.is_file():
            print(
                f"note: starting afresh; {checkpoint} will be replaced (--resume continues it)",
                file=sys.stderr,
            )
        planned = ", ".join(f"{n}: {k}" for n, k in aug.steps_planned.items())
        print(f"fitting an Augmenter on {args.data}: {planned} steps")
    t0 = time.perf_counter()
    fitted = _fit_interruptibly(
        aug,
        args.data,
        checkpoint,
        resume=args.resume,
        every=args.checkpoint_every,
        minutes=args.checkpoint_minutes,
        again="the same command with --resume",
    )
    if not fitted:
        return EXIT_INTERRUPTED
    aug.save(out)
    if checkpoint.resolve() != out.resolve():
        checkpoint.unlink(missing_ok=True)
    print(
        f"wrote {out}: {len(aug.songs_)} songs, {aug.config_.n_bins} x {aug.window_} windows, "
        f"{_steps_text(aug)} ({time.perf_counter() - t0:.0f} s)"
    )
    return 0


def _write_samples(
    out: Path, samples: dict[SongId, torch.Tensor], seed: int, config: CQTConfig | None
) -> None:
    """``samples[song]`` ``[k, 1, n_bins, W]`` as ``out/<song>/synthetic-s<seed>-<k>.npy``
    float32 ``[n_bins, W]`` files (each whole or absent, even if the run is killed), after
    ``config`` (features space) as :data:`CONFIG_FILE`. Files of an earlier run with the same
    seed that this run does not write are removed, so a song's folder never mixes two runs.
    The caller has checked ``out`` with :func:`_check_sample_folder` before drawing.
    """
    import numpy as np

    from covergan._io import npy_beside

    folders = {song: out / _safe_name(song) for song in samples}
    if config is not None:
        _write_config(out, config)
    for song, x in samples.items():
        names = set()
        for k, item in enumerate(x.numpy()):
            target = folders[song] / f"synthetic-s{seed}-{k:04d}.npy"
            os.replace(npy_beside(target, item[0].astype(np.float32)), target)
            names.add(target.name)
        for stale in folders[song].glob(f"synthetic-s{seed}-*.npy"):
            if stale.name not in names:
                stale.unlink()


def _check_sample_folder(out: Path, songs: Iterable[SongId], config: CQTConfig | None) -> None:
    """Before samples of ``songs`` are drawn for :func:`_write_samples`: a _CLIError when a
    song's folder is in the way (a file), or ``out`` holds samples in another format (its
    :data:`CONFIG_FILE` differs from ``config``, or model-space samples are asked into a
    folder of features)."""
    path = out / CONFIG_FILE
    if path.is_file():
        if config is None:
            raise _CLIError(
                f"{out} holds samples in the feature format ({CONFIG_FILE}): write "
                "model-space samples to another folder"
            )
        if _read_config(path) != config:
            raise _CLIError(
                f"{out} holds samples in another feature format ({path} differs from this "
                "augmenter's): write to another folder"
            )
    for folder in (out / _safe_name(song) for song in songs):
        if folder.exists() and not folder.is_dir():
            raise _CLIError(f"{folder} is a file; a song's samples need a folder there")


def _cmd_sample(args: argparse.Namespace) -> int:
    from covergan.errors import ParameterError

    if bool(args.songs) == (args.balance is not None):
        what = "not both" if args.songs else "one of them"
        raise _CLIError(f"give song ids (with -n) or --balance TARGET, {what}")
    if args.max_ratio is not None and args.balance is None:
        raise _CLIError("--max-ratio goes with --balance")
    aug = _load_augmenter(args.augmenter, args)
    counts: dict[SongId, int]
    if args.balance is not None:
        counts = {s: n for s, n in aug.plan(args.balance, max_ratio=args.max_ratio).items() if n}
        if not counts:
            print(f"every song has {args.balance} recordings or more: nothing to sample")
            return 0
    else:
        counts = {}
        for text in args.songs:
            song = _song_id(aug, text)
            if song in counts:
                raise ParameterError(f"song id {text!r} is given twice")
            counts[song] = args.n
    out: Path = args.out
    config = aug.config_ if args.space == "features" else None
    _check_sample_folder(out, counts, config)
    samples = aug.sample_many(
        counts, method=args.method, space=args.space, seed=args.seed, truncation=args.truncation
    )
    _write_samples(out, samples, args.seed, config)
    total = sum(counts.values())
    height, width = aug.config_.n_bins, aug.window_
    print(
        f"wrote {total} synthetic {height} x {width} CQTs ({args.space} space) of "
        f"{len(counts)} songs to {out}"
    )
    return 0


def _warn_if_synthetic(data: CQTDataset, folder: Path) -> None:
    """Say so when ``evaluate``'s real data holds files named as ``sample`` writes them."""
    n = sum(Path(name).name.startswith("synthetic-s") for name in data.names)
    if n:
        print(
            f"covergan: warning: {n} of the {len(data)} recordings in {folder} are named as "
            "'covergan sample' writes them (synthetic-s<seed>-<k>.npy); evaluate grades "
            "synthetic windows against these as if they were real",
            file=sys.stderr,
        )


def _read_dataset(folder: Path, aug: Augmenter, args: argparse.Namespace) -> CQTDataset:
    from covergan.cqt import CQTExtractor
    from covergan.data import CQTDataset

    return CQTDataset.from_folder(
        folder,
        extractor=CQTExtractor(aug.config_),
        n_jobs=args.n_jobs,
        progress=not args.no_progress,
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from covergan.data import split_recordings
    from covergan.report import check_reportable, quality_report

    if args.n_per_song < 2:
        raise _CLIError(f"--n-per-song {args.n_per_song} must be at least 2")
    aug = _load_augmenter(args.augmenter, args)
    check_reportable(aug)  # before the data is read (or extracted)
    train = _read_dataset(args.train, aug, args)
    notes = [f"augmenter: {args.augmenter} ({_steps_text(aug)})", f"data: {args.train}"]
    _warn_if_synthetic(train, args.train)
    if args.heldout is not None:
        heldout = _read_dataset(args.heldout, aug, args)
        _warn_if_synthetic(heldout, args.heldout)
        notes.append(f"held out: {args.heldout}")
    else:
        train, heldout = split_recordings(train, holdout=1, min_recordings=3, seed=args.seed)
        note = (
            f"held out: one recording of each of the {heldout.n_songs} songs with 3 or more, "
            f"from {args.train}; if the augmenter was fitted on all of {args.train} it has seen "
            "them and the floors are optimistic"
        )
        notes.append(note)
        print(f"note: {note}", file=sys.stderr)
    report = quality_report(
        aug,
        train,
        heldout,
        args.out,
        embedding_steps=args.embedding_steps,
        n_per_song=args.n_per_song,
        **({} if args.max_songs is None else {"max_songs": args.max_songs}),
        seed=args.seed,
        title=f"covergan quality report: {args.augmenter.name}",
        notes=notes,
    )
    _print_quality(report)
    print(f"report: {report.markdown}")
    return 0


def _print_quality(report: Any) -> None:
    """The report's headline: each model's suite as ratios to the real floor, the controls."""
    for name, suite in report.suites.items():
        ratios = ", ".join(
            f"{m.name} {m.ratio:.2f}x" + ("" if m.informative else " (n/a: floor near chance)")
            for m in suite.metrics
        )
        print(f"{name}: {ratios} the real floor ({'pass' if suite.passed else 'FAIL'})")
    rejected = [n for n, c in report.controls.items() if not c.passed]
    print(
        f"negative controls rejected: {len(rejected)} of {len(report.controls)}"
        + ("" if len(rejected) == len(report.controls) else " (do not trust the suite here)")
    )
    for name, check in report.artefacts.items():
        if not name.startswith("control:"):
            where = f" (bins {check.describe()})" if check.bins else ""
            print(f"{name}: spectral artefacts {'none' if check.passed else 'FOUND'}{where}")


def _cmd_listen(args: argparse.Namespace) -> int:
    import numpy as np

    from covergan.audio import to_audio, write_wav
    from covergan.errors import AudioLoadError

    source: Path = args.source
    if args.out is not None and Path(args.out).is_dir():
        raise _CLIError(f"-o {args.out} is a folder; give the WAV file's path")
    if source.suffix.lower() == ".npy":
        if args.song is not None:
            raise _CLIError("--song goes with an augmenter file, not a .npy")
        if not source.is_file():
            raise AudioLoadError(f"no feature file at {source}")
        try:
            features = np.load(source, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise AudioLoadError(f"cannot read feature file {source}: {error}") from error
        if features.ndim == 3 and features.shape[0] == 1:
            features = features[0]
        if features.ndim != 2:
            raise _CLIError(
                f"{source} holds an array of shape {features.shape}; expected one CQT "
                "[n_bins, frames]"
            )
        config = _feature_config(args, source.parent, source.parent.parent)
        # in the working folder, not beside the source: a .wav in a dataset folder would be
        # read as one more recording of the song
        folder = source.resolve().parent.name
        default = Path(f"{folder}-{source.stem}.wav" if folder else f"{source.stem}.wav")
        out = args.out if args.out is not None else default
        what = source.name
    else:
        if args.song is None:
            raise _CLIError(f"{source} is not a .npy file: give --song to sample an augmenter")
        aug = _load_augmenter(source, args)
        song = _song_id(aug, args.song)
        features = aug.sample(song, 1, seed=args.seed)[0, 0].numpy()
        config = aug.config_
        out = args.out if args.out is not None else Path(f"{_safe_name(song)}-s{args.seed}.wav")
        what = f"a sample of {song!r}"
    y = to_audio(features, config, n_iter=args.n_iter, seed=args.seed)
    path = write_wav(out, y, config.sr)
    print(f"wrote {path}: {what} as {len(y) / config.sr:.1f} s of audio")
    return 0


def _demo_steps(seconds_left: float, seconds_per_step: float) -> int:
    """Steps of each model (each with 1/5 of a pretraining step, counted at the same cost)
    that fit, where one step of every model together takes ``seconds_per_step``."""
    if seconds_per_step <= 0:
        return DEMO_MIN_STEPS
    return max(DEMO_MIN_STEPS, int(seconds_left / (1.2 * seconds_per_step)))


def _probe(train: CQTDataset, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds of set-up and seconds per step of both demo models together, from a short
    throw-away fit on ``train``."""

    ends: dict[str, list[float]] = {}

    class _Clock:
        def on_step_end(self, gan: Any, step: int, logs: dict[str, float]) -> None:
            ends.setdefault(type(gan).__name__, []).append(time.perf_counter())

    start = time.perf_counter()
    _demo_augmenter(args, DEMO_PROBE_STEPS, pretrain=0, progress=False).fit(
        train, callbacks=[_Clock()]
    )
    per_step = sum(
        statistics.median(b - a for a, b in itertools.pairwise(t)) for t in ends.values()
    )
    first = min(t[0] for t in ends.values())
    return max(0.0, first - start - per_step), per_step


def _demo_augmenter(
    args: argparse.Namespace, steps: int, *, pretrain: int | None = None, progress: bool
) -> Augmenter:
    """The demo's augmenter: the default version model, and the class GAN beside it."""
    from covergan.augmenter import Augmenter

    return Augmenter(
        model=("versions", "gan"),
        steps=steps,
        pretrain_steps=pretrain,
        version_steps=steps,
        gan=args.gan_config,
        versions=args.version_config,
        seed=args.seed,
        device=args.device,
        progress=progress,
    )


def _plot_two_versions(data: CQTDataset, path: Path) -> None:
    """Two recordings of the largest work beside one of the smallest (the demo's first
    figure)."""
    from covergan.plots import plot_features

    counts = data.class_counts()
    big = max(counts, key=lambda s: (counts[s], str(s)))
    other = min(counts, key=lambda s: (counts[s], str(s)))
    first = [i for i, s in enumerate(data.song_ids) if s == big][:2]
    versions = [(f"{big}: {Path(data.names[i]).stem}", data.features[i]) for i in first]
    versions.append((f"{other} (another work)", data.features[data.song_ids.index(other)]))
    plot_features(
        versions,
        config=data.config,
        title="two versions of one work, and another work",
        path=path,
    )


def _demo_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a demo fit depends on, as :data:`DEMO_RUN_FILE` records it (JSON values): the
    release, the data, the models, and ``--steps`` or, without it, the budget."""
    from covergan import __version__

    settings = {
        "covergan": __version__,
        "seed": args.seed,
        "max_works": args.max_works,
        "gan_config": args.gan_config,
        "version_config": args.version_config,
        "steps": args.steps,
        "minutes": args.minutes if args.steps is None else None,
    }
    loaded: dict[str, Any] = json.loads(json.dumps(settings))
    return loaded


def _file_stamp(path: Path) -> list[int]:
    """Size and modification time (ns) of ``path``: which file a record belongs to."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _earlier_demo_fit(out: Path, args: argparse.Namespace, *, finished: bool) -> Augmenter | None:
    """What an earlier demo run with ``args``' settings left in ``out``, as its
    :data:`DEMO_RUN_FILE` records it: with ``finished``, its saved fit (``augmenter.pt``, that
    very file, every step trained), else the resumable checkpoint (:data:`DEMO_PARTIAL`) of
    the fit the record started. None where there is none, and with ``--refit``."""
    from covergan.augmenter import Augmenter
    from covergan.errors import CheckpointError

    record, saved = out / DEMO_RUN_FILE, out / (DEMO_AUGMENTER if finished else DEMO_PARTIAL)
    if args.refit or not record.is_file() or not saved.is_file():
        return None
    try:
        run = json.loads(record.read_text(encoding="utf-8"))
        if not isinstance(run, dict) or run.get("settings") != _demo_settings(args):
            return None
        if finished and run.get("augmenter") != _file_stamp(saved):  # replaced since
            return None
        aug = Augmenter.load(saved, device=args.device)
    except (OSError, ValueError, CheckpointError):
        return None
    planned = set(aug.steps_planned.values()) == {run.get("steps")}
    if aug.models != ("versions", "gan") or aug.seed_ != args.seed or not planned:
        return None
    return None if finished and aug.steps_done != aug.steps_planned else aug


def _fit_demo(
    train: CQTDataset, out: Path, args: argparse.Namespace, left: float, progress: bool
) -> tuple[Augmenter, str] | None:
    """The demo's augmenter: the finished fit of an earlier run with the same settings, or
    that run's interrupted fit continued, or a new one of ``--steps`` or of as many steps as
    fit in ``left`` seconds (less the report's reserve); once trained, saved with its
    :data:`DEMO_RUN_FILE`. With it, what the report says of its training time when it was
    not all in this run (or ``""``). None when interrupted (Ctrl-C)."""
    aug = _earlier_demo_fit(out, args, finished=True)
    if aug is not None:
        _announce_earlier(aug, out / DEMO_AUGMENTER, "reusing the finished", progress)
        return aug, " (the fit is an earlier run's, reused)"
    aug = _earlier_demo_fit(out, args, finished=False)
    origin = ""
    if aug is not None:
        _announce_earlier(aug, out / DEMO_PARTIAL, "continuing the interrupted", progress)
        origin = " (this run's; it continued an earlier run's interrupted fit)"
    else:
        aug = _new_demo_fit(train, out, args, left, progress)
    if not _fit_interruptibly(
        aug,
        train,
        out / DEMO_PARTIAL,
        resume=aug.is_fitted,
        every=None,
        minutes=DEFAULT_CHECKPOINT_MINUTES,
        again="the same command",
    ):
        return None
    saved = aug.save(out / DEMO_AUGMENTER)
    _write_demo_record(out, args, next(iter(aug.steps_planned.values())), _file_stamp(saved))
    (out / DEMO_PARTIAL).unlink(missing_ok=True)
    return aug, origin


def _announce_earlier(aug: Augmenter, path: Path, state: str, progress: bool) -> None:
    """Say which earlier fit (``path``) the demo goes on with, and show its progress bars."""
    print(
        f"2/4 {state} fit of an earlier run with these settings, {path} "
        f"({_steps_text(aug)}; --refit trains afresh)"
    )
    aug.progress = progress


def _write_demo_record(
    out: Path, args: argparse.Namespace, steps: int, stamp: list[int] | None
) -> None:
    """:data:`DEMO_RUN_FILE`: the settings and steps of the fit, and the stamp of its
    finished file (None while it trains)."""
    from covergan._io import atomic_write

    record = {"settings": _demo_settings(args), "steps": steps, "augmenter": stamp}
    with atomic_write(out / DEMO_RUN_FILE, text=True) as fh:
        json.dump(record, fh)


def _new_demo_fit(
    train: CQTDataset, out: Path, args: argparse.Namespace, left: float, progress: bool
) -> Augmenter:
    """The demo's untrained augmenter, of ``--steps`` or as many steps as ``left`` seconds
    fit, recorded in :data:`DEMO_RUN_FILE` as started (no finished file yet)."""
    what = "the version model (the default) and the class GAN beside it"
    (out / DEMO_RUN_FILE).unlink(missing_ok=True)  # never a record beside another fit
    (out / DEMO_PARTIAL).unlink(missing_ok=True)
    if args.steps is not None:
        steps = args.steps
        print(f"2/4 fitting {what}: {len(train)} training recordings, {steps} steps each")
    else:
        t0 = time.perf_counter()
        setup, per_step = _probe(train, args)
        left -= time.perf_counter() - t0 + setup + DEMO_RESERVE_S
        steps = _demo_steps(left, per_step)
        print(
            f"2/4 fitting {what}: {len(train)} training recordings; a probe took "
            f"{per_step:.2f} s per step of both, so {steps} steps each (+ {steps // 5} "
            f"pretraining) fit the {args.minutes:g}-minute budget (--steps N to choose)"
        )
        if left < DEMO_MIN_STEPS * 1.2 * per_step:
            print(
                f"note: the budget is spent; training the minimum {DEMO_MIN_STEPS} steps",
                file=sys.stderr,
            )
    _write_demo_record(out, args, steps, None)
    return _demo_augmenter(args, steps, progress=progress)


def _cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from covergan.data import split_recordings
    from covergan.datasets import chorale_covers
    from covergan.report import quality_report

    t0 = time.perf_counter()
    budget = 60.0 * args.minutes
    progress = not args.no_progress
    print("1/4 building the Bach-chorale demo data (cached after the first run)")
    data = chorale_covers(
        max_works=args.max_works,
        seed=args.seed,
        cache_dir=args.cache_dir,
        n_jobs=args.n_jobs,
        progress=progress,
    )
    print(f"    {len(data)} recordings of {data.n_songs} works ({time.perf_counter() - t0:.0f} s)")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    _plot_two_versions(data, out / "versions.png")

    train, heldout = split_recordings(data, holdout=1, min_recordings=3, seed=args.seed)
    fitted = _fit_demo(train, out, args, budget - (time.perf_counter() - t0), progress)
    if fitted is None:
        return EXIT_INTERRUPTED
    aug, origin = fitted

    print("3/4 sampling new versions of the rarest works")
    train_counts = list(aug.songs_.class_counts().values())
    # the upper quartile, so the rarest works get samples even when most have the median
    target = max(int(np.ceil(np.percentile(train_counts, 75))), min(train_counts) + 1)
    plan = aug.plan(target, max_ratio=4)
    needed = {s: n for s, n in plan.items() if n > 0}
    _check_sample_folder(out / "synthetic", needed, aug.config_)
    samples = aug.sample_many(needed, seed=args.seed)
    n_synth = sum(len(x) for x in samples.values())
    _write_samples(out / "synthetic", samples, args.seed, aug.config_)
    print(
        f"    {n_synth} synthetic versions for {len(needed)} works below {target} recordings, "
        f"in {out / 'synthetic'} (.npy files in the feature format, as 'covergan sample' writes)"
    )

    print("4/4 measuring quality against held-out recordings")
    report = quality_report(
        aug,
        train,
        heldout,
        out,
        embedding_steps=args.embedding_steps,
        seed=args.seed,
        title="covergan demo: Bach chorales",
        notes=[
            f"data: {len(data)} renders of {data.n_songs} chorale works (music21 corpus, "
            "additive synthesiser, random key/tempo/timbre)",
            f"training: {_steps_text(aug)}",
            *_short_fit_note(aug),
            f"plan({target}, max_ratio=4): {n_synth} synthetic versions for {len(needed)} works",
            "two real recordings of one work beside another work: [versions.png](versions.png)",
            f"wall time before the report {time.perf_counter() - t0:.0f} s{origin}",
        ],
    )
    _print_quality(report)
    for note in _short_fit_note(aug):
        print(f"note: {note}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    print(f"report: {report.markdown}")
    return 0


def _short_fit_note(aug: Augmenter) -> list[str]:
    """What the demo says of a fit shorter than the library's default (nothing otherwise)."""
    from covergan.augmenter import DEFAULT_STEPS

    steps = min(aug.steps_planned.values())
    if steps >= DEFAULT_STEPS:
        return []
    return [
        f"a short fit, {steps} steps of each model (to fit the time budget, or --steps): "
        f"Augmenter() trains {DEFAULT_STEPS}, and shorter fits grade lower (the lowest bins "
        f"are the last to learn); 'covergan demo --steps {DEFAULT_STEPS}' shows the default fit"
    ]


_COMMANDS = {
    "demo": _cmd_demo,
    "extract": _cmd_extract,
    "fit": _cmd_fit,
    "sample": _cmd_sample,
    "evaluate": _cmd_evaluate,
    "listen": _cmd_listen,
    "compare": _cmd_compare,
}


def _warning_printer(default: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints covergan's own warnings as one line,
    ``covergan: warning: <message>``, and hands any other to ``default``."""
    from covergan.errors import CoverGANWarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if not issubclass(category, CoverGANWarning):
            default(message, category, filename, lineno, file, line)
            return
        text = " ".join(str(message).split())
        print(f"covergan: warning: {text}", file=sys.stderr if file is None else file)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``covergan`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 done, 1 a covergan or file-system error (one line on stderr),
        2 bad usage (one line on stderr), 130 interrupted. ``--help`` and ``--version``
        print and return 0.
    """
    from covergan.errors import CoverGANError

    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            _trailing_songs(parser, args, extra)
    except SystemExit as done:  # --help, --version, or a usage error already printed
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        with warnings.catch_warnings():  # ours one line each, without the source line
            warnings.showwarning = _warning_printer(warnings.showwarning)
            return _COMMANDS[args.command](args)
    except (CoverGANError, _CLIError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        failures = getattr(error, "failures", None)  # an ExtractionError's, one per file
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            message = f"{message.rstrip(':')}: {' '.join(str(failures[0]).split())}{more}"
        print(f"covergan: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("covergan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _trailing_songs(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> None:
    """``covergan sample A.pt -n 2 SONG``: argparse (Python 3.11) fills the ``SONG``
    positional only before the first option and leaves later song ids in ``extra``; they are
    song ids all the same. Anything else left over is a usage error."""
    songs = args.command == "sample"
    bad = [e for e in extra if e.startswith("-") and not e[1:].isdigit()] if songs else extra
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    args.songs.extend(extra)


if __name__ == "__main__":
    raise SystemExit(main())
