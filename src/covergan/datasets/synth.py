"""A small additive (wavetable) synthesiser for the built-in datasets.

Notes are rendered from a per-instrument :class:`Timbre` (harmonic amplitudes, a linear
ADSR envelope, optional vibrato, a detuned second oscillator and breath noise) into mono
float32 audio. It is a wavetable synthesiser: each timbre's single-cycle waveform is
tabulated once (band-limited so that no partial reaches the Nyquist frequency) and read
with linear interpolation, so the cost per sample does not grow with the number of
harmonics; the tone of each distinct (instrument, pitch) pair is computed once, in
vectorised NumPy, and every note adds an enveloped slice of it. A 60 s four-voice
chorale at 22,050 Hz renders in a fraction of a second.

Pitches are MIDI note numbers (floats allowed; 69 = A4 = 440 Hz).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from covergan._checks import check_count
from covergan.errors import ParameterError

__all__ = ["Note", "Timbre", "as_generator", "midi_to_hz", "render"]

#: Bumped whenever a change here changes rendered audio (part of audio cache keys).
SYNTH_VERSION = 1

_TABLE_SIZE = 4096
_MAX_HARMONICS = 64


def midi_to_hz(pitch: float | np.ndarray) -> np.ndarray:
    """Frequency in Hz of MIDI pitch(es) in twelve-tone equal temperament (A4 = 69 = 440 Hz).

    Parameters
    ----------
    pitch : float or np.ndarray [shape=(...)]

    Returns
    -------
    np.ndarray [shape=(...), dtype=float64]
    """
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


class Note(NamedTuple):
    """One note event.

    Attributes
    ----------
    onset : float
        Start time in seconds (>= 0).
    duration : float
        Time the note is held, in seconds (> 0); the timbre's release follows it.
    pitch : float
        MIDI pitch; fractional values are microtonal.
    velocity : float
        Linear amplitude in [0, 1].
    instrument : int
        Index into the ``timbres`` given to :func:`render`.
    """

    onset: float
    duration: float
    pitch: float
    velocity: float = 0.8
    instrument: int = 0


@dataclass(frozen=True, kw_only=True)
class Timbre:
    """Sound of one instrument.

    Parameters
    ----------
    harmonics : tuple of float
        Amplitudes of partials 1, 2, ... (1 to 64 non-negative values, not all zero);
        normalised to a unit peak waveform, so only their ratios matter.
    attack, decay, release : float
        Envelope segment lengths in seconds (>= 0): linear rise to 1, linear fall to
        ``sustain``, and linear fade to 0 after the note's duration ends.
    sustain : float
        Level held after the decay, in [0, 1]; 0 with a long decay sounds plucked.
    vibrato_rate : float
        Vibrato frequency in Hz (>= 0).
    vibrato_depth : float
        Peak frequency deviation in cents (>= 0, at most 100).
    detune : float
        Pitch offset in cents (>= 0, at most 100) of a second, equally loud oscillator
        (chorus-like beating); 0 turns it off.
    noise : float
        Amplitude of envelope-following white noise relative to the tone, in [0, 1].

    Raises
    ------
    ParameterError
        A value is out of range, non-finite, or ``harmonics`` is empty, too long or
        all zero.
    """

    harmonics: tuple[float, ...] = (1.0, 0.5, 0.33, 0.25)
    attack: float = 0.02
    decay: float = 0.1
    sustain: float = 0.7
    release: float = 0.08
    vibrato_rate: float = 5.0
    vibrato_depth: float = 0.0
    detune: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        h = self.harmonics
        if not isinstance(h, tuple) or not 1 <= len(h) <= _MAX_HARMONICS:
            raise ParameterError(
                f"Timbre.harmonics={h!r} must be a tuple of 1 to {_MAX_HARMONICS} amplitudes"
            )
        arr = np.asarray(h, dtype=np.float64)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not np.any(arr > 0):
            raise ParameterError(
                f"Timbre.harmonics={h!r} must be finite, non-negative and not all zero"
            )
        limits = {
            "attack": (0.0, math.inf),
            "decay": (0.0, math.inf),
            "release": (0.0, math.inf),
            "sustain": (0.0, 1.0),
            "vibrato_rate": (0.0, math.inf),
            "vibrato_depth": (0.0, 100.0),
            "detune": (0.0, 100.0),
            "noise": (0.0, 1.0),
        }
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if not (_is_real(value) and lo <= value <= hi):
                raise ParameterError(f"Timbre.{name}={value!r} must be finite and in [{lo}, {hi}]")

    @classmethod
    def random(cls, seed: int | np.random.Generator) -> Timbre:
        """A random but plausible instrument.

        Draws the number of partials (3 to 16), a spectral tilt with per-partial
        jitter (sometimes odd partials only, clarinet-like), a sustained or plucked
        envelope, and optional vibrato, detune and breath noise.

        Parameters
        ----------
        seed : int or numpy.random.Generator
            Same seed, same timbre.

        Returns
        -------
        Timbre
        """
        rng = as_generator(seed)
        n = int(rng.integers(3, 17))
        k = np.arange(1, n + 1, dtype=np.float64)
        amps = k ** -rng.uniform(0.6, 2.0) * rng.uniform(0.3, 1.0, size=n)
        if rng.random() < 0.3:
            amps[1::2] *= 0.1  # mostly odd partials
        amps[0] = max(amps[0], 0.5 * amps.max())  # keep the fundamental audible
        if rng.random() < 0.25:  # plucked / struck
            attack = float(rng.uniform(0.002, 0.01))
            decay = float(rng.uniform(0.3, 1.5))
            sustain = float(rng.uniform(0.0, 0.2))
        else:  # bowed / blown / sung
            attack = float(np.exp(rng.uniform(np.log(0.01), np.log(0.15))))
            decay = float(rng.uniform(0.05, 0.4))
            sustain = float(rng.uniform(0.5, 1.0))
        vibrato = rng.random() < 0.5
        return cls(
            harmonics=tuple(float(a) for a in amps / amps.max()),
            attack=attack,
            decay=decay,
            sustain=sustain,
            release=float(rng.uniform(0.03, 0.3)),
            vibrato_rate=float(rng.uniform(4.0, 7.0)),
            vibrato_depth=float(rng.uniform(5.0, 30.0)) if vibrato else 0.0,
            detune=float(rng.uniform(2.0, 12.0)) if rng.random() < 0.4 else 0.0,
            noise=float(rng.uniform(0.0, 0.05)),
        )


def _is_real(value: object) -> bool:
    """A finite real number (bools excluded)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
    )


