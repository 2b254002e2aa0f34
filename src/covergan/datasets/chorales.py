"""Bach chorale harmonisations as a cover-song dataset.

music21 ships about 400 of J. S. Bach's four-part chorales offline. Bach harmonised
many hymn tunes several times; the harmonisations of one tune are its "covers": the
same melody with other harmony, key, tempo and instrumentation. This module

1. parses the corpus once (cached as JSON note lists: music21 is slow),
2. groups the harmonisations into works by their soprano melody and drops duplicate
   encodings of one harmonisation (:func:`chorale_works`),
3. renders each harmonisation with the built-in synthesiser, with a random key,
   tempo and instruments per render (:func:`render_chorales`, cached as audio files),
4. extracts CQT features into a :class:`~covergan.data.CQTDataset`
   (:func:`chorale_covers`, cached by the extractor).

Grouping rule
-------------
The soprano is sampled on a quarter-note grid (the pitch sounding at each beat; passing
notes and ornaments between beats drop out), repeated pitches are merged (so split or
tied notes, and rhythm, do not matter) and the sequence of intervals is kept (so the key
does not matter). Two chorales belong to the same work when the edit distance between
their interval sequences is at most 30 % of the longer one; works are the connected
groups of that relation. Within a work, two harmonisations are duplicate encodings when
every voice's interval sequence (all notes, repeats merged) matches within 20 %; only
one is kept. Both thresholds sit in wide gaps of the corpus's distance histograms.

The music21 dependency is optional (``pip install "covergan[datasets]"``) and only
imported when a function here needs it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import logging
import os
import re
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from covergan._checks import check_count
from covergan._io import atomic_write
from covergan.cqt import CQTExtractor
from covergan.data import CQTDataset
from covergan.datasets.synth import SYNTH_VERSION, Timbre, render
from covergan.datasets.toy import _SUBTYPES, AudioFormat, _write_audio
from covergan.errors import CoverGANWarning, DatasetError, ParameterError

__all__ = [
    "ChoraleRender",
    "ChoraleWork",
    "chorale_covers",
    "chorale_works",
    "default_cache_dir",
    "render_chorales",
]

logger = logging.getLogger(__name__)

#: Bumped when parsing changes its output (part of the score cache folder name).
PARSE_VERSION = 1
#: Bumped when rendering changes its output (part of the audio cache key).
RENDER_VERSION = 1

_MELODY_THRESHOLD = 0.3  # normalised soprano edit distance joining two chorales
_DUPLICATE_THRESHOLD = 0.2  # every voice within this distance: duplicate encoding
_BASE_BPM = 72.0  # beats (time-signature pulses) per minute before randomisation
_TEMPO_SPREAD = 0.3  # tempo factor uniform in [1 - spread, 1 + spread]
_MAX_TRANSPOSE = 6  # semitones, each way
_FERMATA_HOLD = (0.5, 1.5)  # extra beats held at each fermata
_MAX_REST = 2.0  # beats; longer all-voice rests (instrumental interludes) are shortened
_GATE = 0.92  # fraction of a note's written length that is held (articulation)
_SHARED_TIMBRE_P = 0.5  # probability that one instrument plays all voices
_VOICE = re.compile(r"(soprano|alto|tenor|bass)\b")
_INSTALL_HINT = 'pip install "covergan[datasets]"'


@dataclass(frozen=True)
class ChoraleWork:
    """One chorale tune and its harmonisations in the corpus.

    Attributes
    ----------
    song_id : str
        Readable id: the corpus name of the first harmonisation in BWV order
        (e.g. ``"bwv244.15"``).
    title : str or None
        Text incipit of the first harmonisation that has one in music21's chorale
        list (e.g. ``"O Haupt voll Blut und Wunden"``); tunes are sung to several texts.
    harmonisations : tuple of str
        Corpus names of the distinct harmonisations, in BWV order.
    paths : tuple of Path
        Their MusicXML files, aligned with ``harmonisations``.
    duplicates : tuple of str
        Other encodings of the same harmonisations that were dropped.
    """

    song_id: str
    title: str | None
    harmonisations: tuple[str, ...]
    paths: tuple[Path, ...]
    duplicates: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.harmonisations)


@dataclass(frozen=True)
class ChoraleRender:
    """One rendered harmonisation.

    Attributes
    ----------
    path : Path
        The audio file (in the cache).
    song_id : str
        Work of the harmonisation (:attr:`ChoraleWork.song_id`).
    name : str
        Unique recording name, ``"<harmonisation>-r<render>"``.
    harmonisation : str
        Corpus name of the score.
    render : int
        Render index (0 to ``renders - 1``).
    seconds : float
        Length of the audio.
    transpose : int
        Key change in semitones.
    tempo : float
        Beats (time-signature pulses) per minute.
    """

    path: Path
    song_id: str
    name: str
    harmonisation: str
    render: int
    seconds: float
    transpose: int
    tempo: float


def default_cache_dir() -> Path:
    """``$COVERGAN_CACHE`` if set, else ``~/.cache/covergan``."""
    env = os.environ.get("COVERGAN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "covergan"


def chorale_works(
    *,
    max_works: int | None = None,
    include_singles: bool | int = False,
    files: Sequence[str | os.PathLike[str]] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> list[ChoraleWork]:
    """Group Bach chorale harmonisations into works (tunes); no audio is made.

    The first call parses the corpus with music21 (a few minutes on two cores; use
    ``n_jobs``) and caches one JSON note list per score; later calls read the cache.
    See the module docstring for the grouping and duplicate rules.

    Parameters
    ----------
    max_works : int, optional
        Keep only the first ``max_works`` works with two or more harmonisations, in
        BWV order of their song ids (> 0).
    include_singles : bool or int
        Also return tunes with a single harmonisation (as one-harmonisation works),
        after the others: ``True`` for all, an int ``n`` for the first ``n``. They
        are distractors for retrieval evaluation.
    files : sequence of str or PathLike, optional
        Restrict the corpus: music21 corpus names (``"bwv270"``) or paths to your own
        MusicXML chorales. By default every MusicXML file of music21's Bach corpus.
        Scores without four vocal parts (Soprano, Alto, Tenor, Bass, or exactly four
        unnamed parts) are skipped.
    cache_dir : str or PathLike, optional
        Cache root; defaults to :func:`default_cache_dir`. Scores go to
        ``<cache_dir>/chorales/scores-*``.
    n_jobs : int
        Parallel parsing processes (joblib semantics, ``-1`` = all cores).
    progress : bool
        Show a tqdm bar while parsing.

    Returns
    -------
    list of ChoraleWork
        Works with 2+ harmonisations in BWV order, then the singles asked for.

    Raises
    ------
    ImportError
        music21 is not installed.
    ParameterError
        Bad ``max_works``, ``include_singles`` or ``n_jobs``; ``files`` is empty,
        names a corpus entry that does not exist or a missing file, or two of its
        files have the same name.

    Warns
    -----
    CoverGANWarning
        A file named in ``files`` is not a four-part chorale or cannot be parsed
        (it is skipped).
    """
    check_count("max_works", max_works, 1, optional=True)
    if isinstance(include_singles, bool):
        n_singles: int | None = None if include_singles else 0
    elif isinstance(include_singles, (int, np.integer)) and include_singles >= 0:
        n_singles = int(include_singles)
    else:
        raise ParameterError(
            f"include_singles={include_singles!r} must be a bool or a non-negative int"
        )
    _check_n_jobs(n_jobs)
    m21 = _require_music21()
    paths = _resolve_files(files, m21)
    cache = _cache_root(cache_dir)
    scores = _parse_all(paths, cache, m21, n_jobs=n_jobs, progress=progress, warn=files is not None)
    works, singles, n_dup = _group_works(scores, _titles(m21), cache)
    logger.info(
        "chorales: %d works with 2+ harmonisations, %d single harmonisations, "
        "%d duplicate encodings dropped, %d files skipped",
        len(works),
        len(singles),
        n_dup,
        len(paths) - len(scores),
    )
    if max_works is not None:
        works = works[:max_works]
    return works + (singles if n_singles is None else singles[:n_singles])


def render_chorales(
    works: Iterable[ChoraleWork],
    *,
    renders: int = 1,
    seed: int = 0,
    sr: int = 22050,
    format: AudioFormat = "flac",
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> list[ChoraleRender]:
    """Render every harmonisation of ``works`` to audio files (cached).

    Each render draws, from ``(seed, harmonisation, render index)`` only, a key change
    of -6 to +6 semitones, a tempo of 72 beats per minute times 0.7 to 1.3, a hold of
    0.5 to 1.5 extra beats at each fermata, voice loudness, and instruments
    (:meth:`Timbre.random`): one for all four voices in half of the renders, one per
    voice otherwise. Repeats were expanded when the score was parsed; the leading
    silence of scores whose voices enter late is removed and all-voice rests longer
    than two beats (instrumental interludes) are shortened to two beats.

    Parameters
    ----------
    works : iterable of ChoraleWork
        From :func:`chorale_works`.
    renders : int
        Renders per harmonisation (> 0).
    seed : int
        Same seed, same audio (>= 0). A render does not depend on which other works
        are rendered, so subsets share cache entries.
    sr : int
        Sample rate in Hz (>= 8000).
    format : {"flac", "wav"}
        Audio file format (16-bit FLAC or 32-bit float WAV).
    cache_dir : str or PathLike, optional
        Cache root (default :func:`default_cache_dir`); audio goes to
        ``<cache_dir>/chorales/audio/<key>/``. Files are written atomically.
    n_jobs : int
        Parallel rendering processes (joblib semantics).
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    list of ChoraleRender
        Ordered by work, harmonisation, then render index.

    Raises
    ------
    ImportError
        music21 is not installed.
    ParameterError
        Bad ``renders``, ``seed``, ``sr``, ``format`` or ``n_jobs``, or ``works``
        contains something other than :class:`ChoraleWork`.
    """
    check_count("renders", renders, 1)
    check_count("seed", seed, 0)
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr < 8000:
        raise ParameterError(f"sr={sr!r} must be an integer sample rate >= 8000 Hz")
    if format not in _SUBTYPES:
        raise ParameterError(f"format={format!r} must be one of {sorted(_SUBTYPES)}")
    _check_n_jobs(n_jobs)
    work_list = list(works)
    for w in work_list:
        if not isinstance(w, ChoraleWork):
            raise ParameterError(f"works must contain ChoraleWork items, got {w!r}")
    cache = _cache_root(cache_dir)
    key = json.dumps(
        {"synth": SYNTH_VERSION, "render": RENDER_VERSION, "seed": int(seed), "sr": int(sr)},
        sort_keys=True,
    )
    audio_dir = cache / "chorales" / "audio" / hashlib.sha256(key.encode()).hexdigest()[:16]

    jobs = []
    for w in work_list:
        for name, path in zip(w.harmonisations, w.paths, strict=True):
            score = _parse_cached(path, cache, None)
            for k in range(renders):
                dest = audio_dir / f"{name}-r{k}-{score['digest'][:8]}.{format}"
                jobs.append(_Job(w.song_id, name, k, score, dest))

    from joblib import Parallel, delayed

    from covergan._progress import progress_bar

    done: dict[Path, tuple[float, int, float]] = {}
    todo = [j for j in jobs if not j.dest.exists()]
    if n_jobs != 1 and len(todo) > 1:
        outputs = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_render_cached)(j.score, int(seed), j.render, int(sr), format, j.dest)
            for j in todo
        )
        bar = progress_bar(outputs, total=len(todo), desc="render", unit="score", enabled=progress)
        for job, out in zip(todo, bar, strict=True):
            done[job.dest] = out
        progress = False
    results = []
    for job in progress_bar(jobs, desc="render", unit="score", enabled=progress):
        out = done.get(job.dest)
        if out is None:
            out = _render_cached(job.score, int(seed), job.render, int(sr), format, job.dest)
        seconds, transpose, tempo = out
        results.append(
            ChoraleRender(
                path=job.dest,
                song_id=job.song_id,
                name=f"{job.harmonisation}-r{job.render}",
                harmonisation=job.harmonisation,
                render=job.render,
                seconds=seconds,
                transpose=transpose,
                tempo=tempo,
            )
        )
    return results


def chorale_covers(
    *,
    max_works: int | None = None,
    include_singles: bool | int = False,
    renders: int = 1,
    seed: int = 0,
    extractor: CQTExtractor | None = None,
    files: Sequence[str | os.PathLike[str]] | None = None,
    format: AudioFormat = "flac",
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    **kwargs: Any,
) -> CQTDataset:
    """Bach chorale harmonisations, synthesised, as a CQT cover-song dataset.

    Runs :func:`chorale_works`, :func:`render_chorales` (at the extractor's sample
    rate) and :meth:`CQTExtractor.extract_many`, each cached under ``cache_dir``. The
    whole corpus gives about 70 works with 2 to 12 harmonisations each (a long tail)
    and about 150 single harmonisations usable as distractors.

    Parameters
    ----------
    max_works, include_singles, files
        Which works; see :func:`chorale_works`.
    renders, seed, format
        How each harmonisation is rendered; see :func:`render_chorales`.
    extractor : CQTExtractor, optional
        Feature recipe; defaults to ``CQTExtractor()`` (the CQTNet recipe).
    cache_dir : str or PathLike, optional
        Cache root (default :func:`default_cache_dir`): scores and audio under
        ``<cache_dir>/chorales``, features under ``<cache_dir>/features``.
    n_jobs : int
        Parallel processes for parsing, rendering and extraction.
    progress : bool
        Show tqdm bars.
    **kwargs
        Window settings passed to the dataset (``window``, ``crop``, ...).

    Returns
    -------
    CQTDataset
        One item per render: features float32 ``[n_bins, n_frames]``, song id
        :attr:`ChoraleWork.song_id`, name ``"<harmonisation>-r<render>"``.

    Raises
    ------
    ImportError
        music21 is not installed (``pip install "covergan[datasets]"``).
    DatasetError
        The selection contains no chorale.
    ParameterError
        See :func:`chorale_works` and :func:`render_chorales`.
    ExtractionError
        A rendered file could not be turned into features.

    Examples
    --------
    >>> ds = chorale_covers(max_works=10, renders=2, n_jobs=2)  # doctest: +SKIP
    >>> ds.n_songs, len(ds)  # doctest: +SKIP
    """
    ext = extractor if extractor is not None else CQTExtractor()
    if not isinstance(ext, CQTExtractor):
        raise ParameterError(f"extractor must be a CQTExtractor, got {type(ext).__name__}")
    works = chorale_works(
        max_works=max_works,
        include_singles=include_singles,
        files=files,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
    )
    if not works:
        raise DatasetError(
            "no chorale works to render: the selection has no tune with two or more "
            "harmonisations (pass include_singles=True to keep single ones)"
        )
    rendered = render_chorales(
        works,
        renders=renders,
        seed=seed,
        sr=ext.config.sr,
        format=format,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=progress,
    )
    result = ext.extract_many(
        [r.path for r in rendered],
        n_jobs=n_jobs,
        cache_dir=_cache_root(cache_dir) / "features",
        progress=progress,
        on_error="raise",
    )
    feats = [f for f in result.features if f is not None]
    return CQTDataset.from_arrays(
        feats,
        [r.song_id for r in rendered],
        names=[r.name for r in rendered],
        config=ext.config,
        **kwargs,
    )


# --------------------------------------------------------------------------------------
# Corpus access and parsing
# --------------------------------------------------------------------------------------


def _require_music21() -> ModuleType:
    try:
        return importlib.import_module("music21")
    except ImportError as error:
        raise ImportError(
            "the chorale dataset needs the optional dependency music21; install it with "
            f"{_INSTALL_HINT}"
        ) from error


def _check_n_jobs(n_jobs: object) -> None:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ParameterError(f"n_jobs={n_jobs!r} must be a non-zero integer (-1 = all cores)")


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting bwv2 before bwv10 and bwv244.3 before bwv244.10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _corpus_paths(m21: ModuleType) -> dict[str, Path]:
    """MusicXML files of music21's Bach corpus, by stem."""
    paths = m21.corpus.getComposer("bach")
    return {Path(p).stem: Path(p) for p in paths if Path(p).suffix in (".mxl", ".xml", ".musicxml")}


