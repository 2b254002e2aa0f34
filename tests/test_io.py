"""Shared file helpers (covergan._io): atomic writes and append-only line files."""

from __future__ import annotations

from pathlib import Path

import pytest

from covergan._io import atomic_write, drop_cut_line


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
