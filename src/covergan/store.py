"""An on-disk feature store: one memory-mapped ``.npy`` per recording plus an append-only index.

A catalogue of 100,000 recordings does not fit in memory as float32 (about 13 GB in CQTNet's
format), and reading and validating every file at start-up takes minutes. A store is a folder::

    root/store.json            format, format version, bins, storage dtype
    root/cqt_config.json       the feature recipe (when known)
    root/index.jsonl           one line per recording: song, name, file, frames, bytes, crc32,
                               silent
    root/<song>/<name>.npy     [n_bins, n_frames], Fortran order (a window of frames is one
                               contiguous read), float32 or float16

Validation (2-D, the store's bins, finite values, a minimum length) happens once, in
:meth:`FeatureStore.add`, and is recorded in the index; :meth:`FeatureStore.open` reads only
the index and the files' sizes, never the data, and :meth:`FeatureStore.dataset` gives a
:class:`~covergan.data.CQTDataset` whose tracks are memory-mapped on access. Every ``.npy``
also loads with plain ``numpy.load``, so the folder is still the ``<song_id>/<recording>.npy``
layout ``covergan extract`` always wrote.

Writers are safe together: a recording's file is written to a temporary name and renamed into
place, and its index line appended, under an exclusive lock on the index (``fcntl.flock``), so
several processes (or machines sharing a file system with working locks) can fill one store
at once; a recording already indexed is never written twice. A killed writer leaves at most a
cut last index line (ignored by readers, removed by the next writer) and a temporary file
``.<name>.<host>-<pid>-*.tmp`` beside the recording's (ignored by readers; the next
:meth:`FeatureStore.create` on that host deletes the files of writers that no longer run);
re-running an extraction skips what the index already holds.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from covergan._checks import check_count
from covergan._io import drop_cut_line, npy_beside, temp_file
from covergan.cqt import CQTConfig, CQTExtractor, ExtractionFailure
from covergan.errors import DatasetError, ParameterError, StoreError

if TYPE_CHECKING:
    from covergan.data import CQTDataset, SongId

__all__ = [
    "CONFIG_FILE",
    "INDEX_FILE",
    "STORE_FILE",
    "FeatureStore",
    "Record",
    "StoreExtraction",
    "StoredTracks",
    "extract_to_store",
    "folder_config",
    "is_store",
]

STORE_FILE = "store.json"
INDEX_FILE = "index.jsonl"
#: The feature recipe beside the features (the file ``covergan extract`` always wrote).
CONFIG_FILE = "cqt_config.json"
STORE_FORMAT = "covergan.store"
STORE_FORMAT_VERSION = 1
StorageDType = Literal["float32", "float16"]
_DTYPES: dict[str, type[np.floating[Any]]] = {"float32": np.float32, "float16": np.float16}
#: float16's largest finite value: features beyond it cannot be stored in half precision.
_FLOAT16_MAX = float(np.finfo(np.float16).max)
#: A writer's temporary file: ``.<stem>.<host>-<pid>-<random>.tmp`` (see :func:`_writer_tag`).
_TMP_NAME = re.compile(r"\..+\.(?P<host>[^.-]+)-(?P<pid>\d+)-[^.]+\.tmp")


@dataclass(frozen=True)
class Record:
    """One indexed recording.

    Attributes
    ----------
    song : str or int
        Its song (work) id.
    name : str
        Its name (the audio path it was extracted from, or the name given to ``add``).
    file : str
        Its ``.npy`` file, relative to the store's root (``/``-separated).
    frames : int
        Frames of the track ``[n_bins, frames]``.
    size : int
        Bytes of the ``.npy`` file (header included): a cheap check of truncation.
    crc32 : int
        CRC-32 of the stored array's bytes (checked by :meth:`FeatureStore.verify`).
    silent : bool
        Every value of the track is the same (a silent recording).
    """

    song: SongId
    name: str
    file: str
    frames: int
    size: int
    crc32: int
    silent: bool

    def to_json(self) -> str:
        return json.dumps(
            {
                "song": self.song,
                "name": self.name,
                "file": self.file,
                "frames": self.frames,
                "size": self.size,
                "crc32": self.crc32,
                "silent": self.silent,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> Record:
        d = json.loads(line)
        song = d["song"]
        if isinstance(song, bool) or not isinstance(song, (str, int)):
            raise ValueError(f"song id {song!r} is not a str or int")
        return cls(
            song, str(d["name"]), str(d["file"]), int(d["frames"]), int(d["size"]),
            int(d["crc32"]),
            bool(d["silent"]),
        )  # fmt: skip


class StoredTracks(Sequence[np.ndarray]):
    """The tracks of a store as a lazy sequence: item ``i`` is memory-mapped when accessed.

    ``tracks[i]`` is a read-only ``numpy.memmap`` ``[n_bins, frames_i]`` in the storage dtype;
    slicing a window out of it reads only that window from disk. Nothing stays open between
    accesses (a process may map only about 65,000 regions at once).
    """

    def __init__(
        self,
        root: Path,
        files: Sequence[str],
        frames: np.ndarray,
        sizes: np.ndarray,
        silent: np.ndarray,
        n_bins: int,
        dtype: str,
    ) -> None:
        self.root = root
        self.files = list(files)
        self.frames = np.asarray(frames, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self._silent = np.asarray(silent, dtype=bool)
        self.n_bins = int(n_bins)
        self.dtype = np.dtype(dtype)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        path = self.root / self.files[i]
        shape = (self.n_bins, int(self.frames[i]))
        # the index knows the file's size and the array's: the data follows the .npy header,
        # so the file is mapped without reading and parsing that header on every crop
        offset = int(self.sizes[i]) - shape[0] * shape[1] * self.dtype.itemsize
        try:
            arr = np.memmap(path, dtype=self.dtype, mode="r", offset=offset, shape=shape, order="F")
        except FileNotFoundError:
            raise StoreError(f"{path} is named by the store's index but is missing") from None
        except (OSError, ValueError) as error:
            raise StoreError(f"cannot read {path} (truncated or damaged?): {error}") from error
        return arr

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def lengths(self) -> np.ndarray:
        """Frames per track, int64 [shape=(n,)] (from the index: no file is opened)."""
        return np.array(self.frames, dtype=np.int64)

    def silent(self) -> np.ndarray:
        """Which tracks are silent, bool [shape=(n,)] (from the index)."""
        return np.array(self._silent)

    def take(self, indices: Sequence[int]) -> StoredTracks:
        """The tracks at ``indices``, still lazy."""
        idx = [int(i) for i in indices]
        return StoredTracks(
            self.root,
            [self.files[i] for i in idx],
            self.frames[idx],
            self.sizes[idx],
            self._silent[idx],
            self.n_bins,
            str(self.dtype),
        )


@dataclass
class StoreExtraction:
    """What :meth:`extract_to_store` did.

    Attributes
    ----------
    written : int
        Recordings extracted and stored by this call.
    present : int
        Recordings of this shard the store already held (skipped).
    failures : list of ExtractionFailure
        Files that could not be read, extracted or stored, with why.
    """

    written: int = 0
    present: int = 0
    failures: list[ExtractionFailure] = field(default_factory=list)


def is_store(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` is a feature store (holds a ``store.json``)."""
    return (Path(root).expanduser() / STORE_FILE).is_file()