def _resolve_files(files: Sequence[str | os.PathLike[str]] | None, m21: ModuleType) -> list[Path]:
    corpus = _corpus_paths(m21)
    if files is None:
        return [corpus[k] for k in sorted(corpus, key=_natural_key)]
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if len(files) == 0:
        raise ParameterError("files=[] selects no chorale; pass None for the whole corpus")
    out: dict[str, Path] = {}  # by stem: it names the harmonisation
    for f in files:
        p = Path(f).expanduser()
        if p.suffix in (".mxl", ".xml", ".musicxml") and p.is_file():
            pass
        elif str(f) in corpus:
            p = corpus[str(f)]
        elif p.suffix:
            raise ParameterError(f"chorale file not found: {p}")
        else:
            close = difflib.get_close_matches(str(f), list(corpus), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ParameterError(f"{str(f)!r} is not in music21's Bach corpus{hint}")
        if p.stem in out and out[p.stem].resolve() != p.resolve():
            raise ParameterError(
                f"two chorale files are named {p.stem!r} ({out[p.stem]} and {p}); "
                "file names must be unique"
            )
        out[p.stem] = p
    return list(out.values())


def _parse_all(
    paths: Sequence[Path],
    cache: Path,
    m21: ModuleType,
    *,
    n_jobs: int,
    progress: bool,
    warn: bool,
) -> list[dict[str, Any]]:
    """Parsed scores (cached), skipping non-chorales and unreadable files.

    Skipped files are logged, or reported with a warning when ``warn`` (files the user
    named explicitly).
    """
    from joblib import Parallel, delayed

    from covergan._progress import progress_bar

    version = str(m21.__version__)
    todo = [p for p in paths if not _score_cache_file(p, cache, version).exists()]
    if n_jobs != 1 and len(todo) > 1:
        outputs = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_parse_cached)(p, cache, version) for p in todo
        )
        for _ in progress_bar(
            outputs, total=len(todo), desc="parse", unit="score", enabled=progress
        ):
            pass
        progress = False
    scores = []
    for p in progress_bar(paths, desc="parse", unit="score", enabled=progress and bool(todo)):
        score = _parse_cached(p, cache, version)
        if "skip" in score and warn:
            warnings.warn(f"skipping {p}: {score['skip']}", CoverGANWarning, stacklevel=3)
        elif "skip" in score:
            logger.info("skipping %s: %s", p.name, score["skip"])
        else:
            scores.append({**score, "source": str(p)})
    return scores


