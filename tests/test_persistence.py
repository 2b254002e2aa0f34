"""Augmenter files written by the previous release (tests/data, made by make_old_files.py at
commit 53ede01^) load with this one as what they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from covergan import Augmenter
from covergan.cqt import CQTConfig
from covergan.data import CQTDataset
from covergan.errors import CheckpointError, NotFittedError

DATA = Path(__file__).parent / "data"
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def old() -> dict[str, np.ndarray]:
    with np.load(DATA / "augmenter-old-data.npz") as npz:
        return dict(npz)


def old_dataset(old: dict[str, np.ndarray]) -> CQTDataset:
    songs = [str(s) for s in old["songs"]]
    return CQTDataset.from_arrays(list(old["features"]), songs, config=CQTConfig(n_bins=24))


def test_a_format_2_file_samples_what_it_sampled_and_learns_a_bank(
    old: dict[str, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    aug = Augmenter.load(DATA / "augmenter-format2.pt", device="cpu")
    assert "without a reference bank (augmenter format 2" in caplog.text
    assert aug.models == ("gan", "versions") and aug.references_ is None
    # the class GAN was that release's sample, and still is for this file, sample for sample
    # (to float rounding: another CPU or torch build may differ in the last bits)
    np.testing.assert_allclose(aug.sample("work-4", 2, seed=0).numpy(), old["gan_sample"], **TOL)
    like = aug.sample_like(old["features"][0], 2, seed=0).numpy()
    np.testing.assert_allclose(like, old["version_sample"], **TOL)  # its version model
    with pytest.raises(NotFittedError, match=r"no reference bank .*fit_versions\(dataset\)"):
        aug.sample("work-4", 2, method="versions")
    aug.fit_versions(old_dataset(old), steps=1)
    assert aug.references_ is not None and "work-4" in aug.references_  # a single recording
    assert aug.sample("work-4", 2, method="versions", seed=0).shape == (2, 1, 24, 16)


def test_a_format_1_file_is_a_class_gan(old: dict[str, np.ndarray], tmp_path: Path) -> None:
    aug = Augmenter.load(DATA / "augmenter-format1.pt", device="cpu")
    assert aug.models == ("gan",) and aug.versions_ is None
    np.testing.assert_allclose(
        aug.sample("work-0", 3, seed=0).numpy(), old["gan_only_sample"], **TOL
    )
    with pytest.raises(NotFittedError, match="fit_versions"):
        aug.sample_like(old["features"][0], 2)
    # saved again it stays readable by that release (format 1 for a class GAN alone)
    state = torch.load(aug.save(tmp_path / "again.pt"), weights_only=True)
    assert state["format_version"] == 1


def test_a_damaged_old_file_says_what_is_missing(tmp_path: Path) -> None:
    state = torch.load(DATA / "augmenter-format2.pt", weights_only=True)
    del state["normalizer"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="incomplete augmenter file.*normalizer.*fit an"):
        Augmenter.load(tmp_path / "broken.pt", device="cpu")


def test_a_format_2_file_is_refused_by_the_report_before_any_work(
    old: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import covergan.report
    from covergan import cli
    from covergan.data import split_recordings

    def work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report started working")

    for step in ("model_space_windows", "train_embedding"):
        monkeypatch.setattr(covergan.report, step, work)
    monkeypatch.setattr(cli, "_read_dataset", work)
    aug = Augmenter.load(DATA / "augmenter-format2.pt", device="cpu")
    train, heldout = split_recordings(old_dataset(old), holdout=1, min_recordings=2, seed=0)
    # the CLI's evaluate refuses it too: the message must say how to refit there
    with pytest.raises(NotFittedError, match=r"no reference bank.*covergan fit DATA OUT"):
        covergan.report.quality_report(aug, train, heldout, tmp_path / "report")
    argv = ["evaluate", str(DATA / "augmenter-format2.pt"), str(tmp_path), "-o", str(tmp_path)]
    assert cli.main(argv) == cli.EXIT_ERROR


def test_a_format_2_file_saved_again_still_says_it_has_no_bank(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    aug = Augmenter.load(DATA / "augmenter-format2.pt", device="cpu")
    caplog.clear()
    Augmenter.load(aug.save(tmp_path / "again.pt"), device="cpu")
    assert "holds a version model without a reference bank" in caplog.text
