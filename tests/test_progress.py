"""Progress bars: redrawn on a terminal, whole lines in a log (covergan._progress)."""

from __future__ import annotations

import io

from covergan._progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_whole_lines_not_redraws() -> None:
    log = io.StringIO()
    for _ in progress_bar(range(5000), desc="steps", file=log, leave=True):
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 2, lines  # the start and the final state, once (a fast loop)
    assert lines[-1].startswith("steps: 100%") and "5000/5000" in lines[-1]


def test_forced_refreshes_are_rate_limited_too() -> None:
    log = io.StringIO()
    bar = progress_bar(total=100, desc="gan", file=log, leave=False)
    for step in range(100):
        bar.set_postfix(loss=step)  # forces a refresh on every step, as the GAN's bar does
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2, lines  # the start, and the last state when the bar closes
    assert "100/100" in lines[-1] and "loss=99" in lines[-1]


def test_a_terminal_gets_the_usual_bar() -> None:
    term = _Terminal()
    for _ in progress_bar(range(3), desc="steps", file=term, mininterval=0):
        pass
    assert "\r" in term.getvalue()


def test_disabled_writes_nothing() -> None:
    log = io.StringIO()
    bar = progress_bar(total=3, enabled=False, file=log)
    bar.update(3)
    bar.close()
    assert log.getvalue() == ""