def _score_cache_file(path: Path, cache: Path, version: str) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    folder = cache / "chorales" / f"scores-v{PARSE_VERSION}-music21-{version}"
    return folder / f"{path.stem}-{digest[:16]}.json"


def _parse_cached(path: Path, cache: Path, version: str | None) -> dict[str, Any]:
    """The parsed score of ``path`` from the cache, parsing and caching it if needed."""
    if version is None:
        version = str(_require_music21().__version__)
    dest = _score_cache_file(path, cache, version)
    if dest.exists():
        data: dict[str, Any] = json.loads(dest.read_text())
        return data
    data = _parse_score(path)
    data["digest"] = dest.stem.rsplit("-", 1)[1]
    _write_json(dest, data)
    return data


def _parse_score(path: Path) -> dict[str, Any]:
    """Note lists of the vocal parts of one score, repeats expanded, ties merged."""
    m21 = _require_music21()
    info: dict[str, Any] = {"name": path.stem, "n_parts": 0}
    try:
        score = m21.converter.parse(str(path))
    except Exception as error:  # music21 raises many types on unreadable files
        info["skip"] = f"music21 could not parse it: {type(error).__name__}: {error}"
        return info
    parts = list(score.parts)
    info["n_parts"] = len(parts)
    vocal = [p for p in parts if _VOICE.match((p.partName or "").strip().lower())]
    if not vocal and len(parts) == 4 and not any(p.partName for p in parts):
        vocal = parts
    if len(vocal) < 4:
        info["skip"] = f"not a four-part chorale (parts: {[p.partName for p in parts]})"
        return info
    vocal_ids = {id(p) for p in vocal}
    for p in parts:
        if id(p) not in vocal_ids:
            score.remove(p)
    expanded = False
    if _has_repeats(score, m21):
        try:
            score = score.expandRepeats()
            expanded = True
        except Exception as error:  # music21 raises several types for odd repeat marks
            logger.warning("%s: repeats not expanded (%s)", path.name, error)
    voices = []
    fermatas: set[float] = set()
    for part in score.parts:
        notes, ends = _part_notes(part, m21)
        voices.append(notes)
        fermatas.update(ends)
    ts = score.parts[0].recurse().getElementsByClass(m21.meter.TimeSignature).first()
    info.update(
        parts=[p.partName for p in score.parts],
        voices=voices,
        fermatas=sorted(fermatas),
        beat=float(ts.beatDuration.quarterLength) if ts is not None else 1.0,
        time_signature=ts.ratioString if ts is not None else None,
        repeats_expanded=expanded,
    )
    if not all(voices):
        info["skip"] = "a vocal part has no notes"
    return info