def as_generator(seed: int | np.random.Generator) -> np.random.Generator:
    """``seed`` as a NumPy generator (a generator is returned as is).

    Raises
    ------
    ParameterError
        ``seed`` is neither a non-negative int nor a ``numpy.random.Generator``.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed={seed!r} must be a non-negative int or a numpy Generator")
    return np.random.default_rng(int(seed))


def render(
    notes: Sequence[Note] | Sequence[Sequence[float]] | np.ndarray,
    timbres: Timbre | Sequence[Timbre],
    *,
    sr: int = 22050,
    duration: float | None = None,
    seed: int | np.random.Generator = 0,
    headroom_db: float = 1.0,
) -> np.ndarray:
    """Render note events to mono audio.

    Parameters
    ----------
    notes : sequence of Note, or np.ndarray [shape=(n_notes, 5)]
        ``(onset, duration, pitch, velocity, instrument)`` per note (see :class:`Note`).
    timbres : Timbre or sequence of Timbre
        Instrument ``i`` of a note is ``timbres[i]``; a single timbre plays every note.
    sr : int
        Sample rate in Hz.
    duration : float, optional
        Output length in seconds (notes are cut at the end); by default the end of
        the last note's release.
    seed : int or numpy.random.Generator
        Randomness of the oscillator start phases and the breath noise.
    headroom_db : float
        The output is scaled so that its peak is ``headroom_db`` dB below full scale
        (>= 0). Silence (no notes, or all velocities 0) stays exactly 0.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float32]
        Finite samples with ``max(abs(y)) == 10 ** (-headroom_db / 20)`` unless silent.

    Raises
    ------
    ParameterError
        ``notes`` is not ``(n, 5)``-shaped, a note has a negative or non-finite onset,
        a non-positive duration, a velocity outside [0, 1], an unknown instrument or a
        fundamental at or above the Nyquist frequency; ``timbres`` is empty or not
        made of :class:`Timbre`; or ``sr``, ``duration``, ``headroom_db`` or ``seed``
        is invalid.

    Examples
    --------
    >>> y = render([Note(0.0, 1.0, 69.0)], Timbre(harmonics=(1.0,)), sr=22050)
    >>> y.shape, y.dtype
    ((23814,), dtype('float32'))
    """
    check_count("sr", sr, 1)
    tims = [timbres] if isinstance(timbres, Timbre) else list(timbres)
    if not tims or not all(isinstance(t, Timbre) for t in tims):
        raise ParameterError(f"timbres={timbres!r} must be a Timbre or a non-empty list of them")
    if not (_is_real(headroom_db) and headroom_db >= 0):
        raise ParameterError(f"headroom_db={headroom_db!r} must be a finite number >= 0")
    if duration is not None and not (_is_real(duration) and duration >= 0):
        raise ParameterError(f"duration={duration!r} must be a finite number >= 0 (seconds)")
    rng = as_generator(seed)
    arr = _check_notes(notes, len(tims), sr)

    release = np.array([t.release for t in tims])[arr[:, 4].astype(np.intp)]
    if duration is not None:
        n_out = round(duration * sr)
    else:
        n_out = int(np.ceil(np.max(arr[:, 0] + arr[:, 1] + release) * sr)) if len(arr) else 0
    out = np.zeros(n_out, dtype=np.float64)
    if len(arr) == 0 or n_out == 0:
        return out.astype(np.float32)

    starts = np.round(arr[:, 0] * sr).astype(np.int64)
    lengths = np.ceil((arr[:, 1] + release) * sr).astype(np.int64)
    lengths = np.minimum(lengths, np.maximum(n_out - starts, 0))
    keep = (lengths > 0) & (arr[:, 3] > 0)
    arr, starts, lengths = arr[keep], starts[keep], lengths[keep]
    if len(arr):
        _render_notes(out, arr, starts, lengths, tims, sr, rng)

    peak = float(np.max(np.abs(out)))
    if peak > 0 and math.isfinite(peak):
        out *= 10.0 ** (-headroom_db / 20.0) / peak
    return out.astype(np.float32)


def _check_notes(
    notes: Sequence[Note] | Sequence[Sequence[float]] | np.ndarray, n_timbres: int, sr: int
) -> np.ndarray:
    try:
        arr = np.asarray(notes, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ParameterError(
            f"notes must be rows of (onset, duration, pitch, velocity, instrument): {error}"
        ) from error
    if arr.size == 0:
        return np.zeros((0, 5))
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise ParameterError(
            f"notes must have shape (n_notes, 5) = (onset, duration, pitch, velocity, "
            f"instrument), got shape {arr.shape}"
        )
    onset, dur, pitch, vel, inst = arr.T
    problems = [
        (~np.isfinite(onset) | (onset < 0), "onset must be finite and >= 0"),
        (~np.isfinite(dur) | (dur <= 0), "duration must be finite and > 0"),
        (~np.isfinite(pitch), "pitch must be finite"),
        (~np.isfinite(vel) | (vel < 0) | (vel > 1), "velocity must be in [0, 1]"),
        (
            (inst != np.round(inst)) | (inst < 0) | (inst >= n_timbres) | ~np.isfinite(inst),
            f"instrument must be an integer in [0, {n_timbres})",
        ),
    ]
    for bad, what in problems:
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ParameterError(f"note {i} = {tuple(arr[i].tolist())}: {what}")
    hz = midi_to_hz(pitch)
    if np.any(hz >= sr / 2):
        i = int(np.argmax(hz >= sr / 2))
        raise ParameterError(
            f"note {i} has pitch {pitch[i]:g} ({hz[i]:.1f} Hz), at or above the Nyquist "
            f"frequency sr/2={sr / 2:g} Hz"
        )
    return arr


def _render_notes(
    out: np.ndarray,
    arr: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    tims: Sequence[Timbre],
    sr: int,
    rng: np.random.Generator,
) -> None:
    """Add every note to ``out``.

    The oscillator of a note depends only on its (instrument, pitch) and the time
    since its onset, so it is computed once per distinct pair, for the longest such
    note, and every note adds a slice of it times its own envelope. A chorale has a few
    dozen distinct pairs for hundreds of notes, so most samples cost a multiply-add.
    """
    keys, group_of = np.unique(arr[:, [4, 2]], axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    phases = rng.random((len(keys), 2))  # drawn first: a fixed order of draws
    max_len = np.zeros(len(keys), dtype=np.int64)
    np.maximum.at(max_len, group_of, lengths)
    noise_amp = np.array([t.noise for t in tims])
    noise: np.ndarray | None = None
    offsets = np.zeros(len(arr), dtype=np.int64)
    if np.any(noise_amp[arr[:, 4].astype(np.intp)] > 0):
        n_noise = int(lengths.max()) + sr
        noise = rng.standard_normal(n_noise)
        offsets = rng.integers(0, n_noise - lengths + 1)
    ramp = np.arange(int(lengths.max()), dtype=np.float64)
    for g, (inst_f, pitch) in enumerate(keys):
        timbre = tims[int(inst_f)]
        osc = _oscillator(timbre, float(pitch), int(max_len[g]), phases[g], sr)
        for i in np.flatnonzero(group_of == g):
            n, s0 = int(lengths[i]), int(starts[i])
            env = _envelope(n, float(arr[i, 1]), float(arr[i, 3]), timbre, sr, ramp)
            if noise is not None and timbre.noise > 0:
                o = int(offsets[i])
                out[s0 : s0 + n] += (osc[:n] + timbre.noise * noise[o : o + n]) * env
            else:
                out[s0 : s0 + n] += osc[:n] * env


def _oscillator(timbre: Timbre, pitch: float, n: int, phases: np.ndarray, sr: int) -> np.ndarray:
    """``n`` samples of a timbre's (vibrato, detuned) tone at ``pitch``, band-limited."""
    f0 = float(midi_to_hz(pitch))
    # Highest instantaneous frequency (vibrato up, detuned oscillator up) stays below
    # Nyquist for every partial kept.
    f_top = f0 * 2.0 ** ((timbre.vibrato_depth + timbre.detune) / 1200.0)
    n_harm = int(np.clip(np.floor(0.5 * sr / f_top - 1e-9), 1, len(timbre.harmonics)))
    table = _table(timbre.harmonics[:n_harm])
    t = np.arange(n) / sr
    cycles = f0 * t
    if timbre.vibrato_depth > 0 and timbre.vibrato_rate > 0:
        # Sinusoidal FM has a closed-form phase: no cumulative sum needed.
        w = 2.0 * np.pi * timbre.vibrato_rate
        depth = 2.0 ** (timbre.vibrato_depth / 1200.0) - 1.0
        cycles += (f0 * depth / w) * (1.0 - np.cos(w * t))
    wave = _lookup(table, cycles + phases[0])
    if timbre.detune > 0:
        ratio = 2.0 ** (timbre.detune / 1200.0)
        wave = 0.5 * (wave + _lookup(table, cycles * ratio + phases[1]))
    return wave


