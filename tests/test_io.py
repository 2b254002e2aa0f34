"""Shared file helpers (covergan._io): atomic writes and append-only line files."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from covergan._io import atomic_write, drop_cut_line, temp_dir


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.json"
    with atomic_write(path, text=True) as fh:
        fh.write("first")
    assert path.read_text() == "first"

    def half_written() -> None:
        with atomic_write(path) as fh:
            fh.write(b"second, half written")
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        half_written()
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]  # no temporary file left
    with pytest.raises(FileNotFoundError), atomic_write(tmp_path / "no" / "b", make_parents=False):
        pass


def test_a_parent_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.pt").write_text("keep me")
    match = r"x\.pt is a file, not a folder"
    for inside in ("z.pt", "a/b/z.pt"):
        with (
            pytest.raises(NotADirectoryError, match=match),
            atomic_write(tmp_path / "x.pt" / inside),
        ):
            pass
    assert (tmp_path / "x.pt").read_text() == "keep me"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_and_folders_put_in_place_get_the_modes_the_umask_gives(
    tmp_path: Path, umask: int
) -> None:
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "a.pt") as fh:
            fh.write(b"x")
        folder = temp_dir(tmp_path, ".bank.")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.pt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    assert folder.is_dir() and folder.name.startswith(".bank.") and not any(folder.iterdir())


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b"", b""),
        (b'{"a": 1}\n', b'{"a": 1}\n'),
        (b'{"a": 1}\n{"b": ', b'{"a": 1}\n'),
        (b'{"b": ', b""),
        (b"x\n" + b"y" * 200_000, b"x\n"),  # a cut line longer than one read-back block
    ],
)
def test_drop_cut_line(tmp_path: Path, content: bytes, kept: bytes) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with open(path, "rb+") as fh:
        drop_cut_line(fh)
    assert path.read_bytes() == kept