def _has_repeats(score: Any, m21: ModuleType) -> bool:
    for m in score.parts[0].getElementsByClass(m21.stream.Measure):
        for b in (m.leftBarline, m.rightBarline):
            if isinstance(b, m21.bar.Repeat):
                return True
    return bool(score.recurse().getElementsByClass(m21.spanner.RepeatBracket))


def _part_notes(part: Any, m21: ModuleType) -> tuple[list[list[float]], list[float]]:
    """``[onset, length, midi]`` rows (quarter notes) with ties merged, and fermata ends."""
    rows: list[list[float]] = []
    held: dict[float, int] = {}  # pitch -> row of a tie still open
    fermata_rows: set[int] = set()
    for n in part.flatten().notes:
        if n.duration.isGrace:
            continue
        onset, length = float(n.offset), float(n.quarterLength)
        tie = n.tie.type if n.tie is not None else None
        has_fermata = any(isinstance(e, m21.expressions.Fermata) for e in n.expressions)
        for pitch in n.pitches:
            midi = float(pitch.ps)
            row = held.get(midi)
            if tie in ("stop", "continue") and row is not None:
                rows[row][1] = onset + length - rows[row][0]
            else:
                row = len(rows)
                rows.append([onset, length, midi])
            if tie in ("start", "continue"):
                held[midi] = row
            else:
                held.pop(midi, None)
            if has_fermata:
                fermata_rows.add(row)
    return rows, [rows[r][0] + rows[r][1] for r in sorted(fermata_rows)]


