"""Toy cover songs: synthetic melodies over chord progressions, in several versions.

Each song is a random tune (a melody over a diatonic chord progression, with a bass
line and sustained chords) in a few sections; each *version* of a song plays the same
tune transposed, at another tempo, with other instruments, another section order and
background noise, which are the changes cover-song identification must be invariant
to. Pure NumPy and fast: a handful of songs in a few versions render in about a second.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from covergan._checks import check_count
from covergan._io import atomic_write
from covergan.cqt import CQTExtractor
from covergan.data import CQTDataset
from covergan.datasets.synth import Timbre, render
from covergan.errors import ParameterError

__all__ = ["CoverSet", "toy_covers"]

AudioFormat = Literal["wav", "flac"]
_SUBTYPES = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_16")}

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
# Chord progressions (scale degrees, 0 = tonic), one chord per half bar, 2 bars a section.
_PROGRESSIONS = (
    (0, 5, 3, 4),
    (0, 3, 4, 0),
    (5, 3, 0, 4),
    (0, 4, 5, 3),
    (1, 4, 0, 0),
    (3, 4, 2, 5),
    (0, 2, 3, 4),
    (3, 0, 4, 4),
)
# Melody rhythms filling one chord (2 beats).
_RHYTHMS = ((2.0,), (1.0, 1.0), (1.0, 0.5, 0.5), (0.5, 0.5, 1.0), (1.5, 0.5), (0.5,) * 4)
_FORMS = ("AABA", "ABAB", "ABAC", "AABB", "ABCA", "ABBA")
_BEATS_PER_SECTION = 8.0
_MAX_TRANSPOSE = 6  # semitones, each way
_TEMPO_RANGE = (0.8, 1.25)  # factor on the song's tempo
_SNR_DB = (15.0, 40.0)  # background white noise, relative to the signal's RMS


@dataclass(frozen=True, eq=False)
class CoverSet:
    """Recordings in memory, each labelled with its song (work).

    Parameters
    ----------
    audio : list of np.ndarray [shape=(n_samples,), dtype=float32]
        Mono recordings.
    song_ids : list of str
        Song of each recording; usable as a folder name.
    names : list of str
        Unique recording names; usable as file names.
    sr : int
        Sample rate of every recording (Hz).

    Raises
    ------
    ParameterError
        The lists differ in length, a recording is not a finite 1-D float32 array,
        a name is repeated, a song id or name is empty or contains a path separator,
        or ``sr`` is not a positive integer.
    """

    audio: list[np.ndarray]
    song_ids: list[str]
    names: list[str]
    sr: int

    def __post_init__(self) -> None:
        n = len(self.audio)
        if len(self.song_ids) != n or len(self.names) != n:
            raise ParameterError(
                f"CoverSet got {n} recordings, {len(self.song_ids)} song ids and "
                f"{len(self.names)} names; they must match"
            )
        check_count("CoverSet.sr", self.sr, 1)
        for i, y in enumerate(self.audio):
            if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype != np.float32:
                got = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
                raise ParameterError(f"CoverSet.audio[{i}] must be a 1-D float32 array, got {got}")
            if not np.all(np.isfinite(y)):
                raise ParameterError(f"CoverSet.audio[{i}] ({self.names[i]!r}) has NaN or inf")
        for kind, values in (("song id", self.song_ids), ("name", self.names)):
            for v in values:
                _check_path_part(kind, v)
        seen: set[str] = set()
        for v in self.names:
            if v in seen:
                raise ParameterError(f"CoverSet names must be unique; {v!r} is repeated")
            seen.add(v)

    def __len__(self) -> int:
        return len(self.audio)

    def __repr__(self) -> str:
        songs = len(set(self.song_ids))
        seconds = sum(len(y) for y in self.audio) / self.sr
        return f"CoverSet({len(self)} recordings of {songs} songs, {seconds:.0f} s at {self.sr} Hz)"

    def write(self, root: str | os.PathLike[str], *, format: AudioFormat = "wav") -> list[Path]:
        """Write every recording to ``root/<song_id>/<name>.<format>``.

        The layout is the one :meth:`covergan.data.CQTDataset.from_folder` reads. Each
        file is written to a temporary file in its folder and renamed into place, so an
        interrupted write never leaves a truncated file.

        Parameters
        ----------
        root : str or PathLike
            Output folder (created if missing); existing files are overwritten.
        format : {"wav", "flac"}
            ``"wav"`` stores 32-bit float samples (exact); ``"flac"`` 16-bit integers.

        Returns
        -------
        list of Path
            The written files, in recording order.

        Raises
        ------
        ParameterError
            Unknown ``format``.
        """
        if format not in _SUBTYPES:
            raise ParameterError(f"format={format!r} must be one of {sorted(_SUBTYPES)}")
        root_path = Path(root).expanduser()
        paths = []
        for y, song, name in zip(self.audio, self.song_ids, self.names, strict=True):
            path = root_path / song / f"{name}.{format}"
            _write_audio(path, y, self.sr, format=format)
            paths.append(path)
        return paths

    def to_dataset(
        self, extractor: CQTExtractor | None = None, *, progress: bool = False, **kwargs: Any
    ) -> CQTDataset:
        """CQT features of every recording, as a :class:`~covergan.data.CQTDataset`.

        Parameters
        ----------
        extractor : CQTExtractor, optional
            Feature recipe; defaults to ``CQTExtractor()`` (the CQTNet recipe).
        progress : bool
            Show a tqdm bar.
        **kwargs
            Window settings passed to the dataset (``window``, ``crop``, ...).

        Returns
        -------
        CQTDataset
            One item per recording, ``features[i]`` float32 ``[n_bins, n_frames]``,
            with this set's song ids and names and the extractor's config.
        """
        from covergan._progress import progress_bar

        ext = extractor if extractor is not None else CQTExtractor()
        feats = [ext(y, self.sr) for y in progress_bar(self.audio, desc="CQT", enabled=progress)]
        return CQTDataset.from_arrays(
            feats, self.song_ids, names=self.names, config=ext.config, **kwargs
        )


def toy_covers(
    n_songs: int,
    versions: int,
    *,
    seed: int,
    long_tail: bool = False,
    duration: float = 12.0,
    sr: int = 22050,
) -> CoverSet:
    """Synthetic cover songs: ``n_songs`` tunes, each in several versions.

    A song is a random melody over a diatonic chord progression (major or minor key,
    90-140 beats per minute), with a bass line and sustained three-note chords, in
    sections of two 4/4 bars arranged in a form such as AABA. Every version plays the
    song's notes with

    - a key transposition of -6 to +6 semitones,
    - a tempo 0.8 to 1.25 times the song's,
    - three random instruments (:meth:`Timbre.random`) for melody, chords and bass,
    - a random section order in half of the versions,
    - white background noise 15 to 40 dB below the signal's RMS.

    Parameters
    ----------
    n_songs : int
        Number of songs (> 0).
    versions : int
        Versions per song (> 0); with ``long_tail=True`` the versions of the most
        covered song.
    seed : int
        Same seed, same audio, bit for bit. Song ``i`` and its version ``j`` depend only
        on ``(seed, i, j)``, so a smaller ``n_songs`` gives a prefix of the songs.
    long_tail : bool
        Give songs a long-tailed number of versions, as in real cover collections: the
        ``k``-th most covered song (in a seeded random order of songs) has
        ``max(1, versions // k)`` versions, so a few songs have many and most have 1 or 2.
    duration : float
        Approximate length in seconds of a version at the song's own tempo (> 0); the
        number of sections is chosen to fit it, with at least two.
    sr : int
        Sample rate in Hz (>= 8000).

    Returns
    -------
    CoverSet
        Recordings ordered by song then version; song ids ``"song000"``, ... and names
        ``"song000-v00"``, ...

    Raises
    ------
    ParameterError
        ``n_songs``, ``versions`` or ``seed`` is not a positive (``seed``: non-negative)
        integer, ``duration`` is not a positive finite number, or ``sr`` < 8000.

    Examples
    --------
    >>> covers = toy_covers(4, 3, seed=0)
    >>> len(covers), covers.song_ids[:4]
    (12, ['song000', 'song000', 'song000', 'song001'])
    >>> dataset = covers.to_dataset()
    """
    for name, value in (("n_songs", n_songs), ("versions", versions)):
        check_count(name, value, 1)
    check_count("seed", seed, 0)
    if (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or not math.isfinite(duration)
        or duration <= 0
    ):
        raise ParameterError(f"duration={duration!r} must be a positive number of seconds")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr < 8000:
        raise ParameterError(f"sr={sr!r} must be an integer sample rate >= 8000 Hz")

    counts = _version_counts(int(n_songs), int(versions), int(seed), long_tail)
    width = max(3, len(str(n_songs - 1)))
    audio: list[np.ndarray] = []
    song_ids: list[str] = []
    names: list[str] = []
    for i, count in enumerate(counts):
        song = _compose(np.random.default_rng([seed, 0, i]), float(duration))
        song_id = f"song{i:0{width}d}"
        for j in range(count):
            rng = np.random.default_rng([seed, 1, i, j])
            audio.append(_perform(song, rng, int(sr)))
            song_ids.append(song_id)
            names.append(f"{song_id}-v{j:02d}")
    return CoverSet(audio=audio, song_ids=song_ids, names=names, sr=int(sr))


def _write_audio(
    path: str | os.PathLike[str], y: np.ndarray, sr: int, *, format: AudioFormat = "wav"
) -> None:
    """Write mono audio atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : str or PathLike
        Destination; parent folders are created.
    y : np.ndarray [shape=(n_samples,)]
    sr : int
    format : {"wav", "flac"}
        32-bit float WAV or 16-bit FLAC.
    """
    import soundfile as sf

    container, subtype = _SUBTYPES[format]
    dest = Path(path)
    with atomic_write(dest) as fh:
        sf.write(fh, y, sr, format=container, subtype=subtype)


def _check_path_part(kind: str, value: object) -> None:
    if (
        not isinstance(value, str)
        or value in ("", ".", "..")
        or "/" in value
        or "\\" in value
        or "\0" in value
    ):
        raise ParameterError(
            f"{kind} {value!r} must be a non-empty string usable as a file name "
            "(no path separators)"
        )


def _version_counts(n_songs: int, versions: int, seed: int, long_tail: bool) -> list[int]:
    if not long_tail:
        return [versions] * n_songs
    rank = np.random.default_rng([seed, 2]).permutation(n_songs)  # 0 = most covered
    return [max(1, versions // (int(r) + 1)) for r in rank]


@dataclass(frozen=True)
class _Song:
    """A tune: notes in beats, relative to the tonic, per section."""

    sections: dict[str, np.ndarray]  # label -> [n, 4] (onset beat, beats, semitones, voice)
    form: str
    tonic: int  # MIDI pitch of the melody's tonic
    bpm: float


def _compose(rng: np.random.Generator, duration: float) -> _Song:
    scale = _MAJOR if rng.random() < 0.6 else _MINOR
    bpm = float(rng.uniform(90.0, 140.0))
    n_sections = max(2, round(duration / (_BEATS_PER_SECTION * 60.0 / bpm)))
    base = str(rng.choice(_FORMS))
    form = (base * math.ceil(n_sections / len(base)))[:n_sections]
    sections = {}
    for label in sorted(set(form)):
        sections[label] = _compose_section(rng, scale)
    return _Song(sections=sections, form=form, tonic=60 + int(rng.integers(-3, 4)), bpm=bpm)


def _degree(scale: Sequence[int], d: int) -> int:
    """Semitones above the tonic of scale degree ``d`` (any integer, octaves wrap)."""
    octave, step = divmod(d, 7)
    return 12 * octave + scale[step]


def _compose_section(rng: np.random.Generator, scale: Sequence[int]) -> np.ndarray:
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    rows: list[tuple[float, float, float, float]] = []
    melody = 7 + int(rng.integers(-2, 3))  # scale degree, around the upper tonic
    for c, root in enumerate(prog):
        t0 = 2.0 * c
        chord = (root, root + 2, root + 4)
        # Bass: root then fifth, an octave and a half below the tonic.
        rows.append((t0, 1.0, _degree(scale, root) - 24, 2))
        rows.append((t0 + 1.0, 1.0, _degree(scale, root + 4) - 24, 2))
        for d in chord:  # held chord, an octave below
            rows.append((t0, 2.0, _degree(scale, d) - 12, 1))
        rhythm = _RHYTHMS[int(rng.integers(len(_RHYTHMS)))]
        t = t0
        for k, beats in enumerate(rhythm):
            if k == 0:  # start each chord on the chord tone nearest the last note
                tones = [d + 7 * o for d in chord for o in range(-1, 3)]
                melody = min(tones, key=lambda d: (abs(d - melody), d))
            else:
                melody += int(rng.choice((-2, -1, -1, 1, 1, 2)))
            melody = int(np.clip(melody, 3, 12))
            rows.append((t, beats, _degree(scale, melody), 0))
            t += beats
    return np.array(rows, dtype=np.float64)


def _perform(song: _Song, rng: np.random.Generator, sr: int) -> np.ndarray:
    transpose = int(rng.integers(-_MAX_TRANSPOSE, _MAX_TRANSPOSE + 1))
    sec_per_beat = 60.0 / (song.bpm * float(rng.uniform(*_TEMPO_RANGE)))
    timbres = [Timbre.random(rng) for _ in range(3)]
    velocity = np.array([0.9, 0.45, 0.7]) * rng.uniform(0.8, 1.0, size=3)
    form = list(song.form)
    if rng.random() < 0.5:
        form = [form[int(k)] for k in rng.permutation(len(form))]
    blocks = []
    for s, label in enumerate(form):
        sec = song.sections[label].copy()
        sec[:, 0] += s * _BEATS_PER_SECTION
        blocks.append(sec)
    beats = np.concatenate(blocks)
    voice = beats[:, 3].astype(np.intp)
    notes = np.column_stack(
        [
            beats[:, 0] * sec_per_beat,
            beats[:, 1] * sec_per_beat * 0.95,  # slightly detached
            beats[:, 2] + song.tonic + transpose,
            velocity[voice],
            voice,
        ]
    )
    y = render(notes, timbres, sr=sr, seed=rng).astype(np.float64)
    rms = float(np.sqrt(np.mean(y**2)))
    snr_db = float(rng.uniform(*_SNR_DB))
    y += rng.standard_normal(y.size) * rms * 10.0 ** (-snr_db / 20.0)
    y *= 10.0 ** (-1.0 / 20.0) / float(np.max(np.abs(y)))
    return y.astype(np.float32)
