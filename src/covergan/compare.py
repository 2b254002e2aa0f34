"""Does augmentation help a CSI model on this data, by how much, and how sure are we?

:func:`compare` trains the reference CSI model (:mod:`covergan.csi`) once per condition
(by default ``"none"``, ``"classic"``, ``"versions"``, ``"classic+versions"``; on request
``"gan"`` and ``"classic+gan"``), protocol and seed, and reports paired differences against a
baseline with 95% intervals::

    result = compare(dataset, seeds=3, out="compare-run")
    report = result.to_markdown()   # means per condition, paired differences, verdicts

Protocols
    ``"unseen-works"``: the works are split in two halves (seeded; works with two or more
    recordings and single recordings each halved); the CSI model and the version model
    train on one half, and the other half's recordings retrieve each other all-vs-all
    (MAP, P@10, MR1). ``"rare-songs"``: half of the works with two or more recordings
    (seeded) keep one recording in training; their other recordings query a gallery of
    every training recording (MAP, MR1, top-1).

Conditions
    The CSI model's batch augmentation: none; classic
    (:func:`~covergan.augment.classic.csi_augment`); the version model as a transform
    (:meth:`covergan.Augmenter.version_augment`, ``p=0.2``, fitted on the training side);
    or both (versions first). The class GAN's conditions swap in, for the same share of
    training windows, one of :data:`GAN_POOL` class-GAN samples of the window's own song
    (the GAN fitted on the training side, its samples drawn once per protocol and seed),
    alone or before the classic augmentation: the library's other model, measured on the
    same footing.

Honesty by construction: within a protocol and seed every condition gets the same split,
the same CSI initialisation and the same batch order (the augmentations draw from their
own seeded streams), so only the augmentation differs; differences are paired by seed, and
an interval that covers 0 reads "no detectable difference". With ``out=``, each finished
run is one line of ``results.jsonl`` (written whole, then flushed), and a run of the same
arguments continues from it without recomputing anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from covergan._checks import is_int as _is_int
from covergan._io import atomic_write, drop_cut_line
from covergan.augment.classic import Compose, csi_augment
from covergan.csi import (
    CSINet,
    embed_dataset,
    gallery_metrics_from_embeddings,
    retrieval_metrics,
    train_csi,
)
from covergan.data import CQTDataset, SongId
from covergan.errors import DatasetError, ParameterError
from covergan.training import derive_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from covergan.augmenter import Augmenter

__all__ = [
    "CONDITIONS",
    "DEFAULT_CONDITIONS",
    "GAN_POOL",
    "METRICS",
    "MIN_WORKS",
    "PROTOCOLS",
    "CompareSettings",
    "Comparison",
    "Difference",
    "compare",
]

logger = logging.getLogger(__name__)

#: Every augmentation condition, the first the default baseline.
CONDITIONS = ("none", "classic", "versions", "classic+versions", "gan", "classic+gan")
#: The conditions :func:`compare` runs unless told otherwise; the class GAN's two cost a
#: class-GAN fit per protocol and seed and are asked for by name.
DEFAULT_CONDITIONS = CONDITIONS[:4]
#: Class-GAN samples drawn per training song for the ``"gan"`` conditions' swap-in.
GAN_POOL = 16
#: The evaluation protocols.
PROTOCOLS = ("unseen-works", "rare-songs")
#: The metrics each protocol reports (``mr1`` is lower-is-better, the others higher).
METRICS: dict[str, tuple[str, ...]] = {
    "unseen-works": ("map", "p_at_10", "mr1"),
    "rare-songs": ("map", "mr1", "top1"),
}
#: Works with two or more recordings a comparison needs (two per side of a split).
MIN_WORKS = 4
#: Seeds ``seeds="auto"`` starts with, and the most it adds up to.
AUTO_SEEDS, MAX_AUTO_SEEDS = 3, 10
RESULTS_FILE = "results.jsonl"
SETTINGS_FILE = "settings.json"

_STREAM_INIT, _STREAM_CLASSIC, _STREAM_VERSIONS, _STREAM_GAN = 31, 32, 33, 34


@dataclass(frozen=True)
class CompareSettings:
    """What a run's numbers depend on besides the data and the seed; a resumed ``out``
    folder must have been written with the same settings.

    Parameters
    ----------
    window : int, optional
        CSI training window (frames); default the augmenter's rule (median recording
        length, at most 200, a multiple of 4).
    csi_steps : int, optional
        CSI training steps; default ``60`` passes over the training recordings at
        ``csi_batch`` (at least 200, at most 3000), so short and long catalogues both train.
    csi_batch : int
    csi_lr : float
    csi : mapping
        Other :class:`~covergan.csi.CSIConfig` fields (e.g. ``{"channels": [16, 32, 64, 128]}``).
    version_steps : int
        Adversarial steps of each version model (one per protocol and seed), and of each
        class GAN when a ``"gan"`` condition runs.
    version_p : float
        Share of windows the version transform replaces (and the class GAN's swap-in).
    augmenter : mapping
        Other :class:`~covergan.Augmenter` arguments (e.g. ``{"versions": {...}}``).
    device : str
        Where models train (``"auto"``: CUDA when there is one); evaluation runs on the CPU.
    """

    window: int | None = None
    csi_steps: int | None = None
    csi_batch: int = 32
    csi_lr: float = 2e-3
    csi: Mapping[str, Any] = field(default_factory=dict)
    version_steps: int = 400
    version_p: float = 0.2
    augmenter: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["csi"], d["augmenter"] = dict(self.csi), dict(self.augmenter)
        return json.loads(json.dumps(d, default=list))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Difference:
    """A condition against the baseline on one metric, paired by seed.

    ``mean`` is condition minus baseline (for ``mr1`` a negative value is an improvement);
    ``low``/``high`` bound the 95% t-interval of the mean (infinite with one seed);
    ``resolved`` is whether the interval excludes 0.
    """

    protocol: str
    metric: str
    condition: str
    baseline: str
    n: int
    mean: float
    std: float
    low: float
    high: float

    @property
    def resolved(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def verdict(self) -> str:
        """Plain words: better, worse, or no detectable difference."""
        if not self.resolved:
            return "no detectable difference"
        better = (self.mean < 0) if self.metric == "mr1" else (self.mean > 0)
        return "better" if better else "worse"


@dataclass
class Comparison:
    """The runs of a comparison and what they say.

    Attributes
    ----------
    rows : list of dict
        One per finished run: ``protocol``, ``seed``, ``condition``, the protocol's metrics,
        ``seconds`` (CSI training), ``eval_seconds``, ``csi_steps``, ``n_train``,
        ``n_queries``, and on the run that fitted (or loaded) its protocol and seed's version
        model, ``version_fit_seconds``, its class GAN (and drew its samples),
        ``gan_fit_seconds``.
    settings : dict
        :class:`CompareSettings` as a dict, plus ``data`` (works, recordings, fingerprint).
    notes : list of str
        What the run stopped on or left out (budget, unresolved differences).
    """

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def timings(self) -> dict[str, float]:
        """Where the time went, in seconds summed over the runs: ``version_fit`` (the version
        models), ``gan_fit`` (the class GANs and their samples), ``csi_train``, ``evaluate``."""
        return {
            "version_fit": sum(r.get("version_fit_seconds", 0.0) for r in self.rows),
            "gan_fit": sum(r.get("gan_fit_seconds", 0.0) for r in self.rows),
            "csi_train": sum(r.get("seconds", 0.0) for r in self.rows),
            "evaluate": sum(r.get("eval_seconds", 0.0) for r in self.rows),
        }

    def conditions(self) -> list[str]:
        return _unique(r["condition"] for r in self.rows)

    def protocols(self) -> list[str]:
        return _unique(r["protocol"] for r in self.rows)

    def seeds(self) -> list[int]:
        return sorted({int(r["seed"]) for r in self.rows})

    def differences(self, baseline: str = "none") -> list[Difference]:
        """Every condition against ``baseline``, per protocol and metric, over the seeds
        where both finished."""
        out = []
        for protocol in self.protocols():
            runs = {(r["seed"], r["condition"]): r for r in self.rows if r["protocol"] == protocol}
            for condition in [c for c in self.conditions() if c != baseline]:
                seeds = sorted(s for s, c in runs if c == condition and (s, baseline) in runs)
                for metric in METRICS[protocol]:
                    d = [runs[s, condition][metric] - runs[s, baseline][metric] for s in seeds]
                    if d:
                        out.append(_difference(protocol, metric, condition, baseline, d))
        return out

    def to_markdown(self, baseline: str = "none") -> str:
        """The report: the data and settings, mean ± std per condition, paired differences."""
        data = self.settings.get("data", {})
        lines = [
            "# Does augmentation help? A paired CSI comparison",
            "",
            f"Data: {data.get('works', '?')} works, {data.get('recordings', '?')} recordings "
            f"({data.get('multi_works', '?')} works with two or more). Seeds: "
            f"{', '.join(map(str, self.seeds())) or 'none'} (n = {len(self.seeds())}). "
            f"CSI: {self.settings.get('csi_steps') or 'auto'} steps, batch "
            f"{self.settings.get('csi_batch')}; version model (and class GAN): "
            f"{self.settings.get('version_steps')} steps, p = {self.settings.get('version_p')}.",
            "",
        ]
        for protocol in self.protocols():
            metrics = METRICS[protocol]
            lines += [f"## {protocol}", "", "| condition | " + " | ".join(metrics) + " | runs |"]
            lines.append("|---" * (len(metrics) + 2) + "|")
            for condition in self.conditions():
                runs = [r for r in self.rows if r["protocol"] == protocol]
                runs = [r for r in runs if r["condition"] == condition]
                cells = [_pm([r[m] for r in runs]) for m in metrics]
                lines.append(f"| {condition} | " + " | ".join(cells) + f" | {len(runs)} |")
            lines.append("")
        diffs = self.differences(baseline)
        if diffs:
            lines += [
                f"## Paired differences against `{baseline}` (95% t-interval over seeds)",
                "",
                "| protocol | condition | metric | n | difference | 95% interval | verdict |",
                "|---|---|---|---|---|---|---|",
            ]
            for d in diffs:
                lines.append(
                    f"| {d.protocol} | {d.condition} | {d.metric} | {d.n} | {d.mean:+.4f} | "
                    f"[{d.low:+.4f}, {d.high:+.4f}] | {d.verdict} |"
                )
            lines.append("")
        spent = self.timings()
        lines.append(
            "Time: "
            + ", ".join(
                f"{k.replace('_', ' ')} {v / 60:.1f} min"
                for k, v in spent.items()
                if v > 0 or not k.endswith("_fit")  # a model no condition asked for: left out
            )
            + f" ({len(self.rows)} runs)."
        )
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def plot(self, baseline: str = "none") -> Figure:
        """Paired MAP differences against ``baseline`` with their 95% intervals, one panel
        per protocol (a matplotlib ``Figure``, not registered with pyplot: save it with
        ``fig.savefig(path)``)."""
        from matplotlib.figure import Figure

        protocols = self.protocols()
        panels = max(1, len(protocols))
        fig = Figure(figsize=(5 * panels, 3.2), layout="constrained")  # not kept by pyplot
        axes = fig.subplots(1, panels)
        axes = np.atleast_1d(axes)
        for ax, protocol in zip(axes, protocols, strict=False):
            diffs = [d for d in self.differences(baseline) if d.protocol == protocol]
            diffs = [d for d in diffs if d.metric == "map"]
            y = np.arange(len(diffs))
            finite = [(d.mean - d.low if math.isfinite(d.low) else 0.0) for d in diffs]
            ax.errorbar([d.mean for d in diffs], y, xerr=finite, fmt="o", capsize=3)
            ax.axvline(0, color="grey", lw=1)
            ax.set_yticks(y, [d.condition for d in diffs])
            ax.set_xlabel(f"MAP difference vs {baseline}")
            ax.set_title(protocol)
        return fig

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the comparison as one JSON file (``load`` reads it back)."""
        with atomic_write(path, text=True) as fh:
            fh.write(json.dumps(dataclasses.asdict(self), indent=1))
        return Path(path).expanduser()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Comparison:
        """Read :meth:`save` output, or an ``out`` folder (its settings and results).

        Raises
        ------
        ParameterError
            A path that holds neither.
        """
        source = Path(path).expanduser()
        if source.is_dir():
            settings = _read_settings(source)
            if settings is None:
                raise ParameterError(f"{source} holds no comparison ({SETTINGS_FILE} is missing)")
            return cls(_read_rows(source / RESULTS_FILE), settings)
        try:
            data = json.loads(source.read_text())
            return cls(list(data["rows"]), dict(data["settings"]), list(data.get("notes", [])))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ParameterError(f"{source} is not a saved comparison: {error}") from error


# ----------------------------------------------------------------------------------- running


def compare(
    dataset: CQTDataset,
    *,
    conditions: Sequence[str] = DEFAULT_CONDITIONS,
    protocols: Sequence[str] = PROTOCOLS,
    seeds: int | Sequence[int] | Literal["auto"] = 3,
    budget: float | None = None,
    baseline: str = "none",
    settings: CompareSettings | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Comparison:
    """Train and evaluate the CSI model under each condition; paired differences.

    Parameters
    ----------
    dataset : CQTDataset
        Recordings labelled by work, in a feature format (``[n_bins, n_frames]`` each).
    conditions : sequence of str
        From :data:`CONDITIONS`; ``baseline`` is added when missing.
    protocols : sequence of str
        From :data:`PROTOCOLS`.
    seeds : int, sequence of int, or "auto"
        Seeds 0..n-1, the given seeds, or ``"auto"``: 3 seeds, then one more at a time
        until every difference's interval excludes 0, :data:`MAX_AUTO_SEEDS` are done, or
        the budget ends (the notes say which differences were resolved).
    budget : float, optional
        Seconds; no new run starts after it (what finished is reported).
    baseline : str
        The condition differences are taken against.
    settings : CompareSettings, optional
    out : str or PathLike, optional
        Folder for ``settings.json``, ``results.jsonl`` (one line per finished run) and
        the fitted models; a folder holding a run with other settings or other data
        is refused (the error names what differs), one with the same continues.
    progress : bool
        Progress bars (whole lines when the output is not a terminal).

    Returns
    -------
    Comparison

    Raises
    ------
    DatasetError
        Fewer than :data:`MIN_WORKS` works with two or more recordings (silent recordings,
        whose features are constant, are left out first and named in the notes).
    ParameterError
        Unknown conditions or protocols, bad seeds or budget, or an ``out`` folder of
        another run.
    """
    settings = settings if settings is not None else CompareSettings()
    conditions = _check_names(list(dict.fromkeys([baseline, *conditions])), CONDITIONS, "condition")
    protocols = _check_names(list(dict.fromkeys(protocols)), PROTOCOLS, "protocol")
    seed_list, auto = _seed_plan(seeds)
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
        raise ParameterError(f"budget={budget!r} must be a positive number of seconds or None")
    dataset, silent = _without_silence(dataset)
    summary = _data_summary(dataset)
    if summary["multi_works"] < MIN_WORKS:
        raise DatasetError(
            f"a comparison needs at least {MIN_WORKS} works with two or more recordings (two "
            f"on each side of a split); the dataset has {summary['multi_works']} among its "
            f"{summary['works']} works ({summary['recordings']} recordings)"
        )
    stored = {**settings.as_dict(), "data": summary}
    folder = None if out is None else Path(out).expanduser()
    if folder is not None:
        _claim(folder, stored)
    rows = _read_rows(folder / RESULTS_FILE) if folder is not None else []
    runner = _Runner(dataset, settings, folder, rows, progress)
    deadline = None if budget is None else time.monotonic() + float(budget)
    notes = [f"{len(silent)} silent recordings left out: {', '.join(silent)}"] if silent else []
    used: set[int] = set()
    for seed in _seeds(seed_list, auto, lambda: runner.result(stored, used), baseline):
        used.add(seed)
        finished = all(runner.run(p, seed, conditions, deadline) for p in protocols)
        if not finished:
            notes.append(f"the budget of {budget:g} s ended during seed {seed}")
            break
    result = runner.result(stored, used)
    result.rows = [
        r for r in result.rows if r["condition"] in conditions and r["protocol"] in protocols
    ]
    unresolved = [d for d in result.differences(baseline) if not d.resolved]
    if auto:
        notes.append(
            f"seeds='auto': {len(result.seeds())} seeds; "
            + (
                "every difference resolved"
                if not unresolved
                else f"{len(unresolved)} of {len(result.differences(baseline))} differences "
                "still cover 0"
            )
        )
    result.notes = notes
    return result


class _Runner:
    """Runs (protocol, seed, condition) units, skipping finished ones and appending rows."""

    def __init__(
        self,
        data: CQTDataset,
        settings: CompareSettings,
        folder: Path | None,
        rows: list[dict[str, Any]],
        progress: bool,
    ) -> None:
        self.data, self.settings, self.folder, self.progress = data, settings, folder, progress
        self.rows = rows
        if folder is not None and (folder / RESULTS_FILE).is_file():
            with open(folder / RESULTS_FILE, "rb+") as fh:
                drop_cut_line(fh)  # so the next row starts clean
        self.done = {(r["protocol"], int(r["seed"]), r["condition"]) for r in rows}

    def result(self, stored: dict[str, Any], seeds: set[int]) -> Comparison:
        """The finished runs of ``seeds`` (a folder may hold runs of other seeds too)."""
        return Comparison([r for r in self.rows if int(r["seed"]) in seeds], dict(stored))

    def run(self, protocol: str, seed: int, conditions: list[str], deadline: float | None) -> bool:
        """Every missing condition of one protocol and seed; False when the budget ended."""
        todo = [c for c in conditions if (protocol, seed, c) not in self.done]
        if not todo:
            return True
        train, evaluate = _SPLITS[protocol](self.data, seed)
        window = self.settings.window or train.default_window()
        aug: Augmenter | None = None
        pool: list[torch.Tensor] | None = None  # the class GAN's samples, by class index
        for condition in todo:
            if deadline is not None and time.monotonic() > deadline:
                return False
            row: dict[str, Any] = {"protocol": protocol, "seed": seed, "condition": condition}
            t0 = time.perf_counter()
            if "versions" in condition and aug is None:
                aug = self._augmenter(train, protocol, seed, window, "versions")
                row["version_fit_seconds"] = time.perf_counter() - t0
            if "gan" in condition and pool is None:
                gan = self._augmenter(train, protocol, seed, window, "gan")
                pool = _gan_pool(gan, train, _stream(seed, _STREAM_GAN))
                row["gan_fit_seconds"] = time.perf_counter() - t0
            logger.info("compare: %s, seed %d, %s", protocol, seed, condition)
            row.update(self._csi_run(train, evaluate, seed, window, condition, aug, pool))
            self._append(row)
        return True

    def _augmenter(
        self, train: CQTDataset, protocol: str, seed: int, window: int, kind: str
    ) -> Augmenter:
        """The version model or class GAN (``kind``) of one protocol and seed (fitted once;
        kept in ``out``)."""
        from covergan.augmenter import Augmenter

        name = f"{protocol}-s{seed}{'' if kind == 'versions' else '-gan'}.aug"
        path = None if self.folder is None else self.folder / "models" / name
        if path is not None and path.is_file():
            aug = Augmenter.load(path, device=self.settings.device)
            aug.progress = self.progress
            return aug
        other = "gan" if kind == "versions" else "versions"  # the other model's settings
        kwargs = {
            "steps": self.settings.version_steps,
            **{k: v for k, v in self.settings.augmenter.items() if k != other},
        }
        aug = Augmenter(
            model=kind,
            window=window,
            seed=seed,
            device=self.settings.device,
            progress=self.progress,
            **kwargs,
        ).fit(train)
        if path is not None:
            aug.save(path)
        return aug

    def _csi_run(
        self,
        train: CQTDataset,
        evaluate: _Evaluation,
        seed: int,
        window: int,
        condition: str,
        aug: Augmenter | None,
        pool: list[torch.Tensor] | None,
    ) -> dict[str, Any]:
        s = self.settings
        model = CSINet(
            n_classes=train.n_songs,
            n_bins=train.n_bins,
            seed=derive_seed(seed, _STREAM_INIT) % 2**31,
            **dict(s.csi),
        )
        steps = s.csi_steps or int(np.clip(math.ceil(60 * len(train) / s.csi_batch), 200, 3000))
        data: Any = train.windows(window, crop="random", seed=seed)
        if pool is not None and "gan" in condition:
            data = _GanSwapIn(data, pool, s.version_p, _stream(seed, _STREAM_GAN))
        history = train_csi(
            model,
            data,
            steps=steps,
            batch_size=min(s.csi_batch, len(train)),
            lr=s.csi_lr,
            seed=seed,
            device=s.device,
            augment=_augmentation(condition, train, seed, aug, s.version_p),
            progress=self.progress,
            log_every=0,
        )
        model.cpu()
        t0 = time.perf_counter()
        metrics = evaluate(model)
        return {
            **metrics,
            "seconds": history.seconds,
            "eval_seconds": time.perf_counter() - t0,
            "csi_steps": steps,
            "n_train": len(train),
        }

    def _append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.done.add((row["protocol"], int(row["seed"]), row["condition"]))
        if self.folder is not None:
            with open(self.folder / RESULTS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())


def _stream(seed: int, stream: int) -> int:
    """The seed of one of a run's random streams (the class GAN's pool and swap-in share
    theirs)."""
    return derive_seed(seed, stream) % 2**62


def _augmentation(
    condition: str, train: CQTDataset, seed: int, aug: Augmenter | None, p: float
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The batch transform of a condition, on its own seeded stream."""
    bps = train.config.bins_per_semitone if train.config is not None else 1
    parts: list[Any] = []  # the class GAN's swap-in is in the data (_GanSwapIn)
    if "versions" in condition:
        if aug is None:
            raise ParameterError(f"condition {condition!r} needs a fitted version model")
        parts.append(aug.version_augment(p, seed=_stream(seed, _STREAM_VERSIONS)))
    if "classic" in condition:
        classic_seed = _stream(seed, _STREAM_CLASSIC)
        parts.append(
            csi_augment(bins_per_semitone=bps, silence=train.silence_value, seed=classic_seed)
        )
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Compose(parts)


def _gan_pool(gan: Augmenter, train: CQTDataset, seed: int) -> list[torch.Tensor]:
    """:data:`GAN_POOL` class-GAN samples of every training song, by class index, each
    ``[GAN_POOL, 1, n_bins, window]`` in the feature format (drawn once per protocol and
    seed, for both class-GAN conditions)."""
    songs = train.index.ids
    drawn = gan.sample_many({s: GAN_POOL for s in songs}, method="gan", seed=seed)
    return [drawn[s] for s in songs]


class _GanSwapIn:
    """A window view whose item ``i`` is, with probability ``p``, one of ``pools[label]``
    instead (the choice seeded by ``seed``, the epoch and ``i``; the real crop is read either
    way, so the other items match the view's)."""

    def __init__(self, view: Any, pools: list[torch.Tensor], p: float, seed: int) -> None:
        self.view, self.pools, self.p, self.seed, self.epoch = view, pools, float(p), int(seed), 0

    def __len__(self) -> int:
        return len(self.view)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.view.set_epoch(epoch)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.view[i][:2]
        rng = np.random.default_rng((self.seed, self.epoch, int(i)))
        if rng.random() < self.p:
            pool = self.pools[int(y)]
            x = pool[int(rng.integers(pool.shape[0]))]
        return x, y


# ----------------------------------------------------------------------------------- protocols

_Evaluation = Callable[[CSINet], dict[str, float]]


def split_unseen_works(data: CQTDataset, seed: int) -> tuple[CQTDataset, _Evaluation]:
    """Half the works (multi-recording and single works each halved, seeded) train; the
    other half's recordings retrieve each other (MAP, P@10, MR1)."""
    rng = np.random.default_rng([seed, 1])
    counts = data.class_counts()
    multi = [s for s, c in counts.items() if c >= 2]
    singles = [s for s, c in counts.items() if c < 2]
    test_songs: set[SongId] = set()
    for group in (multi, singles):
        order = rng.permutation(len(group))
        test_songs.update(group[i] for i in order[: len(group) // 2])
    train = data.subset([i for i, s in enumerate(data.song_ids) if s not in test_songs])
    test = data.subset([i for i, s in enumerate(data.song_ids) if s in test_songs])

    def evaluate(model: CSINet) -> dict[str, float]:
        result = retrieval_metrics(embed_dataset(model, test), test.song_ids)
        return {
            "map": result.map,
            "p_at_10": result.p_at_10,
            "mr1": result.mr1,
            "n_queries": result.n_queries,
        }

    return train, evaluate


def split_rare_songs(data: CQTDataset, seed: int) -> tuple[CQTDataset, _Evaluation]:
    """Half the works with two or more recordings (seeded) keep one recording in training;
    their others query a gallery of all training recordings (MAP, MR1, top-1)."""
    rng = np.random.default_rng([seed, 2])
    counts = data.class_counts()
    multi = [s for s, c in counts.items() if c >= 2]
    rare = {multi[i] for i in rng.permutation(len(multi))[: len(multi) // 2]}
    items: dict[SongId, list[int]] = {}
    for i, song in enumerate(data.song_ids):
        items.setdefault(song, []).append(i)
    keep, queries = [], []
    for song, idx in items.items():
        if song in rare:
            k = int(rng.integers(len(idx)))
            keep.append(idx[k])
            queries += [j for n, j in enumerate(idx) if n != k]
        else:
            keep += idx
    train, query = data.subset(sorted(keep)), data.subset(sorted(queries))

    def evaluate(model: CSINet) -> dict[str, float]:
        result = gallery_metrics_from_embeddings(
            embed_dataset(model, query),
            embed_dataset(model, train),
            query.song_ids,
            train.song_ids,
        )
        top1 = float(np.nanmean(result.rank1 == 1))
        return {"map": result.map, "mr1": result.mr1, "top1": top1, "n_queries": result.n_queries}

    return train, evaluate


_SPLITS: dict[str, Callable[[CQTDataset, int], tuple[CQTDataset, _Evaluation]]] = {
    "unseen-works": split_unseen_works,
    "rare-songs": split_rare_songs,
}


# ----------------------------------------------------------------------------------- helpers


def _difference(
    protocol: str, metric: str, condition: str, baseline: str, d: Sequence[float]
) -> Difference:
    from scipy import stats

    values = np.asarray(d, dtype=float)
    n, mean = values.size, float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n) if n > 1 else math.inf
    return Difference(protocol, metric, condition, baseline, n, mean, std, mean - half, mean + half)


def _pm(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def _unique(values: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_names(names: list[str], allowed: Sequence[str], what: str) -> list[str]:
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ParameterError(f"unknown {what}s {unknown}; choose from {list(allowed)}")
    return names


def _seed_plan(seeds: object) -> tuple[list[int], bool]:
    if seeds == "auto":
        return list(range(AUTO_SEEDS)), True
    if isinstance(seeds, bool):
        raise ParameterError(f"seeds={seeds!r} must be a count, a list of seeds or 'auto'")
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ParameterError(f"seeds={seeds!r} must be at least 1")
        return list(range(int(seeds))), False
    if isinstance(seeds, Sequence) and not isinstance(seeds, str) and len(seeds) > 0:
        listed = list(seeds)
        if all(_is_int(s) and s >= 0 for s in listed):
            return list(dict.fromkeys(int(s) for s in listed)), False
    raise ParameterError(f"seeds={seeds!r} must be a count, a list of seeds >= 0 or 'auto'")


def _seeds(
    planned: list[int], auto: bool, current: Callable[[], Comparison], baseline: str
) -> Iterator[int]:
    """The planned seeds, then (``auto``) more while a difference's interval covers 0."""
    yield from planned
    if not auto:
        return
    seed = max(planned) + 1
    while seed < MAX_AUTO_SEEDS:
        if all(d.resolved for d in current().differences(baseline)):
            return
        yield seed
        seed += 1


def _without_silence(data: object) -> tuple[CQTDataset, list[str]]:
    """``data`` without its silent recordings (constant features), and their names."""
    if not isinstance(data, CQTDataset):
        raise ParameterError(f"compare needs a CQTDataset, got {type(data).__name__}")
    silent = np.flatnonzero(data.silent()).tolist()
    if not silent:
        return data, []
    keep = sorted(set(range(len(data))) - set(silent))
    return data.subset(keep), [str(data.names[i]) for i in silent]


#: Tracks whose values the data summary hashes (a seeded draw): a rescaled or re-extracted
#: corpus is told apart without reading a catalogue.
CONTENT_TRACKS = 64


def _data_summary(data: CQTDataset) -> dict[str, Any]:
    """What a resumed comparison must find again: counts, names and lengths, the feature
    recipe, and the values of :data:`CONTENT_TRACKS` tracks."""
    counts = data.class_counts()
    digest = hashlib.sha1()
    for song, name, n in zip(data.song_ids, data.names, data.lengths(), strict=True):
        digest.update(f"{song}\x00{name}\x00{n}\x01".encode())
    content = hashlib.sha1()
    picks = np.random.default_rng(0).permutation(len(data))[:CONTENT_TRACKS]
    for i in np.sort(picks):
        content.update(np.ascontiguousarray(data.features[int(i)], dtype=np.float32).tobytes())
    return {
        "works": len(counts),
        "recordings": len(data),
        "multi_works": sum(1 for c in counts.values() if c >= 2),
        "n_bins": data.n_bins,
        "recipe": None if data.config is None else data.config.to_dict(),
        "fingerprint": digest.hexdigest()[:16],
        "content": content.hexdigest()[:16],
    }


def _read_settings(folder: Path) -> dict[str, Any] | None:
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except ValueError as error:
        raise ParameterError(f"{path} is not readable JSON: {error}") from error


def _claim(folder: Path, stored: dict[str, Any]) -> None:
    """Write ``settings.json`` in a new folder; in a used one, refuse other settings."""
    old = _read_settings(folder)
    if old is None:
        with atomic_write(folder / SETTINGS_FILE, text=True) as fh:
            fh.write(json.dumps(stored, indent=1))
        return
    differ = sorted(k for k in {*old, *stored} if old.get(k) != stored.get(k))
    if differ:
        raise ParameterError(
            f"{folder} holds a comparison with other settings ({', '.join(differ)} differ: "
            f"{ {k: old.get(k) for k in differ} } there, { {k: stored.get(k) for k in differ} } "
            "now); use another --out, or the same settings and data to continue it"
        )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Finished runs; a last line cut short by a kill is ignored (that run is redone)."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and {"protocol", "seed", "condition"} <= set(row):
                rows.append(row)
    return rows