def _titles(m21: ModuleType) -> dict[str, str]:
    """Text incipit per corpus name, from music21's list of the 371 chorales."""
    try:
        listing = m21.corpus.chorales.ChoraleListRKBWV().byBWV
    except Exception:  # a metadata nicety: never fail a dataset over it
        return {}
    return {f"bwv{bwv}": str(entry["title"]) for bwv, entry in listing.items()}


# --------------------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------------------


def _group_works(
    scores: Sequence[dict[str, Any]], titles: dict[str, str], cache: Path
) -> tuple[list[ChoraleWork], list[ChoraleWork], int]:
    """Works with 2+ harmonisations, single ones, and the number of duplicates dropped."""
    by_name = {s["name"]: s for s in scores}
    works: list[ChoraleWork] = []
    singles: list[ChoraleWork] = []
    n_dup = 0
    for kept, dropped in _partition(scores, titles, cache):
        n_dup += len(dropped)
        work = ChoraleWork(
            song_id=kept[0],
            title=next((titles[n] for n in kept if n in titles), None),
            harmonisations=tuple(kept),
            paths=tuple(Path(by_name[n]["source"]) for n in kept),
            duplicates=tuple(dropped),
        )
        (works if len(kept) > 1 else singles).append(work)
    works.sort(key=lambda w: _natural_key(w.song_id))
    singles.sort(key=lambda w: _natural_key(w.song_id))
    return works, singles, n_dup


