"""The ``covergan`` command line, through :func:`covergan.cli.main` (and once a subprocess).

Tiny data: four songs with 1..4 recordings of 24-bin features in a ``<song>/<rec>.npy``
folder, a GAN of width 8 on 16-frame windows, 3 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from covergan import cli
from covergan import gan as gan_module
from covergan.augmenter import DEFAULT_STEPS, Augmenter
from covergan.cqt import CQTConfig, CQTExtractor
from covergan.data import CQTDataset
from covergan.gan import ConditionalDCGAN

CFG = CQTConfig(n_bins=24)
TINY_GAN = {"g_width": 8, "d_width": 8, "batch_size": 4}
TINY_VERSIONS = {"g_width": 4, "d_width": 4, "z_dim": 8, "max_width": 16}
FIT = ["--model", "gan", "--window", "16", "--gan-config", json.dumps(TINY_GAN), "--device", "cpu"]
FIT += ["--seed", "0", "--no-progress"]


def toy_features(seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Songs song-0..song-3 with 1..4 recordings, each song its own spectral envelope."""
    rng = np.random.default_rng(seed)
    feats, songs = [], []
    for i in range(4):
        envelope = np.exp(-0.5 * ((np.arange(24) - 5 * i - 3) / 2.0) ** 2)[:, None]
        for _ in range(i + 1):
            n = int(rng.integers(20, 40))
            feats.append((envelope * rng.gamma(2.0, 0.5, size=(24, n)) + 1e-3).astype(np.float32))
            songs.append(f"song-{i}")
    return feats, songs