class FeatureStore:
    """A folder of memory-mapped CQT tracks with an index (see the module docstring).

    Make one with :meth:`create` (or reopen one to add more), read one with :meth:`open`.

    Attributes
    ----------
    root : Path
    n_bins : int
    dtype : {"float32", "float16"}
        Storage dtype; tracks are read as float32 by every consumer.
    config : CQTConfig or None
        The feature recipe.
    min_frames : int
        Shortest track :meth:`add` accepts.
    records : list of Record
        Indexed recordings, in the order they were added.
    skipped : list of str
        Indexed recordings left out by ``open(..., on_error="skip")``, with why.
    """

    def __init__(
        self,
        root: Path,
        *,
        n_bins: int,
        dtype: StorageDType,
        config: CQTConfig | None,
        min_frames: int,
    ) -> None:
        self.root = root
        self.n_bins = n_bins
        self.dtype: StorageDType = dtype
        self.config = config
        self.min_frames = min_frames
        self.records: list[Record] = []
        self.skipped: list[str] = []
        self._by_file: dict[str, int] = {}
        self._by_name: dict[str, int] = {}
        self._index_offset = 0

    # ------------------------------------------------------------------------- creating

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        *,
        n_bins: int | None = None,
        config: CQTConfig | None = None,
        dtype: StorageDType = "float32",
        min_frames: int = 1,
    ) -> FeatureStore:
        """A new store at ``root``, or the store already there when its settings match.

        Several processes may call this on one folder at once: the first header written wins
        and the others check theirs against it.

        Parameters
        ----------
        root : str or PathLike
            The store's folder (created with its parents).
        n_bins : int, optional
            Bins per frame; default ``config.n_bins``.
        config : CQTConfig, optional
            The feature recipe, written to ``cqt_config.json``.
        dtype : {"float32", "float16"}
            Storage dtype. float16 halves the disk and page cache a catalogue needs; values
            beyond +-65504 are refused at :meth:`add`.
        min_frames : int
            Shortest track :meth:`add` accepts (>= 1).

        Raises
        ------
        ParameterError
            Bad ``dtype``, ``min_frames``, or ``n_bins`` missing or different from
            ``config.n_bins``.
        StoreError
            ``root`` holds a store with other settings, or a store from a newer covergan.
        """
        if dtype not in _DTYPES:
            raise ParameterError(f"dtype={dtype!r} must be 'float32' or 'float16'")
        if n_bins is None:
            if config is None:
                raise ParameterError("give n_bins= or config=")
            n_bins = config.n_bins
        if config is not None and n_bins != config.n_bins:
            raise ParameterError(f"n_bins={n_bins} but config.n_bins={config.n_bins}")
        n_bins = check_count("n_bins", n_bins, 1)
        min_frames = check_count("min_frames", min_frames, 1)
        path = Path(root).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        head = {
            "format": STORE_FORMAT,
            "format_version": STORE_FORMAT_VERSION,
            "n_bins": n_bins,
            "dtype": dtype,
            "min_frames": min_frames,
        }
        if (path / STORE_FILE).is_file():
            _read_header(path)  # a newer store says so, rather than "other settings"
        if config is not None:
            _create_or_match(path / CONFIG_FILE, config.to_dict(), what="feature recipe")
        _create_or_match(path / STORE_FILE, head, what="store settings")
        store = cls(path, n_bins=n_bins, dtype=dtype, config=config, min_frames=min_frames)
        store._read_new_lines()
        _remove_stale_tmp(path)
        return store

    @classmethod
    def open(
        cls, root: str | os.PathLike[str], *, on_error: Literal["raise", "skip"] = "raise"
    ) -> FeatureStore:
        """Open a store: read its header and index and check every file's size (no data read).

        Parameters
        ----------
        root : str or PathLike
        on_error : {"raise", "skip"}
            What to do with indexed recordings whose file is missing or of the wrong size:
            raise, or leave them out and list them in :attr:`skipped`.

        Raises
        ------
        StoreError
            No store at ``root``, a damaged header or index line, a store from a newer
            covergan, or (``on_error="raise"``) files missing or truncated; the message names
            them.
        """
        path = Path(root).expanduser()
        head = _read_header(path)
        try:
            n_bins, dtype = int(head["n_bins"]), str(head["dtype"])
            min_frames = int(head.get("min_frames", 1))
        except (KeyError, TypeError, ValueError) as error:
            raise StoreError(f"{path / STORE_FILE} lacks a field: {error!r}") from error
        if dtype not in _DTYPES:
            raise StoreError(f"{path / STORE_FILE}: unknown storage dtype {dtype!r}")
        config = folder_config(path)
        store = cls(path, n_bins=n_bins, dtype=dtype, config=config, min_frames=min_frames)  # type: ignore[arg-type]
        store._read_new_lines()
        store._check_files(on_error)
        return store

    # -------------------------------------------------------------------------- writing

    def find(self, song: SongId, name: str) -> Record | None:
        """The stored record of recording ``name`` of ``song``, or None: the one indexed
        under ``name``, or under another spelling of its path (:func:`_same_path`) in the
        file ``name`` would get.

        Raises
        ------
        StoreError
            ``name`` is stored as a recording of another song.
        """
        if name in self._by_name:
            record = self.records[self._by_name[name]]
            if record.song != song:
                raise StoreError(
                    f"{name} is already stored as a recording of song {record.song!r}, not "
                    f"{song!r}; give each recording a name of its own"
                )
            return record
        at = self._by_file.get(_file_of(song, name))
        if at is None:
            return None
        record = self.records[at]
        return record if record.song == song and _same_path(record.name, name) else None

    def add(self, song: SongId, name: str, features: Any) -> Record:
        """Validate one track and write it into the store (atomically, once).

        Parameters
        ----------
        song : str or int
            Its song (work) id.
        name : str
            Its name, unique in the store (e.g. the audio file's path); the file is
            ``<song>/<name>.npy``, without the folders of ``name`` and its audio or ``.npy``
            extension.
        features : array-like [shape=(n_bins, n_frames)]
            The track in the store's feature format.

        Returns
        -------
        Record
            The new record, or the one already indexed under ``name``.

        Raises
        ------
        ParameterError
            Not 2-D, other bins, fewer than ``min_frames`` frames, NaN/inf, or a value
            float16 cannot hold.
        StoreError
            The disk filled, another recording already uses this file name, or ``name`` is
            stored as a recording of another song; the store is left as it was before the
            call.
        """
        from covergan.data import _check_song_id, _check_track

        song = _check_song_id(song)
        name = str(name)
        if (found := self.find(song, name)) is not None:
            return found
        arr = _check_track(features, name, self.n_bins)
        if arr.shape[1] < self.min_frames:
            raise ParameterError(
                f"{name}: {arr.shape[1]} frames, fewer than the store's min_frames="
                f"{self.min_frames}"
            )
        if self.dtype == "float16" and float(np.abs(arr).max()) > _FLOAT16_MAX:
            raise ParameterError(
                f"{name}: values beyond +-{_FLOAT16_MAX:g} cannot be stored as float16; "
                "use dtype='float32'"
            )
        stored = np.asarray(arr, dtype=_DTYPES[self.dtype], order="F")
        file = _file_of(song, name)
        target = self.root / file
        tmp: str | None = self._write_tmp(target, stored)
        try:
            record = Record(
                song,
                name,
                file,
                int(arr.shape[1]),
                os.path.getsize(cast(str, tmp)),
                zlib.crc32(stored.T),  # the transpose of a Fortran array is C-contiguous
                bool(arr.min() == arr.max()),
            )
            with self._locked_index() as index:
                self._read_new_lines()
                if (found := self.find(song, name)) is not None:  # another writer added it
                    return found
                if file in self._by_file:
                    other = self.records[self._by_file[file]].name
                    raise StoreError(
                        f"{name} would be stored as {file}, which already holds {other}; give "
                        "recordings of one song distinct file stems"
                    )
                os.replace(cast(str, tmp), target)
                tmp = None
                line = record.to_json().encode("utf-8") + b"\n"
                with _full_disk(f"indexing {target}", len(self)):
                    index.write(line)
                    index.flush()
                    os.fsync(index.fileno())
                self._register(record)
                self._index_offset += len(line)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return record

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._by_name

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        songs = len({r.song for r in self.records})
        return (
            f"FeatureStore({str(self.root)!r}: {len(self)} recordings of {songs} songs, "
            f"{self.n_bins} bins, {self.dtype})"
        )

    # -------------------------------------------------------------------------- reading

    def tracks(self) -> StoredTracks:
        """Every indexed track, lazily memory-mapped."""
        return StoredTracks(
            self.root,
            [r.file for r in self.records],
            np.asarray([r.frames for r in self.records], dtype=np.int64),
            np.asarray([r.size for r in self.records], dtype=np.int64),
            np.asarray([r.silent for r in self.records], dtype=bool),
            self.n_bins,
            self.dtype,
        )

    def dataset(self, **kwargs: Any) -> CQTDataset:
        """A :class:`~covergan.data.CQTDataset` over the store's tracks (no data is read).

        ``kwargs`` are the dataset's window settings (``window``, ``crop``, ``pad_mode``,
        ``seed``, ``transform``). Its :attr:`~covergan.data.CQTDataset.failures` lists the
        recordings :meth:`open` skipped.

        Raises
        ------
        StoreError
            The store is empty.
        """
        from covergan.data import CQTDataset

        if not self.records:
            raise StoreError(f"the feature store {self.root} holds no recording yet")
        data = CQTDataset(
            self.tracks(),
            [r.song for r in self.records],
            names=[r.name for r in self.records],
            config=self.config,
            **kwargs,
        )
        data.failures = list(self.skipped)
        return data

    def verify(self, *, progress: bool = False) -> list[str]:
        """Read every file and check its CRC-32 against the index (a full read of the data).

        Returns
        -------
        list of str
            One line per damaged recording (empty when all are intact).
        """
        from covergan._progress import progress_bar

        tracks = self.tracks()
        bad: list[str] = []
        for i in progress_bar(range(len(tracks)), desc="verify", enabled=progress):
            try:
                arr = tracks[i]
                if zlib.crc32(np.asfortranarray(arr).T) != self.records[i].crc32:
                    bad.append(f"{self.root / tracks.files[i]}: checksum differs from the index")
            except StoreError as error:
                bad.append(str(error))
        return bad

    # ---------------------------------------------------------------------------- index

    def _read_new_lines(self) -> None:
        """Index lines appended since the last read (a cut last line is left for later)."""
        path = self.root / INDEX_FILE
        try:
            with open(path, "rb") as fh:
                fh.seek(self._index_offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        for number, raw in enumerate(data[:end].splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                record = Record.from_json(raw.decode("utf-8"))
            except (ValueError, KeyError, TypeError) as error:
                raise StoreError(
                    f"{path}: damaged index line at byte {self._index_offset} (+{number}): {error}"
                ) from error
            if record.name not in self._by_name:
                self._register(record)
        self._index_offset += end

    def _register(self, record: Record) -> None:
        self._by_name[record.name] = len(self.records)
        self._by_file[record.file] = len(self.records)
        self.records.append(record)

    @contextmanager
    def _locked_index(self) -> Iterator[Any]:
        """The index opened for appending under an exclusive lock; a cut last line (a writer
        killed mid-line) is removed first."""
        import fcntl

        path = self.root / INDEX_FILE
        with open(path, "ab+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                drop_cut_line(fh)  # appends go to the end whatever the position
                yield fh
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _write_tmp(self, target: Path, arr: np.ndarray) -> str:
        with _full_disk(f"writing {target}", len(self)):
            return npy_beside(target, arr, tag=_writer_tag())

    def _check_files(self, on_error: Literal["raise", "skip"]) -> None:
        """Every indexed file exists with the size it was written with."""
        if on_error not in ("raise", "skip"):
            raise ParameterError(f"on_error={on_error!r} must be 'raise' or 'skip'")
        problems = _file_problems(self.root, self.records)
        if not problems:
            return
        if on_error == "raise":
            lines = "; ".join(p for _, p in problems[:5])
            more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise StoreError(
                f"the feature store {self.root} has {len(problems)} missing or truncated "
                f"file(s): {lines}{more}. Open it with on_error='skip' to leave them out (the "
                "index keeps them, so extracting again does not bring them back: for them, "
                "extract into a new store)"
            )
        bad = {i for i, _ in problems}
        self.skipped = [p for _, p in problems]
        self.records = [r for i, r in enumerate(self.records) if i not in bad]
        self._by_name = {r.name: i for i, r in enumerate(self.records)}
        self._by_file = {r.file: i for i, r in enumerate(self.records)}


def _same_path(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` spell one path (relative or absolute, or relative to another
    working folder): the components of one end with all of the other's, two at least (a
    folder and a file). ``audio/s0/r0.wav`` is ``/data/audio/s0/r0.wav``; ``setB/s0/r0.wav``
    is not ``setA/s0/r0.wav``, nor is ``r0.wav``."""
    x, y = Path(a).parts, Path(b).parts
    n = min(len(x), len(y))
    return n >= 2 and x[len(x) - n :] == y[len(y) - n :]


def _file_problems(root: Path, records: list[Record]) -> list[tuple[int, str]]:
    """``(index, what)`` of each record whose file under ``root`` is missing or has another
    size than it was written with."""
    problems: list[tuple[int, str]] = []
    for i, r in enumerate(records):
        path = root / r.file
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problems.append((i, f"{path}: missing"))
            continue
        if size != r.size:
            problems.append((i, f"{path}: {size} bytes, the index says {r.size}"))
    return problems


def extract_to_store(
    store: FeatureStore,
    paths: Sequence[str | os.PathLike[str]],
    songs: Sequence[SongId],
    *,
    extractor: CQTExtractor,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_error: Literal["raise", "skip"] = "raise",
    shard: tuple[int, int] = (0, 1),
) -> StoreExtraction:
    """Extract audio files (or copy ``.npy`` features) into ``store``, one at a time.

    Each track is written and indexed as soon as it is extracted, so memory stays flat
    and a killed run loses at most the files in flight; running again skips every
    recording already indexed (:meth:`FeatureStore.find`: by its path, however it is spelled,
    relative or absolute, as long as its song folder and file name are the same). Several
    processes or machines
    can fill one store at once, each with its own ``shard``.

    Parameters
    ----------
    store : FeatureStore
        Made with :meth:`FeatureStore.create`.
    paths : sequence of str or PathLike
        Audio files, or ``.npy`` features ``[n_bins, n_frames]``.
    songs : sequence of str or int
        The song of each path.
    extractor : CQTExtractor
        Its config must be the store's.
    n_jobs, cache_dir, progress
        As for :meth:`CQTExtractor.extract_many`.
    on_error : {"raise", "skip"}
        After every other file is stored: raise an ``ExtractionError`` naming the files that
        failed, or return them in the result.
    shard : (int, int)
        ``(k, n)``: this writer takes paths ``k, k + n, k + 2n, ...``.

    Returns
    -------
    StoreExtraction

    Raises
    ------
    ParameterError
        Lengths differ, a bad ``shard``, or an extractor with another recipe.
    ExtractionError
        Files failed and ``on_error="raise"`` (every other file is stored).
    StoreError
        The disk filled (what was stored stays; run again to continue).
    """
    from covergan._progress import progress_bar
    from covergan.errors import ExtractionError

    if len(paths) != len(songs):
        raise ParameterError(f"got {len(paths)} paths but {len(songs)} song ids")
    if on_error not in ("raise", "skip"):
        raise ParameterError(f"on_error={on_error!r} must be 'raise' or 'skip'")
    k, n = _check_shard(shard)
    if store.config is not None and extractor.config != store.config:
        raise ParameterError(
            f"the store {store.root} holds features of another recipe than the extractor's"
        )
    mine = [(Path(paths[i]).expanduser(), songs[i]) for i in range(k, len(paths), n)]
    result = StoreExtraction()
    todo = _to_extract(store, mine, result)
    feature_files = [(p, s) for p, s in todo if p.suffix.lower() == ".npy"]
    audio = [(p, s) for p, s in todo if p.suffix.lower() != ".npy"]
    loaded = ((_read_npy(p, store.n_bins), s, p) for p, s in feature_files)
    outcomes = extractor.iter_extract(
        [p for p, _ in audio], n_jobs=n_jobs, cache_dir=cache_dir, progress=False
    )
    extracted = ((out, s, p) for out, (p, s) in zip(outcomes, audio, strict=True))
    with progress_bar(total=len(todo), desc="store", unit="file", enabled=progress) as bar:
        for chain in (loaded, extracted):
            for (feats, failure, _), song, path in chain:
                bar.update(1)
                if failure is None:
                    try:
                        store.add(song, str(path), feats)
                        result.written += 1
                        continue
                    except ParameterError as error:
                        failure = ("ParameterError", str(error))
                result.failures.append(ExtractionFailure(path, *failure))
    if result.failures and on_error == "raise":
        lines = "\n".join(f"  {f}" for f in result.failures)
        raise ExtractionError(
            f"{len(result.failures)} file(s) failed (the other {result.written} were "
            f"stored):\n{lines}",
            result.failures,
        )
    return result


def safe_file_name(name: str) -> str:
    """A file-name-safe form of a song id or recording stem (no separators, not empty/dots)."""
    clean = name.replace("/", "_").replace("\\", "_").replace("\x00", "_")
    return "_" if clean in ("", ".", "..") else clean


def _to_extract(
    store: FeatureStore, mine: list[tuple[Path, SongId]], result: StoreExtraction
) -> list[tuple[Path, SongId]]:
    """The recordings of ``mine`` the store lacks, each once; those it holds count in
    ``result.present``, and those it cannot take (stored for another song, or whose store
    file another recording holds or takes first, as ``r0.wav`` beside ``r0.flac``) are
    failures of ``result``, found before any file is read."""
    taken = {r.file: r.name for r in store.records}
    todo: list[tuple[Path, SongId]] = []
    seen: set[str] = set()
    for path, song in mine:
        name = str(path)
        if name in seen:  # listed twice (a repeated manifest row)
            continue
        seen.add(name)
        try:
            if store.find(song, name) is not None:
                result.present += 1
                continue
        except StoreError as error:
            result.failures.append(ExtractionFailure(path, "StoreError", str(error)))
            continue
        file = _file_of(song, name)
        if file in taken:
            message = (
                f"would be stored as {file}, which already holds {taken[file]}; give "
                "recordings of one song distinct file stems"
            )
            result.failures.append(ExtractionFailure(path, "StoreError", message))
            continue
        taken[file] = name
        todo.append((path, song))
    return todo


def _file_of(song: SongId, name: str) -> str:
    """The store file of recording ``name`` of ``song``: ``<song>/<stem>.npy``."""
    return f"{safe_file_name(str(song))}/{safe_file_name(_stem(name))}.npy"


def _stem(name: str) -> str:
    """A recording's file stem: its base name without an audio or ``.npy`` extension (other
    dots, as in ``bwv244.37-r0``, are part of the name)."""
    from covergan.data import AUDIO_SUFFIXES

    base = Path(name).name
    suffix = Path(base).suffix
    return base[: -len(suffix)] if suffix.lower() in (*AUDIO_SUFFIXES, ".npy") else base


def _check_shard(shard: object) -> tuple[int, int]:
    ok = (
        isinstance(shard, tuple)
        and len(shard) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        and shard[1] >= 1
        and 0 <= shard[0] < shard[1]
    )
    if not ok:
        raise ParameterError(f"shard={shard!r} must be (k, n) with 0 <= k < n")
    return shard  # type: ignore[return-value]


def _read_npy(path: Path, n_bins: int) -> tuple[np.ndarray | None, tuple[str, str] | None, bool]:
    """A ``.npy`` source, checked as a features folder's are, as an extraction outcome (never
    raises)."""
    from covergan.data import _load_npy

    try:
        return _load_npy(path, n_bins), None, False
    except DatasetError as error:
        return None, (type(error).__name__, str(error)), False


@contextmanager
def _full_disk(doing: str, held: int) -> Iterator[None]:
    """A full disk (or quota) while ``doing`` becomes a StoreError saying the ``held``
    indexed recordings are intact."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreError(
                f"the disk filled while {doing}; the store's {held} indexed recordings are "
                "intact: free space and run again to continue"
            ) from error
        raise


def _read_header(root: Path) -> dict[str, Any]:
    """The store header of ``root``, checked to be one this covergan reads."""
    head = _read_json(root / STORE_FILE, "store header")
    if head.get("format") != STORE_FORMAT:
        raise StoreError(f"{root / STORE_FILE} is not a covergan feature store header")
    version = head.get("format_version")
    if not isinstance(version, int) or version > STORE_FORMAT_VERSION:
        raise StoreError(
            f"{root} was written by a newer covergan (store format_version {version}; this "
            f"covergan reads up to {STORE_FORMAT_VERSION}): upgrade covergan to read it"
        )
    return head


def folder_config(root: Path) -> CQTConfig | None:
    """The feature recipe in ``root/cqt_config.json`` (what ``covergan extract`` and
    ``covergan sample`` write beside their ``.npy`` files), or None without one.

    Raises
    ------
    StoreError
        The file is unreadable or not a recipe.
    """
    path = root / CONFIG_FILE
    if not path.is_file():
        return None
    data = _read_json(path, "feature recipe")
    try:
        return CQTConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise StoreError(f"the feature recipe {path} is not a CQT config: {error}") from error


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"no feature store at {path.parent} (no {path.name})") from None
    except (OSError, ValueError) as error:
        raise StoreError(f"cannot read the {what} {path}: {error}") from error
    if not isinstance(data, dict):
        raise StoreError(f"the {what} {path} is not a JSON object")
    return data


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("-", "_")


def _writer_tag() -> str:
    """``<host>-<pid>-``: which process writes a temporary file, so that a later writer can
    tell a dead writer's file from a live one's."""
    return f"{_host()}-{os.getpid()}-"


def _remove_stale_tmp(root: Path) -> None:
    """Delete the temporary files of writers of this host that no longer run (a killed
    ``extract``); those of live writers and of other hosts are left."""
    host = _host()
    for tmp in root.glob("*/.*.tmp"):
        found = _TMP_NAME.fullmatch(tmp.name)
        if found is not None and found["host"] == host and not _alive(int(found["pid"])):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _create_or_match(path: Path, content: dict[str, Any], *, what: str) -> None:
    """Write ``content`` to ``path`` unless it exists (atomically: the first writer wins), then
    check that the file holds ``content``."""
    text = json.dumps(content, indent=2, sort_keys=True) + "\n"
    fd, tmp = temp_file(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # no writer overwrites another's file
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    found = _read_json(path, what)
    if found != json.loads(text):
        diff = sorted(k for k in set(found) | set(content) if found.get(k) != content.get(k))
        raise StoreError(
            f"{path.parent} already holds a store with another {what} (differs in {diff}); "
            "write to another folder"
        )
