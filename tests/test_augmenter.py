from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from covergan.augmenter import Augmenter
from covergan.cqt import CQTConfig
from covergan.data import CQTDataset
from covergan.errors import (
    CheckpointError,
    DatasetError,
    NotFittedError,
    ParameterError,
    UnknownSongError,
)
from covergan.sampling import AugmentedDataset

CFG = CQTConfig(n_bins=24)
TINY_GAN = {"g_width": 8, "d_width": 8, "batch_size": 4}


def toy_features(seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Songs s0..s3 with 1..4 recordings; each song has its own spectral envelope."""
    rng = np.random.default_rng(seed)
    feats, songs = [], []
    for i in range(4):
        envelope = np.exp(-0.5 * ((np.arange(24) - 5 * i - 3) / 2.0) ** 2)[:, None]
        for _ in range(i + 1):
            n = int(rng.integers(20, 40))
            feats.append((envelope * rng.gamma(2.0, 0.5, size=(24, n)) + 1e-3).astype(np.float32))
            songs.append(f"song-{i}")
    return feats, songs


@pytest.fixture(scope="module")
def dataset() -> CQTDataset:
    feats, songs = toy_features()
    return CQTDataset.from_arrays(feats, songs, config=CFG)


def make(**kwargs: object) -> Augmenter:
    params: dict[str, object] = {
        "model": "gan",
        "steps": 6,
        "seed": 0,
        "progress": False,
        "gan": TINY_GAN,
        "window": 16,
    }
    params.update(kwargs)
    return Augmenter(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fitted(dataset: CQTDataset) -> Augmenter:
    return make().fit(dataset)


def test_init_only_stores_parameters() -> None:
    aug = Augmenter(steps=5, seed=3)
    assert (aug.steps, aug.seed) == (5, 3)
    assert not aug.is_fitted and not [a for a in vars(aug) if a.endswith("_")]
    assert "not fitted" in repr(aug)


def test_fit_sets_fitted_attributes(fitted: Augmenter, dataset: CQTDataset) -> None:
    assert fitted.songs_.class_counts() == dataset.class_counts()
    assert fitted.window_ == 16 and fitted.config_ == CFG and fitted.seed_ == 0
    assert fitted.normalizer_.is_fitted and fitted.gan_.step == 6
    assert set(fitted.history_) >= {"loss_d", "loss_g"} and len(fitted.history_["loss_d"]) == 6
    assert fitted.gan_.classes == list(dataset.index.ids)
    assert "fitted on 4 songs" in repr(fitted)


def test_default_preset_pretrains_the_generator_as_an_autoencoder(
    fitted: Augmenter, dataset: CQTDataset
) -> None:
    assert len(fitted.gan_.pretrain_history["ae_l1"]) == 6 // 5
    explicit = make(steps=2, pretrain_steps=3).fit(dataset)
    assert len(explicit.gan_.pretrain_history["ae_l1"]) == 3 and explicit.gan_.step == 2
    none = make(steps=2, pretrain_steps=0).fit(dataset)
    assert none.gan_.pretrain_history == {}


def test_auto_window_is_the_capped_median_length(dataset: CQTDataset) -> None:
    aug = make(window=None, steps=1).fit(dataset)
    assert aug.window_ == int(np.median(dataset.lengths())) // 4 * 4


def test_sample_shapes_spaces_and_seeds(fitted: Augmenter) -> None:
    x = fitted.sample("song-1", 5, seed=1)
    assert x.shape == (5, 1, 24, 16) and x.dtype == torch.float32
    assert x.min() >= 0  # features space: non-negative magnitudes like the real features
    torch.testing.assert_close(x, fitted.sample("song-1", 5, seed=1))
    assert not torch.equal(x, fitted.sample("song-1", 5, seed=2))
    m = fitted.sample("song-1", 5, space="model", seed=1)
    assert m.min() >= -1 and m.max() <= 1
    torch.testing.assert_close(fitted.normalizer_.inverse(m), x)
    many = fitted.sample_many({"song-0": 2, "song-3": 3}, seed=4)
    assert {k: v.shape[0] for k, v in many.items()} == {"song-0": 2, "song-3": 3}


def test_fit_is_reproducible_on_cpu(dataset: CQTDataset, fitted: Augmenter) -> None:
    again = make().fit(dataset)
    torch.testing.assert_close(
        again.sample("song-2", 4, seed=9), fitted.sample("song-2", 4, seed=9)
    )


def test_refit_starts_from_scratch(dataset: CQTDataset) -> None:
    aug = make(steps=2).fit(dataset)
    aug.steps = 3
    aug.fit(dataset.subset([i for i, s in enumerate(dataset.song_ids) if s != "song-0"]))
    assert aug.gan_.step == 3 and "song-0" not in aug.songs_


def test_dataset_forms(dataset: CQTDataset, tmp_path: Path) -> None:
    feats, songs = toy_features()
    by_song: dict[str, list[np.ndarray]] = {}
    for f, s in zip(feats, songs, strict=True):
        by_song.setdefault(s, []).append(f)
    extractor_kwargs = {"extractor": __import__("covergan").CQTExtractor(CFG)}
    for form in (list(zip(feats, songs, strict=True)), by_song):
        aug = make(steps=1, **extractor_kwargs).fit(form)
        assert aug.songs_.class_counts() == dataset.class_counts()
    for f, s, k in zip(feats, songs, range(len(songs)), strict=True):
        (tmp_path / s).mkdir(exist_ok=True)
        np.save(tmp_path / s / f"r{k}.npy", f)
    aug = make(steps=1, **extractor_kwargs).fit(tmp_path)
    assert aug.songs_.class_counts() == dataset.class_counts()


def test_single_recording_songs_get_samples(fitted: Augmenter) -> None:
    assert fitted.songs_.class_counts()["song-0"] == 1
    assert fitted.sample("song-0", 2, seed=0).shape[0] == 2


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ([], DatasetError, "empty"),
        ({"only": [np.ones((24, 20))] * 3}, DatasetError, "at least 2"),
        (42, ParameterError, "dataset must be"),
        ([np.ones((24, 20))], ParameterError, "pairs"),
    ],
)
def test_fit_rejects_bad_datasets(data: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make(extractor=__import__("covergan").CQTExtractor(CFG)).fit(data)


def test_fit_refuses_versions_of_recordings_all_shorter_than_a_quarter_window(
    dataset: CQTDataset,
) -> None:
    tiny = {"z_dim": 8, "g_width": 4, "d_width": 4}
    aug = make(model="versions", gan=None, window=160, versions=tiny)
    longest = int(dataset.lengths().max())  # under 40 frames
    with pytest.raises(
        DatasetError, match=rf"shorter than 40 frames \(the longest has {longest}\)"
    ):
        aug.fit(dataset)
    assert aug.steps_done == {}  # refused before any training


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"pretrain_steps": -1}, "pretrain_steps"),
        ({"window": 1}, "window"),
        ({"seed": -1}, "seed"),
        ({"gan": 3}, "gan"),
        ({"extractor": "cqt"}, "extractor"),
    ],
)
def test_fit_rejects_bad_parameters(
    dataset: CQTDataset, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        make(**kwargs).fit(dataset)


def test_numpy_integers_are_taken_and_saved_as_python_ints(
    dataset: CQTDataset, tmp_path: Path
) -> None:
    aug = make(steps=np.int64(2), pretrain_steps=np.int32(0), seed=np.int64(3)).fit(dataset)
    assert type(aug.steps) is int and type(aug.pretrain_steps) is int and aug.seed == 3
    restored = Augmenter.load(aug.save(tmp_path / "aug.pt"))  # weights-only: no NumPy scalars
    assert restored.get_params()["steps"] == 2 and type(restored.get_params()["seed"]) is int
    with pytest.raises(ParameterError, match="steps"):
        make(steps=np.float64(2.0)).fit(dataset)


def test_not_fitted_errors() -> None:
    aug = Augmenter()
    for call in (lambda: aug.sample("a", 1), lambda: aug.plan(), lambda: aug.save("x.pt")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    with pytest.raises(AttributeError):  # NotFittedError is also an AttributeError
        aug.sample_many({"a": 1})


def test_sampling_errors(fitted: Augmenter) -> None:
    with pytest.raises(UnknownSongError, match="did you mean 'song-1'") as info:
        fitted.sample("song-11", 2)
    assert isinstance(info.value, KeyError)
    for n in (0, -3, 2.5, True):
        with pytest.raises(ParameterError, match="positive integer"):
            fitted.sample("song-1", n)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="space"):
        fitted.sample("song-1", 1, space="pixels")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="empty"):
        fitted.sample_many({})
    with pytest.raises(ParameterError, match=">= 0"):
        fitted.sample_many({"song-1": -1})
    none = fitted.sample_many(fitted.plan("max", max_ratio=0))  # a plan with zeros only
    assert all(x.shape == (0, 1, 24, 16) for x in none.values())


def test_plan(fitted: Augmenter) -> None:
    # counts are 1, 2, 3, 4
    assert fitted.plan("max") == {"song-0": 3, "song-1": 2, "song-2": 1, "song-3": 0}
    assert fitted.plan("median") == {"song-0": 2, "song-1": 1, "song-2": 0, "song-3": 0}
    assert fitted.plan(2) == {"song-0": 1, "song-1": 0, "song-2": 0, "song-3": 0}
    assert fitted.plan("max", max_ratio=1.5) == {"song-0": 1, "song-1": 2, "song-2": 1, "song-3": 0}
    for bad in ("mean", -1, 2.5):
        with pytest.raises(ParameterError, match="target"):
            fitted.plan(bad)  # type: ignore[arg-type]
    for bad_ratio in (-1, "2", float("nan")):
        with pytest.raises(ParameterError, match="max_ratio"):
            fitted.plan(max_ratio=bad_ratio)  # type: ignore[arg-type]


def test_balance(fitted: Augmenter, dataset: CQTDataset, tmp_path: Path) -> None:
    mixed = fitted.balance(dataset, target="max", seed=0)
    assert isinstance(mixed, AugmentedDataset)
    assert set(mixed.class_counts().values()) == {4}
    x, y, synthetic = mixed[len(mixed) - 1]
    assert synthetic and x.shape == (1, 24, 16) and mixed.index.song_id(y) == "song-2"
    banked = fitted.balance(dataset, target="max", seed=0, bank_dir=tmp_path / "bank")
    torch.testing.assert_close(banked[len(banked) - 1][0], x)
    assert len(fitted.balance(dataset.windows(16), target=1)) == len(dataset)
    with pytest.raises(ParameterError, match="window is 20"):
        fitted.balance(dataset.windows(20))
    with pytest.raises(ParameterError, match="CQTDataset"):
        fitted.balance([1, 2, 3])  # type: ignore[arg-type]


def test_save_load_round_trip(fitted: Augmenter, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "aug.pt")
    loaded = Augmenter.load(path, device="cpu")
    torch.testing.assert_close(
        loaded.sample("song-3", 4, seed=5), fitted.sample("song-3", 4, seed=5)
    )
    assert loaded.songs_ == fitted.songs_ and loaded.window_ == fitted.window_
    assert loaded.config_ == fitted.config_ and loaded.plan("max") == fitted.plan("max")
    assert [p.name for p in tmp_path.iterdir()] == ["aug.pt"]


def test_load_errors(fitted: Augmenter, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no augmenter file"):
        Augmenter.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="is a folder; give the augmenter file's path"):
        Augmenter.load(tmp_path)
    if not torch.cuda.is_available():  # a machine without the device, not a bad file
        with pytest.raises(ParameterError, match="no CUDA GPU is available"):
            Augmenter.load(fitted.save(tmp_path / "ok.pt"), device="cuda")
        (tmp_path / "ok.pt").unlink()
    (tmp_path / "empty.pt").touch()
    with pytest.raises(CheckpointError, match=r"empty \(0 bytes\)"):
        Augmenter.load(tmp_path / "empty.pt")
    good = fitted.save(tmp_path / "aug.pt")
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        Augmenter.load(tmp_path / "cut.pt")
    (tmp_path / "tiny.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable"):
        Augmenter.load(tmp_path / "tiny.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a covergan augmenter"):
        Augmenter.load(tmp_path / "foreign.pt")
    fitted.gan_.save(tmp_path / "gan.pt")
    with pytest.raises(CheckpointError, match="ConditionalDCGAN.load"):
        Augmenter.load(tmp_path / "gan.pt")
    state = torch.load(good, weights_only=True)
    state["format_version"] = 99
    torch.save(state, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="newer"):
        Augmenter.load(tmp_path / "newer.pt")
    del state["normalizer"]
    state["format_version"] = 1
    torch.save(state, tmp_path / "incomplete.pt")
    with pytest.raises(CheckpointError, match="incomplete"):
        Augmenter.load(tmp_path / "incomplete.pt")


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/covergan-pwned-augmenter",))


def test_load_never_runs_pickled_code(tmp_path: Path) -> None:
    marker = Path("/tmp/covergan-pwned-augmenter")
    marker.unlink(missing_ok=True)
    torch.save({"format": "covergan.augmenter", "payload": _Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights-only"):
        Augmenter.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_failed_save_keeps_the_previous_file(
    fitted: Augmenter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fitted.save(tmp_path / "aug.pt")
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["aug.pt"]


class _StopAt:
    """A callback that interrupts training at the end of GAN step ``step``, as Ctrl-C would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, gan: object, step: int, logs: dict[str, float]) -> None:
        if step == self.step:
            raise KeyboardInterrupt