@functools.lru_cache(maxsize=1)
def _basis() -> np.ndarray:
    """``sin(2 pi k x)`` for partials k = 1..64 over one tabulated cycle."""
    x = np.arange(_TABLE_SIZE + 1) / _TABLE_SIZE
    return np.sin(2.0 * np.pi * np.outer(np.arange(1, _MAX_HARMONICS + 1), x))


def _table(harmonics: tuple[float, ...]) -> np.ndarray:
    """Single-cycle waveform ``[_TABLE_SIZE + 1]`` (the last sample repeats the first)."""
    wave: np.ndarray = np.asarray(harmonics, dtype=np.float64) @ _basis()[: len(harmonics)]
    peak = float(np.max(np.abs(wave)))
    return wave / peak if peak > 0 else wave


def _lookup(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    pos = cycles - np.floor(cycles)
    pos *= _TABLE_SIZE
    i0 = pos.astype(np.intp)
    np.minimum(i0, _TABLE_SIZE - 1, out=i0)  # guards float rounding at 1.0
    pos -= i0
    a: np.ndarray = table[i0]
    out: np.ndarray = a + pos * (table[i0 + 1] - a)
    return out


def _envelope(
    n: int, gate: float, velocity: float, timbre: Timbre, sr: int, ramp: np.ndarray
) -> np.ndarray:
    """``n`` samples of a linear ADSR (times ``velocity``) for a note held ``gate`` s.

    ``ramp`` is ``arange(m)`` for some ``m >= n`` (shared, to save allocations).
    """
    n_att_full, n_dec_full = timbre.attack * sr, timbre.decay * sr
    n_gate = min(n, round(gate * sr))
    n_att = min(round(n_att_full), n_gate)
    n_dec = min(round(n_dec_full), n_gate - n_att)
    peak = velocity if n_att == round(n_att_full) else velocity * n_att / n_att_full
    low = timbre.sustain * velocity
    level = peak
    if n_dec > 0:
        level = peak - (peak - low) * n_dec / n_dec_full
    elif n_gate > n_att:
        level = low
    env = np.empty(n)
    if n_att:
        np.multiply(ramp[:n_att], peak / n_att_full, out=env[:n_att])
    if n_dec:
        np.multiply(ramp[:n_dec], -(peak - low) / n_dec_full, out=env[n_att : n_att + n_dec])
        env[n_att : n_att + n_dec] += peak
    env[n_att + n_dec : n_gate] = level
    if n > n_gate:
        fade = env[n_gate:]
        np.multiply(ramp[: n - n_gate], -level / max(timbre.release * sr, 1.0), out=fade)
        fade += level
        np.maximum(fade, 0.0, out=fade)
    return env
