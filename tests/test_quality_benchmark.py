"""benchmarks/quality.py: resumable results and the summary table (the runs themselves are
the library's quality_report, tested in test_cli and test_quality)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("covergan_bench_quality", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def row(seed: int, identity: float) -> dict[str, object]:
    return {
        "corpus": "toy",
        "seed": seed,
        "steps": 10,
        "versions/identity": identity,
        "versions/diversity": 0.9,
        "versions/artefact bins": 0,
        "controls rejected": 5,
        "controls": 5,
    }


def test_a_line_cut_by_a_kill_is_ignored_and_ended(bench: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    bench._append_row(path, row(0, 0.9))
    with path.open("a") as f:
        f.write('{"corpus": "toy", "se')  # killed mid-write
    assert [r["seed"] for r in bench._read_rows(path)] == [0]
    bench._append_row(path, row(1, 0.7))
    assert [r["seed"] for r in bench._read_rows(path)] == [0, 1]
    assert json.loads(path.read_text().splitlines()[-1])["seed"] == 1


def test_summary_states_the_targets(bench: ModuleType) -> None:
    table = bench.summarise([row(0, 0.9), row(1, 0.6)])
    assert "| toy | versions | identity | 0.75 ± 0.15 | 0.90, 0.60 | >= 0.8 (NOT met) |" in table
    assert "| toy | versions | diversity | 0.90 ± 0.00 | 0.90, 0.90 | >= 0.8 (met) |" in table
    assert "| toy | controls | rejected | | 5/5, 5/5 | all |" in table
    assert "and how" not in table  # rows written before the description have none
    described = [
        {**row(0, 0.9), "versions artefacts": ""},
        {**row(1, 0.6), "versions artefacts": "0 flicker under (40%)"},
    ]
    lines = bench.summarise(described).splitlines()
    assert lines[-2:] == [
        "- toy seed 0, versions artefacts: none",
        "- toy seed 1, versions artefacts: 0 flicker under (40%)",
    ]


def test_runs_that_differ_write_their_reports_apart(bench: ModuleType, tmp_path: Path) -> None:
    key = {
        "corpus": "toy",
        "seed": 0,
        "steps": bench.DEFAULT_STEPS,
        "storage": "memory",
        "versions": {},
        "augmenter": {},
        "models": list(bench.MODELS),
    }
    variants = [
        key,
        {**key, "steps": 3000},
        {**key, "storage": "float16"},
        {**key, "versions": {"diversity_weight": 0.02}},
        {**key, "augmenter": {"references": 16}},
        {**key, "models": ["versions"]},
    ]
    folders = [bench.report_dir(v, tmp_path) for v in variants]
    assert folders[0] == tmp_path / "toy-s0"
    assert folders[1] == tmp_path / "toy-s0-steps3000"
    assert len(set(folders)) == len(variants)