def test_interrupted_fit_resumes_to_the_uninterrupted_model(
    fitted: Augmenter, dataset: CQTDataset, tmp_path: Path
) -> None:
    aug = make()
    with pytest.raises(KeyboardInterrupt):
        aug.fit(dataset, callbacks=[_StopAt(3)])
    assert aug.is_fitted and aug.gan_.step == 3  # the model as of the last completed step
    resumed = Augmenter.load(aug.save(tmp_path / "ckpt.pt"), device="cpu")
    resumed.progress = False
    assert resumed.fit(dataset, resume=True) is resumed
    assert resumed.gan_.step == 6 and resumed.history_ == fitted.history_
    for name in ("generator", "discriminator", "generator_ema"):
        expected = getattr(fitted.gan_, name).state_dict()
        for key, value in getattr(resumed.gan_, name).state_dict().items():
            assert torch.equal(value, expected[key]), f"{name}.{key}"


def test_resume_trains_up_to_steps(fitted: Augmenter, dataset: CQTDataset, tmp_path: Path) -> None:
    aug = Augmenter.load(fitted.save(tmp_path / "aug.pt"), device="cpu")
    aug.progress = False
    assert aug.fit(dataset, resume=True).gan_.step == 6  # done already: nothing to do
    aug.steps = 7
    assert aug.fit(dataset, resume=True).gan_.step == 7 and len(aug.history_["loss_d"]) == 7


def test_resume_errors(fitted: Augmenter, dataset: CQTDataset) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        make().fit(dataset, resume=True)
    smaller = dataset.subset(list(range(len(dataset) - 1)))
    with pytest.raises(DatasetError, match="the dataset the augmenter was fitted on"):
        fitted.fit(smaller, resume=True)