def write_folder(root: Path, *, seed: int = 0, config: bool = True) -> Path:
    """The layout ``covergan extract`` writes."""
    feats, songs = toy_features(seed)
    for k, (x, song) in enumerate(zip(feats, songs, strict=True)):
        (root / song).mkdir(parents=True, exist_ok=True)
        np.save(root / song / f"rec-{k}.npy", x)
    if config:
        (root / cli.CONFIG_FILE).write_text(json.dumps(CFG.to_dict()))
    return root


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, expected: int, match: str) -> None:
    assert code == expected
    assert err.startswith("covergan: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and match in err, err


def weights(aug: Augmenter) -> dict[str, torch.Tensor]:
    gan = aug.gan_
    out = {f"g.{k}": v for k, v in gan.generator.state_dict().items()}
    out |= {f"d.{k}": v for k, v in gan.discriminator.state_dict().items()}
    assert gan.generator_ema is not None
    out |= {f"ema.{k}": v for k, v in gan.generator_ema.state_dict().items()}
    return out


def assert_same_model(a: Augmenter, b: Augmenter) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert a.gan_.step == b.gan_.step and a.history_ == b.history_


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def fitted(features: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "aug.pt"
    assert cli.main(["fit", str(features), str(out), "--steps", "3", *FIT]) == 0
    return out


def sigint_during_steps(
    monkeypatch: pytest.MonkeyPatch, steps: set[int], *, times: int = 1
) -> None:
    """Send SIGINT ``times`` times while GAN step ``k`` (1-based) of ``steps`` runs."""
    original: Callable[..., Any] = gan_module._train_step

    def train_step(gan: ConditionalDCGAN, batches: Any) -> Any:
        if gan.step + 1 in steps:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)
        return original(gan, batches)

    monkeypatch.setattr(gan_module, "_train_step", train_step)


# ----------------------------------------------------------------------------- the parser


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {
        "demo",
        "extract",
        "fit",
        "sample",
        "evaluate",
        "listen",
        "compare",
    }
    for name, sub in commands.choices.items():
        code, out, _ = run([name, "--help"], capsys)
        assert code == 0 and sub.description
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help"
            for flag in action.option_strings:
                assert flag in out, f"{flag} missing from 'covergan {name} --help'"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["sample", "a.pt", "song-0", "-n", "0", "-o", "x"], "expected a positive integer, got 0"),
        (["sample", "a.pt", "song-0", "-n", "-3", "-o", "x"], "expected a positive integer"),
        (["fit", "d", "o.pt", "--gan-config", "[1]"], "expected a JSON object"),
        (["fit", "d", "o.pt", "--model", "versions,magic"], "give versions, gan, or both"),
        (["fit", "d", "o.pt", "--gan-config", "{"], "not valid JSON"),
        (["demo", "--minutes", "0"], "expected a positive number"),
        (["fit", "d", "o.pt", "--checkpoint-minutes", "-1"], "expected a number >= 0"),
        (["sample", "a.pt", "--balance", "most", "-o", "x"], "expected 'max', 'median'"),
        (["compare", "d", "--out", "o", "--conditions", "gans"], "choose comma-separated names"),
        (["nope"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, 2, match)


# ----------------------------------------------------------------------------- fit


def test_fit_writes_an_augmenter_in_the_folder_format(fitted: Path) -> None:
    aug = Augmenter.load(fitted, device="cpu")
    assert aug.gan_.step == 3 and aug.steps == 3 and aug.seed_ == 0
    assert aug.config_ == CFG and aug.window_ == 16
    assert aug.songs_.class_counts() == {"song-0": 1, "song-1": 2, "song-2": 3, "song-3": 4}
    assert not fitted.with_name("aug.pt.partial").exists()


def test_fit_without_config_file_takes_the_feature_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_folder(tmp_path / "feats", config=False)
    code, _, err = run(["fit", data, tmp_path / "a.pt", "--steps", "1", *FIT], capsys)
    assert_one_line_error(code, err, 1, "24")  # the CQTNet recipe expects 84 bins
    argv = ["fit", data, tmp_path / "a.pt", "--steps", "1", "--n-bins", "24", *FIT]
    code, out, _ = run(argv, capsys)
    assert code == 0 and "wrote" in out
    assert Augmenter.load(tmp_path / "a.pt").config_.n_bins == 24


def test_interrupted_fit_resumes_to_the_uninterrupted_model(
    fitted: Path,
    features: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "aug.pt"
    checkpoint = tmp_path / "aug.pt.partial"
    sigint_during_steps(monkeypatch, {2})
    code, _, err = run(["fit", features, out, "--steps", "3", *FIT], capsys)
    assert code == 130 and not out.exists()
    assert "interrupted at gan step 2 of 3" in err and str(checkpoint) in err
    assert Augmenter.load(checkpoint).gan_.step == 2
    monkeypatch.undo()

    code, stdout, _ = run(["fit", features, out, "--resume", *FIT], capsys)
    assert code == 0 and "resuming" in stdout and "at gan step 2 of 3" in stdout
    assert out.exists() and not checkpoint.exists()
    assert_same_model(Augmenter.load(out, device="cpu"), Augmenter.load(fitted, device="cpu"))


def test_second_ctrl_c_quits_keeping_the_periodic_checkpoint(
    features: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    sigint_during_steps(monkeypatch, {3}, times=2)
    argv = ["fit", features, tmp_path / "aug.pt", "--steps", "3", *FIT]
    argv += ["--checkpoint-every", "2", "--checkpoint", checkpoint]
    code, _, err = run(argv, capsys)
    assert code == 130 and "nothing saved" in err and "unchanged" in err
    assert Augmenter.load(checkpoint).gan_.step == 2


def test_checkpoints_by_steps_and_by_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: now[0])
    saves: list[int] = []

    class Saving:  # stands in for the augmenter: records the step of each save
        step = 0

        def save(self, path: Path) -> Path:
            saves.append(self.step)
            return path

    aug = Saving()
    every = cli._SaveEvery(aug, tmp_path / "c", steps=4, minutes=10)  # type: ignore[arg-type]
    for step, minute in [(1, 1), (2, 9), (3, 10.5), (4, 11), (5, 15), (6, 21), (7, 21.5)]:
        now[0], aug.step = 60.0 * minute, step
        every.on_step_end(None, step, {})
    assert saves == [3, 4, 6]  # 10 min after the start, step 4, 10 min after step 4
    saves.clear()
    off = cli._SaveEvery(aug, tmp_path / "c", steps=None, minutes=None)  # type: ignore[arg-type]
    now[0] = 1e6
    off.on_step_end(None, 8, {})
    assert saves == []


def test_ctrl_c_during_pretraining_saves_nothing(
    features: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def pretrain(self: ConditionalDCGAN, *args: Any, **kwargs: Any) -> None:
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(ConditionalDCGAN, "pretrain_autoencoder", pretrain)
    out = tmp_path / "aug.pt"
    code, _, err = run(
        ["fit", features, out, "--steps", "3", "--pretrain-steps", "1", *FIT], capsys
    )
    assert code == 130 and "nothing saved" in err
    assert list(tmp_path.iterdir()) == []
    code, _, err = run(["fit", features, out, "--resume", *FIT], capsys)
    assert_one_line_error(code, err, 1, "no checkpoint")


def test_resume_checks_options_and_trains_longer(
    fitted: Path, features: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "aug.pt"
    out.write_bytes(fitted.read_bytes())
    code, _, err = run(["fit", features, out, "--resume", "--seed", "5"], capsys)
    assert_one_line_error(code, err, 1, "--seed 5 differs from the checkpoint's 0")
    code, _, err = run(["fit", features, out, "--resume", "--steps", "2"], capsys)
    assert_one_line_error(code, err, 1, "below the 3 steps")
    code, _, err = run(["fit", features, out, "--resume", "--n-bins", "12"], capsys)
    assert_one_line_error(code, err, 1, "--n-bins 12 differs from the checkpoint's 24")
    other = write_folder(tmp_path / "other")
    (other / "song-3" / "rec-9.npy").unlink()  # one recording fewer
    code, _, err = run(["fit", other, out, "--resume"], capsys)
    assert_one_line_error(code, err, 1, "the dataset the augmenter was fitted on")
    code, _, _ = run(["fit", features, out, "--resume", "--steps", "4", *FIT], capsys)
    assert code == 0 and Augmenter.load(out).gan_.step == 4


# ----------------------------------------------------------------------------- sample


def test_sample_writes_one_npy_per_sample(
    fitted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth"
    code, stdout, _ = run(["sample", fitted, "song-0", "song-3", "-n", "2", "-o", out], capsys)
    assert code == 0 and "wrote 4 synthetic 24 x 16 CQTs" in stdout
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert files == [f"song-{s}/synthetic-s0-000{k}.npy" for s in (0, 3) for k in (0, 1)]
    expected = Augmenter.load(fitted, device="cpu").sample_many({"song-0": 2, "song-3": 2}, seed=0)
    first = np.load(out / "song-3" / "synthetic-s0-0001.npy")
    assert first.dtype == np.float32 and first.shape == (24, 16)
    np.testing.assert_array_equal(first, expected["song-3"][1, 0].numpy())
    config = CQTConfig.from_dict(json.loads((out / cli.CONFIG_FILE).read_text()))
    again = CQTDataset.from_folder(out, progress=False)  # with the folder's recipe
    assert config == CFG and again.class_counts() == {"song-0": 2, "song-3": 2}


def test_sample_balance_and_model_space(
    fitted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = Augmenter.load(fitted).plan("max")
    code, stdout, _ = run(["sample", fitted, "--balance", "max", "-o", tmp_path / "b"], capsys)
    assert code == 0
    counts = {p.name: len(list(p.glob("*.npy"))) for p in (tmp_path / "b").iterdir() if p.is_dir()}
    assert counts == {s: n for s, n in plan.items() if n}
    assert (tmp_path / "b" / cli.CONFIG_FILE).is_file()

    argv = ["sample", fitted, "song-1", "--space", "model", "-o", tmp_path / "m"]
    assert run(argv, capsys)[0] == 0
    x = np.load(tmp_path / "m" / "song-1" / "synthetic-s0-0000.npy")
    assert np.abs(x).max() <= 1.0 and not (tmp_path / "m" / cli.CONFIG_FILE).exists()

    code, stdout, _ = run(["sample", fitted, "--balance", "0", "-o", tmp_path / "z"], capsys)
    assert code == 0 and "nothing to sample" in stdout and not (tmp_path / "z").exists()


def test_sample_song_ids_may_follow_the_options(
    fitted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv: list[Any] = ["sample", fitted, "song-0", "-n", "2", "-o", tmp_path / "a", "song-3"]
    assert run(argv, capsys)[0] == 0
    assert (
        run(["sample", fitted, "-n", "2", "-o", tmp_path / "b", "song-0", "song-3"], capsys)[0] == 0
    )
    for song in ("song-0", "song-3"):
        for k in (0, 1):
            name = f"{song}/synthetic-s0-000{k}.npy"
            np.testing.assert_array_equal(
                np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name)
            )
    code, _, err = run(["sample", fitted, "-o", tmp_path / "c", "song-0", "--bogus"], capsys)
    assert_one_line_error(code, err, cli.EXIT_USAGE, "unrecognized arguments: --bogus")
    code, _, err = run(["fit", tmp_path, tmp_path / "x.pt", "extra"], capsys)
    assert_one_line_error(code, err, cli.EXIT_USAGE, "unrecognized arguments: extra")


def test_sample_rerun_replaces_its_own_files_and_keeps_other_seeds(
    fitted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth"
    assert run(["sample", fitted, "song-1", "-n", "3", "-o", out], capsys)[0] == 0
    assert run(["sample", fitted, "song-1", "-n", "2", "-o", out, "--seed", "1"], capsys)[0] == 0
    assert run(["sample", fitted, "song-1", "-n", "1", "-o", out], capsys)[0] == 0
    names = sorted(p.name for p in (out / "song-1").iterdir())
    assert names == ["synthetic-s0-0000.npy", "synthetic-s1-0000.npy", "synthetic-s1-0001.npy"]


def test_sample_refuses_a_folder_in_the_way_before_writing(
    fitted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth"
    out.mkdir()
    (out / "song-3").write_text("not a folder")
    code, _, err = run(["sample", fitted, "song-0", "song-3", "-o", out], capsys)
    assert_one_line_error(code, err, cli.EXIT_ERROR, "song-3 is a file")
    assert sorted(p.name for p in out.iterdir()) == ["song-3"]  # nothing written

    other = tmp_path / "other"
    assert run(["sample", fitted, "song-0", "-o", other], capsys)[0] == 0
    code, _, err = run(["sample", fitted, "song-1", "--space", "model", "-o", other], capsys)
    assert_one_line_error(code, err, cli.EXIT_ERROR, "write model-space samples to another")
    (other / cli.CONFIG_FILE).write_text(json.dumps(CQTConfig(n_bins=36).to_dict()))
    code, _, err = run(["sample", fitted, "song-1", "-o", other], capsys)
    assert_one_line_error(code, err, cli.EXIT_ERROR, "another feature format")
    assert not (other / "song-1").exists()


def test_bad_input_gives_one_line_errors(
    fitted: Path, features: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    cases: list[tuple[list[Any], str]] = [
        (["fit", tmp_path / "missing", tmp_path / "a.pt"], "dataset folder not found"),
        (
            ["fit", features, tmp_path / "a.pt", "--model", "gan", "--gan-config", '{"nope": 1}'],
            "unknown GANConfig",
        ),
        (["fit", features, tmp_path / "a.pt", "--gan-config", "{}"], "gan= configures the class"),
        (["sample", tmp_path / "missing.pt", "song-0", "-o", tmp_path / "s"], "no augmenter file"),
        (["sample", corrupt, "song-0", "-o", tmp_path / "s"], "corrupt"),
        (["sample", fitted, "song-9", "-o", tmp_path / "s"], "did you mean"),
        (["sample", fitted, "-o", tmp_path / "s"], "--balance TARGET, one of them"),
        (["sample", fitted, "song-0", "--balance", "max", "-o", tmp_path / "s"], "not both"),
        (["evaluate", fitted, tmp_path / "missing"], "dataset folder not found"),
        (["evaluate", fitted, features, "--n-per-song", "1"], "at least 2"),
        (["listen", tmp_path / "missing.npy"], "no feature file"),
        (["listen", fitted], "give --song"),
        (["listen", fitted, "--song", "nope"], "unknown song id"),
        (["listen", fitted, "--song", "song-0", "-o", tmp_path], "is a folder; give the WAV"),
    ]
    for argv, match in cases:
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, 1, match)
    assert not (tmp_path / "s").exists()


def test_subprocess_entry_point(fitted: Path, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "covergan", "sample", str(fitted), "song_0", "-o", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("covergan: error: unknown song id 'song_0'; did you mean ")
    assert done.stderr.count("\n") == 1 and "'song-0'" in done.stderr


# ----------------------------------------------------------------------------- evaluate, listen


@pytest.mark.parametrize("cap", [[], ["--max-songs", "3"]], ids=["all-songs", "capped"])
def test_evaluate_writes_a_report(
    fitted: Path,
    features: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    cap: list[str],
) -> None:
    heldout = write_folder(tmp_path / "heldout", seed=3)
    argv = ["evaluate", fitted, features, heldout, "-o", tmp_path / "r", "--n-per-song", "4"]
    code, out, err = run(
        [*argv, *cap, "--embedding-steps", "5", "--device", "cpu", "--no-progress"], capsys
    )
    assert code == 0, err
    assert "gan: identity " in out and "x the real floor" in out
    assert "negative controls rejected: " in out
    page = (tmp_path / "r" / "report.md").read_text()
    assert "## Quality in a CSI embedding" in page and "control: permuted frames" in page
    assert out.strip().endswith(f"report: {tmp_path / 'r' / 'report.md'}")
    assert (tmp_path / "r" / "figures" / "grid.png").is_file()
    subset = "of 3 of 4 held-out songs (a seeded subset, max_songs=3; real windows of"
    assert (subset in page) == bool(cap)


def test_fit_sample_and_evaluate_the_default_model(
    features: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no --model and no --method: the version model is what is fitted, sampled and graded
    out = tmp_path / "aug.pt"
    fit = ["fit", features, out, "--steps", "2", "--window", "16", "--device", "cpu"]
    fit += ["--version-config", json.dumps(TINY_VERSIONS), "--seed", "0", "--no-progress"]
    code, _, err = run(fit, capsys)
    assert code == 0, err
    aug = Augmenter.load(out, device="cpu")
    assert aug.models == ("versions",) and list(aug.steps_done) == ["versions"]
    wider = json.dumps(TINY_VERSIONS | {"g_width": 8})  # --resume keeps the model it has
    code, _, err = run(["fit", features, out, "--resume", "--version-config", wider], capsys)
    assert_one_line_error(
        code, err, 1, "--version-config g_width 8 differs from the checkpoint's 4"
    )
    code, _, err = run(["sample", out, "song-0", "-n", "2", "-o", tmp_path / "synth"], capsys)
    assert code == 0, err
    expected = aug.sample("song-0", 2, method="versions", seed=0)  # a single recording's song
    first = np.load(tmp_path / "synth" / "song-0" / "synthetic-s0-0000.npy")
    np.testing.assert_array_equal(first, expected[0, 0].numpy())
    heldout = write_folder(tmp_path / "heldout", seed=3)
    argv = ["evaluate", out, features, heldout, "-o", tmp_path / "r", "--n-per-song", "4"]
    code, stdout, err = run(
        [*argv, "--embedding-steps", "5", "--device", "cpu", "--no-progress"], capsys
    )
    assert code == 0, err
    assert "CSI training" not in err  # --no-progress, whatever the fitting run said
    assert "versions: identity " in stdout and "gan: " not in stdout
    assert "versions: spectral artefacts " in stdout
    page = (tmp_path / "r" / "report.md").read_text()
    assert "Of the default model (versions)" in page and "\n| versions | " in page
    assert "### versions" in page and "### gan" not in page
    assert (tmp_path / "r" / "figures" / "grid.png").is_file()
    argv = ["evaluate", out, features, tmp_path / "synth", "-o", tmp_path / "r2"]
    _, _, err = run([*argv, "--embedding-steps", "1", "--device", "cpu", "--no-progress"], capsys)
    assert "covergan: warning: 2 of the 2 recordings in " in err  # samples taken for real ones


def fake_report(calls: list[dict[str, Any]]) -> Callable[..., Any]:
    """A stand-in for ``quality_report`` that records its arguments."""

    def quality_report(
        aug: Augmenter, train: CQTDataset, heldout: CQTDataset, out: Path, **kw: Any
    ) -> Any:
        calls.append({"train": train, "heldout": heldout, **kw})
        metric = SimpleNamespace(name="identity", ratio=1.25, informative=True)
        suite = SimpleNamespace(metrics=[metric], passed=True)
        control = SimpleNamespace(metrics=[metric], passed=False)
        return SimpleNamespace(
            suites={"versions": suite},
            controls={"noise": control, "copies": control},
            artefacts={
                "versions": SimpleNamespace(
                    passed=False, bins=[0, 1], describe=lambda: "0-1 flicker under (54%)"
                )
            },
            markdown=Path(out) / "report.md",
        )

    return quality_report


def test_evaluate_without_heldout_holds_out_part_of_the_data(
    fitted: Path,
    features: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import covergan.report

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(covergan.report, "quality_report", fake_report(calls))
    code, out, err = run(["evaluate", fitted, features, "-o", tmp_path, "--no-progress"], capsys)
    assert code == 0 and "versions: identity 1.25x the real floor (pass)" in out
    assert "negative controls rejected: 2 of 2" in out
    assert "versions: spectral artefacts FOUND (bins 0-1 flicker under (54%))" in out
    assert "held out: one recording of each of the 2 songs" in err
    (call,) = calls
    assert call["heldout"].class_counts() == {"song-2": 1, "song-3": 1}
    assert len(call["train"]) == 8 and "floors are optimistic" in call["notes"][-1]


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")  # 3-frame clip
def test_listen_to_a_features_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    source = tmp_path / "data" / "song" / "rec.npy"
    source.parent.mkdir(parents=True)
    np.save(source, rng.random((84, 3), dtype=np.float32))  # no config file: the CQTNet recipe
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["listen", source, "--n-iter", "1"], capsys)
    assert code == 0 and "wrote song-rec.wav" in out
    assert [p.name for p in source.parent.iterdir()] == ["rec.npy"]  # the dataset is unchanged
    y, sr = sf.read(tmp_path / "song-rec.wav")
    assert sr == 22050 and len(y) == 3 * 20 * 512 - 1

    pooled = CQTConfig(pool=10)  # a config file in the folder above is found
    (tmp_path / "data" / cli.CONFIG_FILE).write_text(json.dumps(pooled.to_dict()))
    code, _, _ = run(["listen", source, "-o", tmp_path / "p.wav", "--n-iter", "1"], capsys)
    assert code == 0 and len(sf.read(tmp_path / "p.wav")[0]) == 3 * 10 * 512 - 1

    np.save(tmp_path / "batch.npy", np.ones((2, 1, 84, 4), dtype=np.float32))
    code, _, err = run(["listen", tmp_path / "batch.npy"], capsys)
    assert_one_line_error(code, err, 1, "expected one CQT")
    np.save(tmp_path / "bins.npy", np.ones((24, 4), dtype=np.float32))
    code, _, err = run(["listen", tmp_path / "bins.npy", "--n-iter", "1"], capsys)
    assert_one_line_error(code, err, 1, "n_bins=84")


def test_listen_to_a_sample(
    fitted: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import covergan.audio

    calls: list[tuple[np.ndarray, CQTConfig, int]] = []

    def to_audio(features: np.ndarray, config: CQTConfig, **kwargs: Any) -> np.ndarray:
        calls.append((features, config, kwargs["seed"]))
        return np.zeros(100, dtype=np.float32)

    monkeypatch.setattr(covergan.audio, "to_audio", to_audio)
    argv = ["listen", fitted, "--song", "song-2", "--seed", "3", "-o", tmp_path / "s.wav"]
    code, out, _ = run([*argv, "--device", "cpu"], capsys)
    assert code == 0 and "a sample of 'song-2'" in out and (tmp_path / "s.wav").is_file()
    ((features, config, seed),) = calls
    expected = Augmenter.load(fitted, device="cpu").sample("song-2", 1, seed=3)[0, 0].numpy()
    np.testing.assert_array_equal(features, expected)
    assert config == CFG and seed == 3


# ----------------------------------------------------------------------------- demo


def test_demo_step_budget() -> None:
    assert cli._demo_steps(120.0, 0.1) == 1000  # 120 s / (1.2 x 0.1 s)
    assert cli._demo_steps(-5.0, 0.1) == cli.DEMO_MIN_STEPS
    assert cli._demo_steps(10.0, 0.0) == cli.DEMO_MIN_STEPS


TINY_DEMO = ["--gan-config", json.dumps(TINY_GAN), "--version-config", json.dumps(TINY_VERSIONS)]


def stand_in_demo(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The demo on toy features instead of the chorales, with a report that only records its
    calls (returned)."""
    import covergan.datasets
    import covergan.report

    def chorales(**kwargs: Any) -> CQTDataset:
        feats, songs = toy_features()
        more, more_songs = toy_features(seed=1)
        return CQTDataset.from_arrays(feats + more, songs + more_songs, config=CFG)

    monkeypatch.setattr(covergan.datasets, "chorale_covers", chorales)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(covergan.report, "quality_report", fake_report(calls))
    return calls


def test_the_demo_says_when_its_fit_is_shorter_than_the_default() -> None:
    def note(steps: int) -> list[str]:
        fitted = SimpleNamespace(steps_planned={"versions": steps, "gan": steps})
        return cli._short_fit_note(fitted)  # type: ignore[arg-type]

    assert note(DEFAULT_STEPS) == [] and note(DEFAULT_STEPS + 1) == []
    (text,) = note(641)
    assert text.startswith("a short fit, 641 steps") and f"--steps {DEFAULT_STEPS}'" in text


def test_demo_fits_its_budget_on_stand_in_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = stand_in_demo(monkeypatch)
    argv = ["demo", "--out", tmp_path, "--minutes", "0.01", "--device", "cpu", "--no-progress"]
    code, out, err = run([*argv, *TINY_DEMO], capsys)
    assert code == 0, err
    assert f"so {cli.DEMO_MIN_STEPS} steps each (+ 2 pretraining)" in out
    assert "the budget is spent" in err
    assert out.strip().endswith(f"report: {tmp_path / 'report.md'}")
    aug = Augmenter.load(tmp_path / "augmenter.pt")
    assert aug.models == ("versions", "gan")  # the default first, the class GAN to compare
    assert aug.steps_done == {"versions": cli.DEMO_MIN_STEPS, "gan": cli.DEMO_MIN_STEPS}
    assert (tmp_path / "versions.png").is_file() and len(calls) == 1
    assert re.fullmatch(r"wall time before the report \d+ s", calls[0]["notes"][-1])
    short = f"a short fit, {cli.DEMO_MIN_STEPS} steps of each model"  # said, and in the report
    assert f"note: {short}" in out and any(n.startswith(short) for n in calls[0]["notes"])
    # the rarest works' new versions, in the feature format a training loop reads
    config = json.loads((tmp_path / "synthetic" / cli.CONFIG_FILE).read_text())
    assert CQTConfig.from_dict(config) == aug.config_
    synthetic = CQTDataset.from_folder(tmp_path / "synthetic", extractor=CQTExtractor(aug.config_))
    assert len(synthetic) > 0
    assert set(synthetic.song_ids) <= set(aug.songs_.ids)
    assert all(x.shape == (aug.config_.n_bins, aug.window_) for x in synthetic.features)

    # a rerun with the same settings reuses the finished fit: no training
    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the rerun trained")

    with monkeypatch.context() as patch:
        patch.setattr(Augmenter, "fit", no_training)
        code, out, err = run([*argv, *TINY_DEMO], capsys)
        assert code == 0, err
        assert "2/4 reusing the finished fit of an earlier run" in out and len(calls) == 2

    def reused(*other: str) -> bool:
        args = cli.build_parser().parse_args([*map(str, argv), *TINY_DEMO, *other])
        return cli._earlier_demo_fit(tmp_path, args, finished=True) is not None

    assert reused() and reused("--embedding-steps", "7")  # the report's settings are free
    for other in (
        ["--max-works", "3"],
        ["--seed", "1"],
        ["--minutes", "60"],  # a longer budget trains longer
        ["--steps", str(cli.DEMO_MIN_STEPS)],  # the same count, but the other setting
        ["--version-config", "{}"],
        ["--refit"],
    ):
        assert not reused(*other), other
    saved = tmp_path / "augmenter.pt"
    stamp = saved.stat()
    os.utime(saved, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))  # replaced since
    assert not reused()
    with monkeypatch.context() as patch:
        patch.setattr(Augmenter, "fit", no_training)
        with pytest.raises(AssertionError, match="the rerun trained"):
            cli.main([*map(str, argv), *TINY_DEMO])
    assert not (tmp_path / cli.DEMO_RUN_FILE).exists()  # removed before a new fit starts


def test_an_interrupted_demo_continues_its_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = stand_in_demo(monkeypatch)
    argv = ["demo", "--out", tmp_path, "--steps", "3", "--device", "cpu", "--no-progress"]
    with monkeypatch.context() as patch:
        sigint_during_steps(patch, {2})  # the class GAN's step 2, after the version model's 3
        code, _, err = run([*argv, *TINY_DEMO], capsys)
    partial = tmp_path / cli.DEMO_PARTIAL
    assert code == 130 and str(partial) in err and "(continue: the same command)" in err
    assert Augmenter.load(partial).steps_done == {"versions": 3, "gan": 2}
    assert not (tmp_path / "augmenter.pt").exists() and calls == []
    record = json.loads((tmp_path / cli.DEMO_RUN_FILE).read_text())
    assert record["steps"] == 3 and record["augmenter"] is None  # started, not finished

    from covergan import versions

    def no_versions_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the version model trained again")

    with monkeypatch.context() as patch:  # finished work is not redone
        patch.setattr(versions.VersionGAN, "fit", no_versions_training)
        patch.setattr(versions.VersionGAN, "pretrain_autoencoder", no_versions_training)
        code, out, err = run([*argv, *TINY_DEMO], capsys)
    assert code == 0, err
    assert "2/4 continuing the interrupted fit" in out and "gan step 2 of 3" in out
    aug = Augmenter.load(tmp_path / "augmenter.pt")
    assert aug.steps_done == {"versions": 3, "gan": 3} and not partial.exists()
    assert len(calls) == 1 and calls[0]["notes"][-1].endswith(
        "continued an earlier run's interrupted fit)"
    )
    code, out, _ = run([*argv, *TINY_DEMO], capsys)  # and then it is a finished fit
    assert code == 0 and "2/4 reusing the finished fit" in out
    assert calls[1]["notes"][-1].endswith(" s (the fit is an earlier run's, reused)")

    # other settings, or --refit, start afresh and drop the checkpoint
    with monkeypatch.context() as patch:
        sigint_during_steps(patch, {2})
        assert run([*argv, *TINY_DEMO], capsys)[0] == 0  # finished: nothing to interrupt
        assert run([*argv, *TINY_DEMO, "--refit"], capsys)[0] == 130
    assert partial.is_file()
    code, out, _ = run([*argv, *TINY_DEMO, "--seed", "1"], capsys)
    assert code == 0 and "continuing" not in out and not partial.exists()


# ----------------------------------------------------------------------------- extract


def test_extract_writes_features_and_their_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.signals import SR, tone

    for song, freq in (("a", 220.0), ("b", 330.0)):
        (tmp_path / "audio" / song).mkdir(parents=True)
        sf.write(tmp_path / "audio" / song / "v1.wav", tone(freq, 1.0), SR)
    argv = ["extract", tmp_path / "audio", tmp_path / "feats", "--n-jobs", "1", "--n-bins", "24"]
    code, out, _ = run([*argv, "--no-progress"], capsys)
    assert code == 0 and "stored 2 recordings;" in out and "holds 2 recordings of 2 songs" in out
    config = CQTConfig.from_dict(json.loads((tmp_path / "feats" / cli.CONFIG_FILE).read_text()))
    assert config.n_bins == 24 and np.load(tmp_path / "feats" / "a" / "v1.npy").shape[0] == 24
    # run again: nothing is extracted twice, however the source folder is spelled
    code, out, _ = run([*argv, "--no-progress"], capsys)
    assert code == 0 and "stored 0 recordings (2 already there)" in out
    monkeypatch.chdir(tmp_path)
    relative = ["extract", "audio", tmp_path / "feats", "--n-jobs", "1", "--n-bins", "24"]
    code, out, err = run([*relative, "--no-progress"], capsys)
    assert code == 0 and "stored 0 recordings (2 already there)" in out, err
    for out_dir in ("audio/feats", "audio"):  # inside SOURCE, or SOURCE itself
        code, _, err = run(["extract", "audio", out_dir, "--no-progress"], capsys)
        assert_one_line_error(code, err, 1, "is SOURCE audio or inside it, where the next scan")
    assert not (tmp_path / "audio" / "feats").exists()
    assert not (tmp_path / "audio" / "store.json").exists()
    data = CQTDataset.from_folder(tmp_path / "feats")
    assert data.stored and sorted(data.song_ids) == ["a", "b"]
    (tmp_path / "audio" / "b" / "v2.wav").write_bytes(b"RIFF nonsense")  # the file is named
    code, _, err = run([*argv, "--no-progress"], capsys)
    assert_one_line_error(code, err, 1, "1 file(s) failed (the other 0 were stored): ")
    assert "v2.wav" in err


def test_a_killed_extract_continues_where_it_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from covergan.store import INDEX_FILE, FeatureStore

    n = 1500  # .npy sources: no audio decoding, many small writes to interrupt
    rng = np.random.default_rng(0)
    for k in range(n):
        folder = tmp_path / "src" / f"w{k % 50}"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"r{k}.npy", rng.random((24, 8), dtype=np.float32))
    argv = ["extract", tmp_path / "src", tmp_path / "out", "--n-bins", "24", "--n-jobs", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "covergan", *map(str, argv), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    index = tmp_path / "out" / INDEX_FILE
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if index.is_file() and index.stat().st_size > 20_000:  # some hundred lines written
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(30)
    held = len(FeatureStore.open(tmp_path / "out"))
    assert 0 < held < n, "the run was not interrupted part-way"
    code, out, _ = run([*argv, "--no-progress"], capsys)
    assert code == 0 and f"stored {n - held} recordings ({held} already there)" in out
    store = FeatureStore.open(tmp_path / "out")
    assert len(store) == n and store.verify() == []


def test_extract_shards_and_float16(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.signals import SR, tone

    for k in range(4):
        (tmp_path / "audio" / f"s{k % 2}").mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "audio" / f"s{k % 2}" / f"v{k}.wav", tone(200.0 + 50 * k, 0.5), SR)
    base = ["extract", tmp_path / "audio", tmp_path / "feats", "--n-jobs", "1", "--n-bins", "24"]
    for shard in ("0/2", "1/2"):
        code, out, _ = run([*base, "--shard", shard, "--dtype", "float16", "--no-progress"], capsys)
        assert code == 0 and "stored 2 recordings" in out
    data = CQTDataset.from_folder(tmp_path / "feats")
    assert len(data) == 4 and data.features[0].dtype == np.float16
    code, _, err = run([*base, "--shard", "2/2"], capsys)
    assert code == 2 and "need 0 <= K < N" in err
    # the store's dtype is fixed once written
    code, _, err = run([*base, "--dtype", "float32", "--no-progress"], capsys)
    assert code != 0 and "another store settings" in err and "dtype" in err


def test_compare_writes_report_figure_and_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_references import CFG as WORKS_CFG
    from tests.test_references import works

    data = works((3, 3, 2, 2, 1), frames=40)
    root = tmp_path / "data"
    for k, (x, song) in enumerate(zip(data.features, data.song_ids, strict=True)):
        folder = root / f"wörk {song} ✓"  # unicode names
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"rec-{k}.npy", np.asarray(x))
    (root / "wörk work-0 ✓" / "broken.npy").write_bytes(b"not an array")
    (root / cli.CONFIG_FILE).write_text(json.dumps(WORKS_CFG.to_dict()))
    out = tmp_path / "out"
    argv = [
        "compare", root, "--out", out, "--seeds", "1", "--protocols", "unseen-works",
        "--conditions", "none,classic", "--csi-steps", "2", "--no-progress",
    ]  # fmt: skip
    code, stdout, _ = run(argv, capsys)
    assert code == 0
    assert "unseen-works: classic vs none: MAP" in stdout
    report = (out / "report.md").read_text()
    assert "## unseen-works" in report and "broken.npy" in report
    assert (out / "comparison.png").stat().st_size > 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    code, stdout, _ = run([*argv, "--baseline", "classic"], capsys)  # nothing left to run
    assert code == 0 and len((out / "results.jsonl").read_text().splitlines()) == 2
    assert "unseen-works: none vs classic: MAP" in stdout
    code, _, err = run([*argv, "--csi-steps", "3"], capsys)
    assert_one_line_error(code, err, 1, "other settings (csi_steps differ")


def test_compare_refuses_too_few_works(
    features: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["compare", features, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, 1, "at least 4 works with two or more recordings")
    code, _, err = run(["compare", features, "--out", tmp_path, "--seeds", "x"], capsys)
    assert code == 2 and "number of seeds or 'auto'" in err


def test_warnings_print_one_line_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    from covergan.errors import CoverGANWarning

    def warns(args: argparse.Namespace) -> int:
        warnings.warn("few samples:\n  read the floors", CoverGANWarning, stacklevel=1)
        warnings.warn("another library's", UserWarning, stacklevel=1)
        return 0

    before = warnings.showwarning
    monkeypatch.setitem(cli._COMMANDS, "listen", warns)
    with pytest.warns(UserWarning, match="another library's"):  # others go on as they were
        assert cli.main(["listen", "some.pt"]) == 0
    assert capsys.readouterr().err == "covergan: warning: few samples: read the floors\n"
    assert warnings.showwarning is before  # restored for the caller