def _partition(
    scores: Sequence[dict[str, Any]], titles: dict[str, str], cache: Path
) -> list[tuple[list[str], list[str]]]:
    """Per work: the names kept and the duplicate encodings dropped, in BWV order.

    All-pairs edit distances take seconds, so the result is cached, keyed by the
    scores' content and the rule's parameters.
    """
    names = sorted((s["name"] for s in scores), key=_natural_key)
    key = json.dumps(
        {
            "parse": PARSE_VERSION,
            "melody": _MELODY_THRESHOLD,
            "duplicate": _DUPLICATE_THRESHOLD,
            "scores": sorted([s["name"], s["digest"]] for s in scores),
            "titled": [n for n in names if n in titles],
        }
    )
    dest = cache / "chorales" / f"works-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if dest.exists():
        return [(list(k), list(d)) for k, d in json.loads(dest.read_text())]

    melodies = [_contour(np.asarray(s["voices"][0], dtype=np.float64)) for s in scores]
    partition = []
    for members in _connected_groups(melodies, _MELODY_THRESHOLD):
        # Keep the canonical encoding of duplicates: one in the 371-chorale list, with
        # fewest parts, first in BWV order.
        members = sorted(
            members,
            key=lambda i: (
                scores[i]["name"] not in titles,
                scores[i]["n_parts"],
                _natural_key(scores[i]["name"]),
            ),
        )
        kept: list[int] = []
        dropped: list[int] = []
        for i in members:
            if any(_same_harmonisation(scores[i], scores[j]) for j in kept):
                dropped.append(i)
            else:
                kept.append(i)
        partition.append(
            (
                sorted((scores[i]["name"] for i in kept), key=_natural_key),
                sorted((scores[i]["name"] for i in dropped), key=_natural_key),
            )
        )
    _write_json(dest, partition)
    return partition


