"""The documentation's code runs, and the site builds with ``mkdocs build --strict``.

Code-block convention (every page under ``docs/`` and the ``README.md``):

- A fenced block tagged ``python`` is executed. The blocks of one page run in order, in one
  namespace, in a fresh temporary working directory, so a block may use names and files made
  by earlier blocks of the *same page* only. Pages never share state.
- Executed blocks use tiny data so that this whole file runs in well under a minute on a
  2-core CPU: ``covergan.datasets.toy_covers(...)`` or small random arrays, features from
  ``CQTConfig(n_bins=24)``, and GANs like ``Augmenter(steps=5, window=16, gan={"g_width": 8,
  "d_width": 8, "batch_size": 4}, progress=False)``. Seed everything.
- A block that must not run (user data paths, long training, a GPU, ``torchrun``, a cluster)
  is tagged ``py``: it is highlighted exactly like ``python``. Shell commands are ``bash``,
  program output is ``text``.

A failing block is reported with the page and the Markdown line numbers: each block is
compiled with the page as its file name and padded so that traceback lines are the page's.
A page that runs longer than ``PAGE_TIMEOUT_S`` fails (on platforms with ``SIGALRM``), so an
illustrative block left as ``python`` (a cluster address, a corpus download) cannot hang CI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]

# An opening fence: up to 3 spaces (or any indentation inside lists and admonitions), three or
# more backticks, then the info string. The closing fence is the same backticks, alone.
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})[ \t]*(?P<info>[^`]*)$")
EXECUTED_TAG = "python"
PAGE_TIMEOUT_S = 90  # per page; the slowest page takes about 20 s on a busy 2-core CPU


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    tag: str
    line: int  # 1-based line of the first code line
    code: str


def code_blocks(text: str) -> list[Block]:
    """Every fenced (backtick) code block of a Markdown page, in order, dedented."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip()
        tag = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        blocks.append(Block(tag, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_code_blocks_parser() -> None:
    text = (
        "# t\n\n```python\na = 1\n```\n\n```py\nnot run\n```\n\n"
        '- item\n\n    ```python title="x"\n    b = a + 1\n    ```\n\n````bash\nls\n````\n'
    )
    blocks = code_blocks(text)
    assert [(b.tag, b.line) for b in blocks] == [
        ("python", 4),
        ("py", 8),
        ("python", 14),
        ("bash", 18),
    ]
    assert blocks[2].code == "b = a + 1\n"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_code_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in code_blocks(page.read_text(encoding="utf-8")) if b.tag == EXECUTED_TAG]
    if not blocks:
        pytest.skip(f"{_page_id(page)} has no ```{EXECUTED_TAG} blocks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COVERGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    try:
        with _time_limit(PAGE_TIMEOUT_S, _page_id(page)):
            for block in blocks:
                # pad so that traceback line numbers are the Markdown page's line numbers
                source = "\n" * (block.line - 1) + block.code
                code = compile(source, str(page), "exec")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pages may show small-sample warnings
                    exec(code, namespace)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


@contextmanager
def _time_limit(seconds: float, page: str) -> Iterator[None]:
    """Raise ``TimeoutError`` in the block running after ``seconds`` (needs ``SIGALRM``)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(
            f"{page} ran longer than {seconds} s: its ```{EXECUTED_TAG} blocks must use tiny "
            "data; tag blocks that need real data, long training or a network ```py"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
def test_page_time_limit() -> None:
    with pytest.raises(TimeoutError, match="longer than 0.1 s"), _time_limit(0.1, "page.md"):
        time.sleep(5)


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    missing = [
        name
        for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
        if _find_spec(name) is None
    ]
    if missing:
        pytest.skip(
            f"the docs toolchain is not installed ({', '.join(missing)} missing); "
            'pip install -e ".[dev]" installs it'
        )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # no theme end-of-life banner
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"


def _find_spec(name: str) -> object:
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a parent package is missing
        return None
