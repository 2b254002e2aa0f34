"""Quality targets of the default sampler: the suite of ``covergan.quality`` over seeds.

For each corpus and seed: hold out one recording of every work with three or more
(``split_recordings``), fit ``Augmenter(model=("versions", "gan"))`` on the rest, and run
``covergan.report.quality_report`` (its CSI embedding trained on the training side). Prints,
per model, the identity and diversity ratios against the targets of issue 18 (>= 0.8 of the
held-out floor), realism, memorisation and spectral artefacts, and whether every negative
control was rejected, as mean ± std over seeds with the per-seed values, then what each run's
flagged bins do (``ArtefactCheck.describe``). Each finished run is
appended to ``WORKDIR/results.jsonl`` and skipped when the same command runs again, so an
interrupted run resumes; each run's report stays in ``WORKDIR/<corpus>-s<seed>[-<variant>]/``.
Models are fitted for 1000 steps unless ``--steps`` says otherwise, to fit a 2-core machine's
time; ``Augmenter``'s own default is 3000.

Corpora: ``chorales`` (the demo data, render seed 0) and ``toy`` (40 toy songs of 5 versions,
30 s each, so that every song has held-out recordings; extracted once into
``WORKDIR/toy.pt``). The toy corpus makes its versions with the transforms the version model
learns (key, tempo, timbre), so it flatters the version model; the chorales less so.

``--storage float16`` (or ``float32``) writes the corpus once into a
:class:`~covergan.store.FeatureStore` in ``WORKDIR`` and fits from the memory-mapped store, to
measure what half-precision storage costs; ``--versions JSON`` overrides fields of the version
model's config (a variant under test), ``--augmenter JSON`` other ``Augmenter`` arguments
(``'{"references": 16}'``) and ``--models versions`` leaves out the class GAN (a variant of
the version model does not change it). All are part of a run's key in ``results.jsonl``.

Usage::

    python benchmarks/quality.py                                   # both corpora, seeds 0-2
    python benchmarks/quality.py --data chorales --seeds 0 --steps 300   # a quick look
    python benchmarks/quality.py --data chorales --storage float16
    python benchmarks/quality.py --versions '{"diversity_weight": 0.01}'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from covergan import Augmenter
from covergan.data import CQTDataset, split_recordings
from covergan.report import quality_report
from covergan.store import FeatureStore

TARGET = 0.8  # identity and diversity, as a ratio to the held-out real floor
MODELS = ("versions", "gan")  # fitted by default: the default sampler and the class GAN beside it
DEFAULT_STEPS = 1000  # steps of each model unless --steps (Augmenter's own default is 3000)
DEFAULT_STORAGE = "memory"  # features held in memory unless --storage


#: Toy corpora (``toy_covers`` arguments), each rendered and extracted once into the workdir.
TOY: dict[str, dict[str, Any]] = {
    "toy": {"n_songs": 40, "versions": 5, "seed": 0, "duration": 30.0},
    "toy300": {"n_songs": 300, "versions": 5, "seed": 0, "duration": 30.0},
}


def load(corpus: str, workdir: Path) -> CQTDataset:
    """``chorales``, ``toy`` (40 works x 5), ``toy300`` (300 works x 5; about 4 minutes to
    render and extract the first time), a saved dataset (``.pt``) or a folder."""
    if corpus == "chorales":
        from covergan.datasets import chorale_covers

        return chorale_covers(seed=0, progress=False)
    if corpus in TOY:
        path = workdir / f"{corpus}.pt"
        if not path.is_file():
            from covergan.datasets import toy_covers

            toy_covers(**TOY[corpus]).to_dataset(progress=True).save(path)
        return CQTDataset.load(path)
    if Path(corpus).is_file():
        return CQTDataset.load(corpus)
    if Path(corpus).is_dir():
        return CQTDataset.from_folder(corpus, progress=False)
    raise SystemExit(f"unknown corpus {corpus!r}: chorales, toy, toy300, a .pt file or a folder")


def stored(data: CQTDataset, root: Path, dtype: str) -> CQTDataset:
    """``data`` written once into a feature store at ``root`` and opened from it."""
    store = FeatureStore.create(root, config=data.config, dtype=dtype)  # type: ignore[arg-type]
    for x, song, name in zip(data.features, data.song_ids, data.names, strict=True):
        store.add(song, name, x)
    return FeatureStore.open(root).dataset()


def run_one(key: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Fit both models on one seed's split and measure them; a JSON-ready row."""
    corpus, seed, storage = key["corpus"], key["seed"], key["storage"]
    data = load(corpus, workdir)
    if storage != DEFAULT_STORAGE:
        data = stored(data, workdir / f"{corpus}-{storage}-store", storage)
    train, heldout = split_recordings(data, holdout=1, min_recordings=3, seed=seed)
    t0 = time.perf_counter()
    aug = Augmenter(
        model=tuple(key["models"]),
        steps=key["steps"],
        seed=seed,
        progress=False,
        versions=key["versions"] or None,
        **key["augmenter"],
    )
    aug.fit(train)
    fit_s = time.perf_counter() - t0
    report = quality_report(aug, train, heldout, report_dir(key, workdir), seed=seed)
    row: dict[str, Any] = {**key, "fit_s": fit_s}
    for name, suite in report.suites.items():
        for m in suite.metrics:
            row[f"{name}/{m.name}"] = m.ratio
        artefacts = report.artefacts.get(name)
        row[f"{name}/artefact bins"] = None if artefacts is None else len(artefacts.bins)
        row[f"{name} artefacts"] = "" if artefacts is None else artefacts.describe()
    row["controls rejected"] = sum(not c.passed for c in report.controls.values())
    row["controls"] = len(report.controls)
    row["report_s"] = report.seconds
    return row