def _write_json(dest: Path, data: Any) -> None:
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    with atomic_write(dest, text=True) as fh:
        json.dump(data, fh)


def _contour(notes: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Intervals between the distinct successive pitches sounding on a beat grid."""
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    on, off, pitch = notes[:, 0], notes[:, 0] + notes[:, 1], notes[:, 2]
    order = np.lexsort((-pitch, on))  # top pitch first among notes sharing an onset
    on, off, pitch = on[order], off[order], pitch[order]
    first = np.r_[True, on[1:] != on[:-1]]
    on, off, pitch = on[first], off[first], pitch[first]
    grid = np.arange(on[0], off.max(), step)
    k = np.searchsorted(on, grid, side="right") - 1
    seq = pitch[k[off[k] > grid]]
    return _intervals(seq)


def _voice_intervals(notes: np.ndarray) -> np.ndarray:
    """Intervals between the distinct successive (top) pitches of every note."""
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((-notes[:, 2], notes[:, 0]))
    on, pitch = notes[order, 0], notes[order, 2]
    return _intervals(pitch[np.r_[True, on[1:] != on[:-1]]])


def _intervals(seq: np.ndarray) -> np.ndarray:
    if len(seq) == 0:
        return np.zeros(0, dtype=np.int64)
    seq = seq[np.r_[True, seq[1:] != seq[:-1]]]
    return np.round(np.diff(seq)).astype(np.int64)


def _same_harmonisation(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if len(a["voices"]) != len(b["voices"]):
        return False
    for va, vb in zip(a["voices"], b["voices"], strict=True):
        x = _voice_intervals(np.asarray(va, dtype=np.float64))
        y = _voice_intervals(np.asarray(vb, dtype=np.float64))
        if _edit_distances(x, [y])[0] > _DUPLICATE_THRESHOLD:
            return False
    return True


def _edit_distances(a: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """Levenshtein distance from ``a`` to each of ``others``, over their longer length.

    One dynamic-programming row per element of ``a``, vectorised over ``others``.
    """
    if not others:
        return np.zeros(0)
    lengths = np.array([len(b) for b in others])
    m = int(lengths.max())
    padded = np.zeros((len(others), m), dtype=np.int64)
    valid = np.zeros((len(others), m), dtype=bool)
    for i, b in enumerate(others):
        padded[i, : len(b)] = b
        valid[i, : len(b)] = True
    cols = np.arange(m + 1)
    row = np.tile(cols, (len(others), 1))
    for i, x in enumerate(a, start=1):
        cost = (padded != x) | ~valid
        best = np.minimum(row[:, :-1] + cost, row[:, 1:] + 1)  # substitute, delete
        # Insertions chain along the row: cur[j] = min_k best[k] + (j - k).
        shifted = np.concatenate([np.full((len(others), 1), i), best], axis=1) - cols
        row = np.minimum.accumulate(shifted, axis=1) + cols
    dist = row[np.arange(len(others)), lengths]
    out: np.ndarray = dist / np.maximum(np.maximum(lengths, len(a)), 1)
    return out


def _connected_groups(seqs: Sequence[np.ndarray], threshold: float) -> list[list[int]]:
    """Connected components of the graph joining sequences within ``threshold``."""
    parent = list(range(len(seqs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lengths = np.array([len(s) for s in seqs])
    for i in range(len(seqs)):
        # The distance is at least the length difference: skip pairs that cannot match.
        longer = np.maximum(lengths[i + 1 :], lengths[i])
        cand = (
            i
            + 1
            + np.flatnonzero(
                np.abs(lengths[i + 1 :] - lengths[i]) <= threshold * np.maximum(longer, 1)
            )
        )
        if len(cand) == 0:
            continue
        d = _edit_distances(seqs[i], [seqs[int(j)] for j in cand])
        for j in cand[d <= threshold]:
            parent[find(int(j))] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(seqs)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


class _Job(NamedTuple):
    song_id: str
    harmonisation: str
    render: int
    score: dict[str, Any]
    dest: Path


@dataclass(frozen=True)
class _Plan:
    """Everything random about one render, drawn before any audio is made."""

    transpose: int
    tempo: float  # beats per minute
    hold: float  # extra beats at each fermata
    timbres: tuple[Timbre, ...]
    velocities: tuple[float, ...]
    shared: bool  # one timbre for all voices


def _plan(score: dict[str, Any], seed: int, k: int) -> tuple[_Plan, np.random.Generator]:
    rng = np.random.default_rng([seed, zlib.crc32(score["name"].encode()), k])
    n_voices = len(score["voices"])
    transpose = int(rng.integers(-_MAX_TRANSPOSE, _MAX_TRANSPOSE + 1))
    tempo = _BASE_BPM * float(rng.uniform(1.0 - _TEMPO_SPREAD, 1.0 + _TEMPO_SPREAD))
    hold = float(rng.uniform(*_FERMATA_HOLD))
    shared = bool(rng.random() < _SHARED_TIMBRE_P)
    timbres = tuple(Timbre.random(rng) for _ in range(1 if shared else n_voices))
    lower = rng.uniform(0.6, 0.85, size=n_voices - 1)
    velocities = (float(rng.uniform(0.85, 1.0)), *(float(v) for v in lower))
    return _Plan(transpose, tempo, hold, timbres, velocities, shared), rng


def _render_cached(
    score: dict[str, Any], seed: int, k: int, sr: int, fmt: AudioFormat, dest: Path
) -> tuple[float, int, float]:
    """Render (unless cached) one harmonisation; return (seconds, transpose, tempo)."""
    plan, rng = _plan(score, seed, k)
    if dest.exists():
        import soundfile as sf

        seconds = float(sf.info(str(dest)).duration)
    else:
        y = _render_score(score, plan, sr, rng)
        _write_audio(dest, y, sr, format=fmt)
        seconds = len(y) / sr
    return seconds, plan.transpose, plan.tempo


def _render_score(
    score: dict[str, Any], plan: _Plan, sr: int, rng: np.random.Generator
) -> np.ndarray:
    voices = [np.asarray(v, dtype=np.float64).reshape(-1, 3) for v in score["voices"]]
    beat = float(score["beat"])
    onsets = np.concatenate([v[:, 0] for v in voices])
    offsets = np.concatenate([v[:, 0] + v[:, 1] for v in voices])
    warp = _time_warp(onsets, offsets, np.asarray(score["fermatas"]), beat, plan.hold)
    sec_per_quarter = 60.0 / (plan.tempo * beat)
    rows = []
    for i, v in enumerate(voices):
        start = warp(v[:, 0]) * sec_per_quarter
        end = warp(v[:, 0] + v[:, 1]) * sec_per_quarter
        rows.append(
            np.column_stack(
                [
                    start,
                    np.maximum((end - start) * _GATE, 1e-3),
                    v[:, 2] + plan.transpose,
                    np.full(len(v), plan.velocities[i]),
                    np.full(len(v), 0 if plan.shared else i),
                ]
            )
        )
    return render(np.concatenate(rows), plan.timbres, sr=sr, seed=rng)


def _time_warp(
    onsets: np.ndarray, offsets: np.ndarray, fermatas: np.ndarray, beat: float, hold: float
) -> Callable[[np.ndarray], np.ndarray]:
    """Map score time (quarters) to performance time (quarters from the first note).

    Adds ``hold`` beats at each fermata (notes ending there last longer, notes starting
    there start later) and shortens all-voice rests longer than ``_MAX_REST`` beats.
    """
    order = np.argsort(onsets, kind="stable")
    on, off = onsets[order], offsets[order]
    covered = np.maximum.accumulate(off)[:-1]
    gap = on[1:] - covered
    long_gap = gap > _MAX_REST * beat
    cut_at = on[1:][long_gap]
    cut = np.concatenate([[0.0], np.cumsum(gap[long_gap] - _MAX_REST * beat)])
    fermatas = np.sort(fermatas)
    start = float(on[0])

    def warp(q: np.ndarray) -> np.ndarray:
        held = hold * beat * np.searchsorted(fermatas, q, side="right")
        removed = cut[np.searchsorted(cut_at, q, side="right")]
        out: np.ndarray = q - start + held - removed
        return out

    return warp
