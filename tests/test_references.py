"""The default augmenter: new versions of a song from its reference bank (covergan.references)."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from covergan.augmenter import MIN_VERSION_WORKS, Augmenter
from covergan.cqt import CQTConfig, CQTExtractor
from covergan.data import CQTDataset
from covergan.datasets import toy_covers
from covergan.errors import (
    CheckpointError,
    DatasetError,
    NotFittedError,
    ParameterError,
    UnknownSongError,
)
from covergan.references import ReferenceBank

N_BINS, WINDOW = 24, 16
CFG = CQTConfig(n_bins=N_BINS)
TINY_VERSIONS: dict[str, Any] = {"z_dim": 8, "g_width": 4, "d_width": 4, "max_width": 16}
TINY_GAN: dict[str, Any] = {"g_width": 4, "d_width": 4, "batch_size": 4, "max_width": 16}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def works(counts: tuple[int, ...] = (3, 2, 2, 1), seed: int = 0, frames: int = 40) -> CQTDataset:
    """Works with a per-work pitch pattern; recordings transposed, with their own lengths."""
    rng = np.random.default_rng(seed)
    feats, songs = [], []
    for w, n in enumerate(counts):
        pattern = rng.integers(4, 16, size=8)
        for _ in range(n):
            length = int(rng.integers(frames // 2, frames))
            shift = int(rng.integers(-3, 4))
            x = 0.05 * rng.random((N_BINS, length))
            for t in range(length):
                x[pattern[(t // 4) % 8] + shift, t] += rng.uniform(0.5, 1.0)
            feats.append((x / x.max()).astype(np.float32))
            songs.append(f"work-{w}")
    return CQTDataset.from_arrays(feats, songs, config=CFG)


def make(**kwargs: Any) -> Augmenter:
    params: dict[str, Any] = {
        "steps": 3,
        "seed": 0,
        "progress": False,
        "window": WINDOW,
        "versions": TINY_VERSIONS,
    }
    params.update(kwargs)
    return Augmenter(**params)


@pytest.fixture(scope="module")
def data() -> CQTDataset:
    return works()


@pytest.fixture(scope="module")
def aug(data: CQTDataset) -> Augmenter:
    return make(references=3).fit(data)


# ------------------------------------------------------------------------------- the bank


def test_bank_is_bounded_per_song_and_compact(data: CQTDataset) -> None:
    bank = ReferenceBank.build(data, width=12, per_song=3, min_frames=4, seed=0)
    assert len(bank) == 4 and bank.width == 12 and not bank.skipped
    assert [bank.count(s) for s in data.index.ids] == [3, 3, 3, 3]
    assert all(w.dtype == torch.float16 for w in bank.windows.values())
    assert bank.nbytes == 4 * 3 * N_BINS * 12 * 2
    # the windows are cut from the song's own recordings
    one = data.features[data.song_ids.index("work-3")]
    for w in bank.windows["work-3"].float().numpy():
        cuts = [one[:, s : s + 12] for s in range(one.shape[1] - 11)]
        assert any(np.allclose(c, w, atol=1e-3) for c in cuts), "not from the song's recording"


def test_bank_stays_within_its_byte_bound(data: CQTDataset) -> None:
    window_bytes = N_BINS * 12 * 2
    bank = ReferenceBank.build(data, width=12, per_song=3, max_bytes=4 * 2 * window_bytes + 5)
    assert [bank.count(s) for s in data.index.ids] == [2, 2, 2, 2]
    tiny = ReferenceBank.build(data, width=12, per_song=3, max_bytes=1)
    assert [tiny.count(s) for s in data.index.ids] == [1, 1, 1, 1]  # never fewer than one
    with pytest.raises(ParameterError, match="max_bytes"):
        ReferenceBank.build(data, width=12, max_bytes=0)


def test_workers_cut_the_same_training_windows(data: CQTDataset) -> None:
    both = {"model": ("versions", "gan"), "gan": TINY_GAN, "steps": 2, "pretrain_steps": 1}
    alone, ahead = make(**both).fit(data), make(workers=2, **both).fit(data)
    for name in ("versions_", "gan_"):
        a, b = getattr(alone, name).generator, getattr(ahead, name).generator
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), (name, key)
    with pytest.raises(ParameterError, match="workers"):
        make(workers=-1).fit(data)


def test_bank_pads_short_recordings_and_skips_tiny_ones() -> None:
    feats = [np.ones((N_BINS, 10), np.float32), np.ones((N_BINS, 3), np.float32)]
    data = CQTDataset.from_arrays(feats, ["short", "tiny"], config=CFG)
    bank = ReferenceBank.build(data, width=20, per_song=4, min_frames=4)
    assert bank.count("short") == 1 and bank.skipped == ["tiny"]
    w = bank.windows["short"][0].float()
    assert torch.all(w[:, :10] == 1) and torch.all(w[:, 10:] == CFG.silence_value)
    with pytest.raises(DatasetError, match="'tiny' has no reference windows"):
        bank.draw("tiny", 2, rng=np.random.default_rng(0))
    with pytest.raises(ParameterError, match="per_song=0"):
        ReferenceBank.build(data, width=20, per_song=0)
    # a dataset that tiles its short training windows tiles its references the same way
    ramp = np.tile(np.arange(10, dtype=np.float32), (N_BINS, 1))
    wrapped = CQTDataset.from_arrays([ramp], ["short"], config=CFG).windows(None, pad_mode="wrap")
    tiled = ReferenceBank.build(wrapped, width=25, per_song=2).windows["short"][0].float()
    assert torch.equal(tiled[0], torch.from_numpy(np.arange(25) % 10).float())


def test_sampling_a_song_without_references_says_what_to_do(data: CQTDataset) -> None:
    feats = [*data.features, np.ones((N_BINS, 1), np.float32)]
    aug = make(references=3).fit(
        CQTDataset.from_arrays(feats, [*data.song_ids, "tiny"], config=CFG)
    )
    assert aug.references_.skipped == ["tiny"]
    with pytest.raises(DatasetError, match="'tiny' has no reference windows.*method='gan'"):
        aug.sample("tiny", 2)


def test_bank_draws_every_window_in_turn(data: CQTDataset) -> None:
    bank = ReferenceBank.build(data, width=20, per_song=3, min_frames=4)
    x = bank.draw("work-0", 7, rng=np.random.default_rng(0))
    assert x.shape == (7, N_BINS, 20) and x.dtype == torch.float32
    refs = bank.windows["work-0"].float()
    used = [int(torch.argmin(((refs - w) ** 2).sum(dim=(1, 2)))) for w in x]
    assert sorted(used[:3]) == [0, 1, 2] and sorted(used[3:6]) == [0, 1, 2]


# ------------------------------------------------------------------------------- the default


def test_default_fits_the_version_model_only(aug: Augmenter, data: CQTDataset) -> None:
    assert Augmenter().models == ("versions",)
    assert aug.gan_ is None and aug.versions_ is not None and aug.versions_.step == 3
    assert aug.references_ is not None and aug.references_.count("work-3") == 3
    assert aug.steps_done == {"versions": 3} and set(aug.history_) >= {"loss_d", "loss_g"}


def test_sample_gives_versions_of_the_song(aug: Augmenter) -> None:
    x = aug.sample("work-3", 5, seed=0)  # a song with one recording
    assert x.shape == (5, 1, N_BINS, WINDOW) and bool((x >= 0).all())
    assert torch.equal(x, aug.sample("work-3", 5, seed=0))
    assert not torch.equal(x, aug.sample("work-3", 5, seed=1))
    many = aug.sample_many({"work-0": 2, "work-3": 5, "work-1": 0}, seed=0)
    assert torch.equal(many["work-3"], x) and many["work-1"].shape == (0, 1, N_BINS, WINDOW)
    assert aug.sample("work-0", 3, space="model", seed=0).abs().max() <= 1.0


def test_the_augmenter_and_its_transform_pickle(aug: Augmenter) -> None:
    """DataLoader workers under the spawn start method (macOS, Windows) pickle them."""
    back = pickle.loads(pickle.dumps(aug))
    assert torch.equal(back.sample("work-0", 3, seed=1), aug.sample("work-0", 3, seed=1))
    x = aug.sample("work-1", 4, seed=0)
    transform = pickle.loads(pickle.dumps(aug.version_augment(p=1.0, seed=0)))
    assert torch.equal(transform(x), aug.version_augment(p=1.0, seed=0)(x))


def test_sample_errors(aug: Augmenter, tmp_path: Path) -> None:
    with pytest.raises(UnknownSongError, match="did you mean 'work-1'"):
        aug.sample("work-11", 2)
    with pytest.raises(ParameterError, match="n=0"):
        aug.sample("work-0", 0)
    with pytest.raises(ParameterError, match="seed=-1 must be a non-negative integer or None"):
        aug.sample("work-0", 2, seed=-1)
    no_gan = (
        r"no class GAN \(fitted with model='versions'\); refit with "
        r"Augmenter\(model=\('versions', 'gan'\)\) \(command line: covergan fit DATA OUT "
        r"--model versions,gan\)"
    )
    with pytest.raises(NotFittedError, match=no_gan):
        aug.sample("work-0", 2, method="gan")
    with pytest.raises(NotFittedError, match=no_gan):  # the same once saved and loaded
        Augmenter.load(aug.save(tmp_path / "aug.pt")).sample("work-0", 2, method="gan")
    with pytest.raises(ParameterError, match="method='magic'"):
        aug.sample("work-0", 2, method="magic")  # type: ignore[arg-type]
    with pytest.raises(NotFittedError, match="not fitted"):
        make().sample("work-0", 2)


def test_too_few_works_with_versions(data: CQTDataset) -> None:
    one_multi = data.subset([0, 1, 2, 3, 7])  # work-0 has 3 recordings, the others 1
    with pytest.raises(DatasetError, match=rf"at least {MIN_VERSION_WORKS}; this dataset has 1"):
        make().fit(one_multi)
    with pytest.raises(DatasetError, match="model='gan'"):
        make().fit(one_multi)
    way_out = make(model="gan", versions=None, gan=TINY_GAN)
    assert way_out.fit(one_multi).gan_ is not None


def test_model_argument_is_checked(data: CQTDataset) -> None:
    for bad in ("magic", (), ("gan", "gan")):
        with pytest.raises(ParameterError, match="model="):
            make(model=bad).fit(data)
    with pytest.raises(ParameterError, match="references=0"):
        make(references=0).fit(data)
    with pytest.raises(ParameterError, match="gan= configures the class GAN"):
        make(gan=TINY_GAN).fit(data)


def test_both_models_first_is_the_default(data: CQTDataset) -> None:
    both = make(model=("versions", "gan"), steps=2, gan=TINY_GAN).fit(data)
    assert both.steps_done == {"versions": 2, "gan": 2}
    assert torch.equal(
        both.sample("work-0", 2, seed=0), both.sample("work-0", 2, seed=0, method="versions")
    )
    gan = both.sample("work-0", 2, seed=0, method="gan")
    assert gan.shape == (2, 1, N_BINS, WINDOW)


def test_deprecated_versions_flag(data: CQTDataset) -> None:
    with pytest.warns(DeprecationWarning, match=r"model=\('gan', 'versions'\)"):
        old = Augmenter(versions=True)
    assert old.models == ("gan", "versions")
    with pytest.warns(DeprecationWarning, match="model='gan'"):
        assert Augmenter(versions=False).models == ("gan",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Augmenter(versions={"z_dim": 8})


def test_fit_takes_every_dataset_form(data: CQTDataset, extractor: CQTExtractor) -> None:
    pairs = ((x, s) for x, s in zip(data.features, data.song_ids, strict=True))  # an iterator
    a = make(extractor=CQTExtractor(CFG)).fit(pairs)
    b = make().fit(data)
    assert torch.equal(a.sample("work-1", 2, seed=0), b.sample("work-1", 2, seed=0))
    by_song: dict[str, list[np.ndarray]] = {}
    for x, s in zip(data.features, data.song_ids, strict=True):
        by_song.setdefault(s, []).append(x)
    assert make(extractor=CQTExtractor(CFG)).fit(by_song).songs_ == data.index
    covers = toy_covers(4, 2, seed=0, duration=3.0)  # a CoverSet: audio, extracted on the way
    fitted = make(extractor=extractor, window=8).fit(covers)
    assert len(fitted.songs_) == 4 and fitted.sample(covers.song_ids[0], 1).shape[2] == 84
    with pytest.raises(ParameterError, match="CoverSet"):
        make().fit(3.5)
    with pytest.raises(ParameterError, match=r"\(features, song_id\) pairs"):
        make().fit([np.zeros((N_BINS, 20))])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(data: CQTDataset, value: float) -> None:
    bad = [x.copy() for x in data.features]
    bad[2][3, 4] = value
    with pytest.raises(ParameterError, match="NaN or inf"):
        make(extractor=CQTExtractor(CFG)).fit(list(zip(bad, data.song_ids, strict=True)))


# ------------------------------------------------------------------------------- persistence


def test_save_load_keeps_the_bank(aug: Augmenter, tmp_path: Path) -> None:
    path = aug.save(tmp_path / "aug.pt")
    state = torch.load(path, weights_only=True)
    assert state["format_version"] == 3 and "gan" not in state
    assert state["params"]["model"] == ["versions"] and state["references"]["songs"]
    same = Augmenter.load(path, device="cpu")
    assert same.models == ("versions",) and same.gan_ is None
    assert torch.equal(same.sample("work-2", 3, seed=4), aug.sample("work-2", 3, seed=4))
    state["references"]["windows"] = state["references"]["windows"][:1]
    torch.save(state, tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match="reference bank"):
        Augmenter.load(tmp_path / "damaged.pt")


def test_files_of_the_previous_release_load(data: CQTDataset, tmp_path: Path) -> None:
    """A format-2 file (class GAN + version model, no bank) loads as it was and can be
    given a bank with fit_versions."""
    both = make(model=("gan", "versions"), steps=2, gan=TINY_GAN).fit(data)
    state = torch.load(both.save(tmp_path / "new.pt"), weights_only=True)
    state["format_version"] = 2
    del state["references"], state["params"]["model"], state["params"]["references"]
    torch.save(state, tmp_path / "old.pt")
    old = Augmenter.load(tmp_path / "old.pt", device="cpu")
    assert old.models == ("gan", "versions") and old.references_ is None
    assert torch.equal(old.sample("work-0", 2, seed=0), both.sample("work-0", 2, seed=0))
    with pytest.raises(NotFittedError, match="fit_versions"):
        old.sample("work-0", 2, method="versions")
    old.progress = False
    old.fit_versions(data, steps=1)
    assert old.sample("work-0", 2, method="versions", seed=0).shape == (2, 1, N_BINS, WINDOW)


class _StopAt:
    """Interrupt training at the end of step ``step``, as Ctrl-C would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, model: object, step: int, logs: dict[str, float]) -> None:
        if step == self.step:
            raise KeyboardInterrupt


def test_interrupted_version_fit_resumes_exactly(
    aug: Augmenter, data: CQTDataset, tmp_path: Path
) -> None:
    stopped = make(references=3)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(data, callbacks=[_StopAt(1)])
    assert stopped.is_fitted and stopped.steps_done == {"versions": 1}
    resumed = Augmenter.load(stopped.save(tmp_path / "ckpt.pt"), device="cpu")
    resumed.progress = False
    resumed.fit(data, resume=True)
    assert resumed.steps_done == {"versions": 3}
    assert aug.versions_ is not None and resumed.versions_ is not None
    expected = aug.versions_.generator_ema.state_dict()
    for key, value in resumed.versions_.generator_ema.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert torch.equal(resumed.sample("work-1", 2, seed=0), aug.sample("work-1", 2, seed=0))
