"""The examples run (tiny settings) and do what their docstrings say."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_csi_training_loop_gains_synthetic_items(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("csi_training_loop")
    common = ["--tiny", "--songs", "5", "--epochs", "1", "--steps", "2"]
    base = example.main([*common, "--no-covergan"])
    n_base = int(re.findall(r"(\d+) training items", capsys.readouterr().out)[-1])
    with_versions = example.main(common)
    n_versions = int(re.findall(r"(\d+) training items", capsys.readouterr().out)[-1])
    assert 0.0 <= base <= 1.0 and 0.0 <= with_versions <= 1.0
    assert n_versions > n_base  # minority songs were topped up with synthetic windows


def test_covergan_lines_are_few() -> None:
    lines = (EXAMPLES / "csi_training_loop.py").read_text().splitlines()
    assert len([line for line in lines if line.rstrip().endswith("# covergan")]) == 5