def report_dir(key: dict[str, Any], workdir: Path) -> Path:
    """The run's report folder: ``<corpus>-s<seed>``, then whatever differs from the default
    command (steps, storage, overrides, models), so no run overwrites another's report."""
    tag = "" if key["steps"] == DEFAULT_STEPS else f"-steps{key['steps']}"
    tag += "" if key["storage"] == DEFAULT_STORAGE else f"-{key['storage']}"
    for overrides in (key["versions"], key["augmenter"]):
        if overrides:
            tag += "-" + "-".join(f"{k}{v}" for k, v in sorted(overrides.items()))
    if tuple(key["models"]) != MODELS:
        tag += "-" + "+".join(key["models"])
    return workdir / f"{key['corpus']}-s{key['seed']}{tag}"


def summarise(rows: list[dict[str, Any]]) -> str:
    """Mean ± std over seeds of every ratio, per corpus, with the targets."""
    lines = [
        "| corpus | model | metric | mean ± std | seeds | target |",
        "|---|---|---|---|---|---|",
    ]
    for corpus in sorted({r["corpus"] for r in rows}):
        mine = [r for r in rows if r["corpus"] == corpus]
        keys = [k for k in mine[0] if "/" in k]
        for key in keys:
            values = np.asarray([r[key] for r in mine if r[key] is not None], dtype=float)
            if values.size == 0:
                continue
            model, metric = key.split("/")
            target = f">= {TARGET}" if metric in ("identity", "diversity") else ""
            met = "" if not target else (" (met)" if values.mean() >= TARGET else " (NOT met)")
            per_seed = ", ".join(f"{v:.2f}" for v in values)
            lines.append(
                f"| {corpus} | {model} | {metric} | {values.mean():.2f} ± {values.std():.2f} | "
                f"{per_seed} | {target}{met} |"
            )
        rejected = [f"{r['controls rejected']}/{r['controls']}" for r in mine]
        lines.append(f"| {corpus} | controls | rejected | | {', '.join(rejected)} | all |")
    how = [  # rows written before the description was recorded have none
        f"- {r['corpus']} seed {r['seed']}, {key}: {r[key] or 'none'}"
        for r in rows
        for key in r
        if key.endswith(" artefacts")
    ]
    if how:
        lines += ["", "Flagged bins, and how (`ArtefactCheck.describe`):", *how]
    return "\n".join(lines)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Finished runs; a line cut short by a kill during its write is ignored (and redone)."""
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _append_row(path: Path, row: dict[str, Any]) -> None:
    """One whole line per finished run, after ending a line a kill may have cut short."""
    cut = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with path.open("a") as f:
        f.write(("\n" if cut else "") + json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=["chorales", "toy"], help="corpora")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps of each model")
    parser.add_argument("--workdir", type=Path, default=Path("quality-bench"))
    parser.add_argument(
        "--storage", choices=(DEFAULT_STORAGE, "float32", "float16"), default=DEFAULT_STORAGE
    )
    parser.add_argument("--versions", type=json.loads, default={}, help="VersionConfig fields")
    parser.add_argument(
        "--augmenter", type=json.loads, default={}, help="Augmenter arguments, e.g. references"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="models to fit")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = args.workdir / "results.jsonl"
    done = _read_rows(results)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    variant = {
        "steps": args.steps,
        "storage": args.storage,
        "versions": args.versions,
        "augmenter": args.augmenter,
        "models": args.models,
    }
    for corpus in args.data:
        for seed in args.seeds:
            key = {"corpus": corpus, "seed": seed, **variant}
            if any(_key(r) == key for r in done):
                continue
            row = run_one(key, args.workdir)
            _append_row(results, row)
            done.append(row)
            print(f"{corpus} seed {seed}: fit {row['fit_s']:.0f} s, report {row['report_s']:.0f} s")
    rows = [r for r in done if r["corpus"] in args.data and r["seed"] in args.seeds]
    print(summarise([r for r in rows if {k: _key(r)[k] for k in variant} == variant]))


def _key(row: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run (rows written before a field existed have its default)."""
    return {
        "corpus": row["corpus"],
        "seed": row["seed"],
        "steps": row["steps"],
        "storage": row.get("storage", DEFAULT_STORAGE),
        "versions": row.get("versions", {}),
        "augmenter": row.get("augmenter", {}),
        "models": row.get("models", list(MODELS)),
    }


if __name__ == "__main__":
    main()
