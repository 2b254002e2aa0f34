"""The reference bank: a bounded set of windows of each song's own recordings.

:meth:`covergan.Augmenter.sample` makes new versions of a song by applying the version
model (:class:`~covergan.versions.VersionGAN`) to windows of that song's training
recordings. The augmenter keeps those windows, not the recordings: at most ``per_song``
windows per song, each ``width`` frames (the version model's source width, what its fastest
tempo reads), stored as float16 in the feature format. The bank's size is therefore bounded
by ``n_songs * per_song * n_bins * width * 2`` bytes whatever the recordings' lengths: for
CQTNet's 84 bins, 200-frame windows (``width`` 251) and the default 8 windows per song,
337 kB per song, 3.4 MB per 10 songs. A second bound, ``max_bytes`` (1 GiB by default), sets
how many windows a song keeps in a large catalogue: 10,000 such songs keep 2 windows each
(844 MB), not 8 (3.4 GB). Every song keeps at least one, so above about 25,000 such songs the
bank is one window a song and passes ``max_bytes`` (42 kB a song).

Window choice: a song's windows go round-robin over its recordings (in a seeded order), and
the windows of one recording are spread evenly over it, so a song with one recording gets
``per_song`` windows from different parts of it. A recording shorter than ``width`` gives one
window, padded at the end as the dataset pads its training windows (``pad_mode``: silence by
default, the recording tiled with ``"wrap"``); a recording shorter than
``min_frames`` gives none, and a song with no recording that long has no references.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from covergan._checks import check_count
from covergan.cqt import PadMode, center_crop_or_pad
from covergan.data import CQTDataset, SongId
from covergan.errors import CheckpointError, DatasetError, ParameterError

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_REFERENCES", "MAX_REFERENCE_BYTES", "ReferenceBank"]

#: Windows kept per song by default.
DEFAULT_REFERENCES = 8
#: The most bytes a bank takes by default: a catalogue of many songs keeps fewer windows per
#: song (at least one): 10,000 songs of 84-bin, 251-frame windows keep 2 each (844 MB).
MAX_REFERENCE_BYTES = 1 << 30


class ReferenceBank:
    """At most ``per_song`` float16 windows of each song's recordings (see the module doc).

    Build one with :meth:`build`; :meth:`draw` hands out windows for sampling.

    Parameters
    ----------
    windows : mapping song id -> torch.Tensor [shape=(k, n_bins, width), dtype=float16]
        The windows of each song (``k >= 1``); songs without references are left out.
    skipped : sequence of str or int
        Songs that have no references (every recording shorter than ``min_frames``).
    """

    def __init__(self, windows: Mapping[SongId, Tensor], *, skipped: Sequence[SongId] = ()) -> None:
        shapes = {tuple(w.shape[1:]) for w in windows.values()}
        if len(shapes) > 1 or any(w.dim() != 3 or w.shape[0] == 0 for w in windows.values()):
            raise ParameterError(
                f"reference windows must share one [k, n_bins, width] shape, got {shapes}"
            )
        self.windows = {song: w.to(torch.float16) for song, w in windows.items()}
        self.skipped = list(skipped)

    @classmethod
    def build(
        cls,
        data: CQTDataset,
        *,
        width: int,
        per_song: int = DEFAULT_REFERENCES,
        min_frames: int = 2,
        seed: int = 0,
        max_bytes: int = MAX_REFERENCE_BYTES,
    ) -> ReferenceBank:
        """Choose and copy the windows of every song of ``data``.

        Parameters
        ----------
        data : CQTDataset
            Full recordings in the feature format (its ``silence_value`` pads short ones).
        width : int
            Frames per window.
        per_song : int
            Most windows kept per song (>= 1).
        min_frames : int
            Recordings shorter than this give no window.
        seed : int
            Order in which a song's recordings take turns.
        max_bytes : int
            Most bytes of the whole bank: with many songs each keeps
            ``min(per_song, max_bytes // (songs * window bytes))`` windows, at least one.

        Returns
        -------
        ReferenceBank

        Raises
        ------
        ParameterError
            ``width``, ``per_song`` or ``min_frames`` not a positive int.
        """
        checked = (width, per_song, min_frames, max_bytes)
        for name, value in zip(
            ("width", "per_song", "min_frames", "max_bytes"), checked, strict=True
        ):
            check_count(name, value, 1)
        by_song: dict[SongId, list[int]] = {}
        lengths = data.lengths()  # a store's come from its index: no track is read here
        for i, song in enumerate(data.song_ids):
            if lengths[i] >= min_frames:
                by_song.setdefault(song, []).append(i)
        window_bytes = 2 * data.n_bins * width
        affordable = max(1, max_bytes // max(1, len(by_song) * window_bytes))
        if affordable < per_song:
            logger.info(
                "%d songs: keeping %d reference windows per song (not %d) to stay within %d MB",
                len(by_song),
                affordable,
                per_song,
                max_bytes >> 20,
            )
            per_song = affordable
        windows: dict[SongId, Tensor] = {}
        for song in data.index.ids:
            items = by_song.get(song)
            if not items:
                continue
            order = np.random.default_rng([seed, data.index.index(song)]).permutation(len(items))
            picked: list[np.ndarray] = []
            for rank, k in enumerate(order[:per_song]):  # later ones would get no window
                track = data.features[items[int(k)]]
                share = per_song // len(items) + (rank < per_song % len(items))
                picked += _spread(track, width, share, data.pad_mode, data.silence_value)
            windows[song] = torch.from_numpy(np.stack(picked).astype(np.float16))
        skipped = [s for s in data.index.ids if s not in windows]
        return cls(windows, skipped=skipped)

    # ---------------------------------------------------------------------------- access

    def __contains__(self, song: object) -> bool:
        return song in self.windows

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def width(self) -> int:
        """Frames per window (0 for an empty bank)."""
        first = next(iter(self.windows.values()), None)
        return 0 if first is None else int(first.shape[2])

    @property
    def nbytes(self) -> int:
        """Bytes the windows take."""
        return sum(w.numel() * w.element_size() for w in self.windows.values())

    def count(self, song: SongId) -> int:
        """Windows kept for ``song`` (0 if none)."""
        w = self.windows.get(song)
        return 0 if w is None else int(w.shape[0])

    def draw(self, song: SongId, n: int, *, rng: np.random.Generator) -> Tensor:
        """``n`` of ``song``'s windows, as float32.

        The windows are used in a shuffled order, reshuffled after each pass, so ``n``
        draws use every one of the song's ``k`` windows ``n // k`` or ``n // k + 1`` times.

        Returns
        -------
        torch.Tensor [shape=(n, n_bins, width), dtype=float32]

        Raises
        ------
        DatasetError
            ``song`` has no reference windows (say why).
        """
        w = self.windows.get(song)
        if w is None:
            raise DatasetError(
                f"song {song!r} has no reference windows: every one of its training recordings "
                "was shorter than a quarter window (see covergan.references); fit with a longer "
                "recording of it, pass one to sample_like(features), or fit the class GAN too "
                "(model=('versions', 'gan')) and sample it with method='gan'"
            )
        k = int(w.shape[0])
        order = np.concatenate([rng.permutation(k) for _ in range(-(-n // k))])[:n]
        return w[torch.from_numpy(order)].float()

    # ---------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Plain containers and tensors for an augmenter file."""
        return {
            "songs": list(self.windows),
            "windows": list(self.windows.values()),
            "skipped": list(self.skipped),
        }

    @classmethod
    def from_state_dict(cls, state: Any, *, source: str = "the state dict") -> ReferenceBank:
        """Rebuild from :meth:`state_dict` output.

        Raises
        ------
        CheckpointError
            Missing or inconsistent entries.
        """
        try:
            songs, windows = list(state["songs"]), list(state["windows"])
            if len(songs) != len(windows) or not all(isinstance(w, Tensor) for w in windows):
                raise ValueError("songs and windows do not match")
            return cls(dict(zip(songs, windows, strict=True)), skipped=list(state["skipped"]))
        except (KeyError, TypeError, ValueError, ParameterError) as error:
            raise CheckpointError(f"{source}: the reference bank is damaged: {error}") from error


def _spread(
    track: np.ndarray, width: int, share: int, pad_mode: PadMode, silence: float
) -> list[np.ndarray]:
    """``share`` windows spread evenly over ``track`` (one padded window if it is short, as
    the dataset pads: silence, or the track tiled)."""
    n = track.shape[1]
    if share <= 0:
        return []
    if n <= width:
        return [center_crop_or_pad(track, width, pad_mode=pad_mode, pad_value=silence)]
    starts = np.unique(np.round(np.linspace(0, n - width, share + 2)[1:-1]).astype(int))
    return [track[:, s : s + width] for s in starts]
