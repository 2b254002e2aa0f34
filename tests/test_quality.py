"""The quality suite of covergan.quality on structured synthetic CQTs.

The data is built directly in NumPy (no audio, no librosa): every song is a melody and a
chord sequence drawn from one shared scale and one shared chord pool, so any window of any
song holds much the same notes and only their order tells songs apart. A version of a song
plays it from another starting note, at another tempo, with another timbre (harmonic
weights) and other noise. The reference CSI embedding is trained once per module (about
5 s on one thread); every number below is deterministic for the seeds used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from covergan.cqt import CQTNormalizer
from covergan.csi import EmbeddingFeatures
from covergan.data import CQTDataset
from covergan.errors import ParameterError
from covergan.quality import (
    IDENTITY_MIN_RATIO,
    MEMORIZATION_MAX_COPY_FRACTION,
    REALISM_MAX_RATIO,
    MetricResult,
    QualitySuite,
    embed_windows,
    evaluate_quality,
    matched_noise,
    negative_controls,
    permute_frames,
    shuffle_bins,
    train_embedding,
)

N_BINS = 36
WINDOW = 32
N_SONGS = 12
N_TRAIN, N_HELD_A, N_HELD_B = 3, 2, 6  # recordings per song
SCALE = (0, 2, 4, 5, 7, 9, 11)
CHORDS = (0, 3, 4, 5)  # scale degrees of the chord roots
TINY: dict[str, Any] = {"channels": (16, 32, 64), "embedding_dim": 32}
SCRAMBLES = ("permuted frames", "shuffled bins", "matched noise")

# "Clearly worse" than held-out real windows, in numbers. Here real held-out windows of a
# second split score identity 1.09, realism 0.81 (ratios to their floors).
IDENTITY_REJECT = 0.5  # identity ratio below this (the verdict needs >= 0.8)
REALISM_REJECT = 2 * REALISM_MAX_RATIO  # Frechet ratio above twice the pass threshold


def _score(rng: np.random.Generator, n_notes: int = 28) -> tuple[np.ndarray, ...]:
    """A song: melody (scale degrees, each degree once per 7 notes), durations, chord roots."""
    degrees = np.concatenate([rng.permutation(7) for _ in range(n_notes // 7)])
    pitches = np.array([SCALE[d] for d in degrees])
    durations = rng.choice([3, 4, 6, 8], n_notes)
    roots = np.concatenate([rng.permutation(CHORDS) for _ in range(n_notes // 8 + 1)])
    return pitches, durations, np.repeat([SCALE[r] for r in roots], 2)[:n_notes]


def _render(score: tuple[np.ndarray, ...], rng: np.random.Generator, frames: int) -> np.ndarray:
    """One version: another start, tempo (0.8-1.25), timbre and noise. Magnitudes >= 0."""
    pitches, durations, roots = score
    tempo = rng.uniform(0.8, 1.25)
    h2, h3 = rng.uniform(0.2, 0.6, 2)
    i = int(rng.integers(len(pitches)))
    cols: list[np.ndarray] = []
    while sum(c.shape[1] for c in cols) < frames:
        n = max(1, round(durations[i % len(pitches)] * tempo))
        col = np.zeros((N_BINS, n))
        p, r = 12 + pitches[i % len(pitches)], roots[i % len(pitches)]
        envelope = np.linspace(1.0, 0.6, n)
        for b, a in ((p, 1.0), (p + 12, h2), (p + 19, h3), (r, 0.5), (r + 4, 0.3), (r + 7, 0.3)):
            if b < N_BINS:
                col[b] += a * envelope
        cols.append(col)
        i += 1
    x = np.concatenate(cols, axis=1)[:, :frames]
    return (x + 0.05 * rng.random(x.shape)).astype(np.float32)


def _windows(
    data: CQTDataset, norm: CQTNormalizer, crops: int, seed: int
) -> tuple[torch.Tensor, list[str]]:
    view = data.windows(WINDOW, crop="random", seed=seed, transform=norm)
    xs: list[torch.Tensor] = []
    songs: list[str] = []
    for epoch in range(crops):
        view.set_epoch(epoch)
        xs += [view[i][0] for i in range(len(view))]
        songs += [str(s) for s in view.song_ids]
    return torch.stack(xs), songs


@pytest.fixture(scope="module")
def corpus() -> Iterator[dict[str, Any]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible numbers, and quicker for a model this small
    rng = np.random.default_rng(0)
    parts: dict[str, tuple[list[np.ndarray], list[str]]] = {
        "train": ([], []),
        "a": ([], []),
        "b": ([], []),
    }
    for s in range(N_SONGS):
        score = _score(rng)
        for v in range(N_TRAIN + N_HELD_A + N_HELD_B):
            part = "train" if v < N_TRAIN else "a" if v < N_TRAIN + N_HELD_A else "b"
            parts[part][0].append(_render(score, rng, 96 + int(rng.integers(16))))
            parts[part][1].append(f"song-{s}")
    data = {k: CQTDataset(feats, ids) for k, (feats, ids) in parts.items()}
    norm = CQTNormalizer().fit(data["train"])
    embed = train_embedding(
        data["train"], window=WINDOW, transform=norm, steps=600, augment=None, **TINY
    )
    xt, st = _windows(data["train"], norm, 4, seed=1)
    xa, sa = _windows(data["a"], norm, 4, seed=2)  # 2 recordings x 4 crops per song
    xb, sb = _windows(data["b"], norm, 1, seed=3)  # 6 recordings x 1 crop per song
    yield {"embed": embed, "train": (xt, st), "a": (xa, sa), "b": (xb, sb), "data": data}
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_b(corpus: dict[str, Any]) -> QualitySuite:
    """Held-out real windows of a second split (other recordings) in place of synthetic."""
    return evaluate_quality(corpus["embed"], *corpus["train"], *corpus["a"], *corpus["b"])


@pytest.fixture(scope="module")
def controls(corpus: dict[str, Any]) -> dict[str, QualitySuite]:
    return negative_controls(corpus["embed"], *corpus["train"], *corpus["a"], seed=0)


# -- the suite on real data and on the negative controls ---------------------------------


def test_heldout_windows_of_a_second_split_score_near_the_floor(real_b: QualitySuite) -> None:
    assert real_b.identity.floor > 4 * real_b.chance  # the embedding identifies songs
    assert 0.7 <= real_b.identity.ratio <= 1.4
    assert 0.8 <= real_b.diversity.ratio <= 1.6
    assert 0.5 <= real_b.realism.ratio <= 1.25
    assert 0.8 <= real_b.memorization.ratio <= 1.25
    assert real_b.copy_fraction <= MEMORIZATION_MAX_COPY_FRACTION
    assert real_b.passed
    assert [m.verdict for m in real_b.metrics] == ["pass"] * 4
    assert (real_b.n_songs, real_b.n_synthetic) == (N_SONGS, N_SONGS * N_HELD_B)


@pytest.mark.parametrize("name", SCRAMBLES)
def test_scrambled_controls_are_rejected_by_identity_and_realism(
    controls: dict[str, QualitySuite], real_b: QualitySuite, name: str
) -> None:
    suite = controls[name]
    assert suite.identity.ratio < IDENTITY_REJECT < IDENTITY_MIN_RATIO <= real_b.identity.ratio
    assert suite.realism.ratio > REALISM_REJECT > REALISM_MAX_RATIO >= real_b.realism.ratio
    assert (suite.identity.verdict, suite.realism.verdict) == ("FAIL", "FAIL")
    # Diversity is the collapse detector, not a judge of musical sense: scrambled windows
    # of a song are about as far apart as real versions (0.67-0.90 of the floor here).
    assert suite.diversity.ratio > 0.5
    assert suite.memorization.passed  # and they are not copies of the training set
    assert not suite.passed


def test_collapsed_sets_fail_diversity(
    corpus: dict[str, Any], controls: dict[str, QualitySuite]
) -> None:
    collapsed = controls["collapsed"]  # one held-out window per song, repeated
    assert collapsed.diversity.value == 0.0  # float rounding of identical windows snapped
    assert collapsed.diversity.verdict == "FAIL"
    assert collapsed.memorization.passed  # real held-out windows, not copies
    # Tiny noise around one window per song: still collapsed.
    xa, sa = corpus["a"]
    first = {s: i for i, s in reversed(list(enumerate(sa)))}
    base = xa[[first[s] for s in sa]]
    noise = torch.randn(base.shape, generator=torch.Generator().manual_seed(0))
    suite = evaluate_quality(
        corpus["embed"], *corpus["train"], xa, sa, (base + 0.02 * noise).clamp(-1, 1), sa
    )
    assert suite.diversity.ratio < 0.25
    assert not suite.diversity.passed
    assert not suite.passed


def test_exact_copies_are_flagged_by_memorisation(controls: dict[str, QualitySuite]) -> None:
    copies = controls["copies"]
    assert copies.memorization.value == pytest.approx(0.0, abs=1e-9)
    assert copies.copy_fraction == 1.0
    assert copies.memorization.verdict == "FAIL"
    assert copies.memorization_report.nearest_train.shape == (copies.n_synthetic,)
    assert copies.identity.value == 1.0  # training windows are identified...
    assert copies.realism.ratio == pytest.approx(1.0)  # ... and realistic: only memorisation


def test_no_negative_control_passes_the_suite(controls: dict[str, QualitySuite]) -> None:
    assert list(controls) == [*SCRAMBLES, "collapsed", "copies"]
    assert [name for name, suite in controls.items() if suite.passed] == []


def test_copies_among_good_windows_are_flagged(corpus: dict[str, Any]) -> None:
    xt, st = corpus["train"]
    xb, sb = corpus["b"]
    mixed = torch.cat([xb, xt[: len(xb) // 4]])
    suite = evaluate_quality(
        corpus["embed"], *corpus["train"], *corpus["a"], mixed, sb + st[: len(xb) // 4]
    )
    assert suite.copy_fraction >= 0.2 > MEMORIZATION_MAX_COPY_FRACTION
    assert not suite.memorization.passed


def test_suite_is_deterministic_and_prints_a_table(
    corpus: dict[str, Any], real_b: QualitySuite
) -> None:
    again = evaluate_quality(corpus["embed"], *corpus["train"], *corpus["a"], *corpus["b"])
    assert [(m.value, m.floor) for m in again.metrics] == [
        (m.value, m.floor) for m in real_b.metrics
    ]
    table = real_b.to_markdown().splitlines()
    assert table[0] == "| metric | synthetic | real floor | ratio | verdict |"
    assert [row.split(" | ")[0] for row in table[2:]] == [
        "| identity",
        "| diversity",
        "| realism",
        "| memorisation",
    ]
    assert all("pass (" in row for row in table[2:])


def test_identity_is_not_informative_when_the_floor_is_chance(corpus: dict[str, Any]) -> None:
    def first_bins(x: torch.Tensor) -> torch.Tensor:  # loudness of the lowest bins only
        return x[:, 0, :4].mean(-1) + 2.0

    suite = evaluate_quality(first_bins, *corpus["train"], *corpus["a"], *corpus["b"])
    assert suite.identity.floor < 2 * suite.chance
    assert suite.identity.verdict == "n/a"
    assert not suite.identity.passed
    assert suite.passed == all(m.passed for m in suite.metrics[1:])  # n/a does not count
    assert "n/a" in suite.to_markdown()


# -- the embedding -----------------------------------------------------------------------


def test_train_embedding_gives_a_unit_norm_eval_module(corpus: dict[str, Any]) -> None:
    embed = corpus["embed"]
    assert isinstance(embed, EmbeddingFeatures)
    assert not embed.model.training
    z = embed(corpus["b"][0][:5])
    assert z.shape == (5, TINY["embedding_dim"])
    np.testing.assert_allclose(z.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_train_embedding_is_seeded_and_augments_keys_by_default(corpus: dict[str, Any]) -> None:
    train = corpus["data"]["train"]
    norm = CQTNormalizer().fit(train)
    x = corpus["b"][0][:6]
    kwargs: dict[str, Any] = {"window": WINDOW, "transform": norm, "steps": 3, **TINY}
    a, b = (train_embedding(train, seed=1, **kwargs)(x) for _ in range(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    plain = train_embedding(train, seed=1, augment=None, **kwargs)(x)
    assert not torch.equal(a, plain)  # "key" rolled the training batches


def test_train_embedding_errors(corpus: dict[str, Any]) -> None:
    one_song = CQTDataset([np.ones((N_BINS, 40), np.float32)] * 2, ["x", "x"])
    with pytest.raises(ParameterError, match="1 song"):
        train_embedding(one_song, window=WINDOW)
    with pytest.raises(ParameterError, match="augment='loud'"):
        train_embedding(corpus["data"]["train"], window=WINDOW, augment="loud")  # type: ignore[arg-type]


def test_embed_windows_restores_training_mode_and_uses_eval_mode() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(N_BINS * 4, 3), nn.BatchNorm1d(3))
    x = torch.rand(5, 1, N_BINS, 4)
    module.train()
    z = embed_windows(module, x, batch_size=2)
    assert module.training
    with torch.no_grad():
        expected = module.eval()(x).double().numpy()
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("embed", "match"),
    [
        (
            lambda x: x.flatten(1).mean(1),
            r"\(b, d\) tensor for a batch of b=\d+ .*got shape \(\d+,\)",
        ),
        (lambda x: x.flatten(1)[:1], r"batch of b=\d+ .*got shape \(1, \d+\)"),
        (lambda x: x.reshape(1, 1, -1), r"got shape \(1, 1, \d+\)"),
        (lambda x: x.flatten(1) * float("nan"), r"NaN or inf values \(output shape \(\d+, \d+\)\)"),
        (lambda x: x.flatten(1).numpy(), "must return a torch.Tensor"),
        (lambda x: x.flatten(1)[:, :0], r"got shape \(\d+, 0\)"),
    ],
)
def test_bad_embed_output_is_a_parameter_error(
    corpus: dict[str, Any], embed: Any, match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        evaluate_quality(embed, *corpus["train"], *corpus["a"], *corpus["b"])


# -- input errors ------------------------------------------------------------------------


def test_mismatched_label_lengths(corpus: dict[str, Any]) -> None:
    xb, sb = corpus["b"]
    with pytest.raises(
        ParameterError, match=f"synthetic has {len(xb)} windows but .* {len(xb) - 1}"
    ):
        evaluate_quality(corpus["embed"], *corpus["train"], *corpus["a"], xb, sb[:-1])
    xa, sa = corpus["a"]
    with pytest.raises(ParameterError, match="heldout has .* windows but heldout_songs"):
        negative_controls(corpus["embed"], *corpus["train"], xa, [*sa, "song-0"])


def test_too_few_windows_per_song(corpus: dict[str, Any]) -> None:
    xb, sb = corpus["b"]
    keep = [i for i, s in enumerate(sb) if s != "song-3"] + [sb.index("song-3")]
    with pytest.raises(ParameterError, match=r"fewer than 2 synthetic window.*'song-3': 1"):
        evaluate_quality(
            corpus["embed"], *corpus["train"], *corpus["a"], xb[keep], [sb[i] for i in keep]
        )
    xa, sa = corpus["a"]
    held = [i for i, s in enumerate(sa) if s != "song-5"]
    with pytest.raises(ParameterError, match=r"fewer than 1 heldout window.*'song-5': 0"):
        evaluate_quality(corpus["embed"], *corpus["train"], xa[held], [sa[i] for i in held], xb, sb)
    with pytest.raises(ParameterError, match=r"fewer than 1 train window.*'new-song': 0"):
        evaluate_quality(corpus["embed"], *corpus["train"], *corpus["a"], xb[:2], ["new-song"] * 2)


def test_nan_and_badly_shaped_input(corpus: dict[str, Any]) -> None:
    xb, sb = corpus["b"]
    bad = xb.clone()
    bad[3, 0, 5, 7] = float("nan")
    with pytest.raises(ParameterError, match=r"synthetic contains NaN or inf values \(1 of"):
        evaluate_quality(corpus["embed"], *corpus["train"], *corpus["a"], bad, sb)
    with pytest.raises(ParameterError, match=r"differ in shape"):
        evaluate_quality(corpus["embed"], *corpus["train"], *corpus["a"], xb[..., :16], sb)
    with pytest.raises(ParameterError, match=r"synthetic must be model-space windows"):
        evaluate_quality(corpus["embed"], *corpus["train"], *corpus["a"], xb[:, 0], sb)
    with pytest.raises(ParameterError, match="seed=-1"):
        evaluate_quality(corpus["embed"], *corpus["train"], *corpus["a"], xb, sb, seed=-1)
    with pytest.raises(ParameterError, match="x contains NaN"):
        permute_frames(bad)


# -- the controls themselves -------------------------------------------------------------


def _ramp(n: int = 3, h: int = 5, w: int = 8) -> torch.Tensor:
    """Windows whose value encodes (window, bin, frame): ``((i * h + b) * w + t) / 1000``."""
    return torch.arange(n * h * w, dtype=torch.float32).reshape(n, 1, h, w) / 1000


def _source_frames(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The frame of ``x`` each entry of ``out`` came from (for :func:`_ramp` windows)."""
    return ((out - x[..., :1]) * 1000).round().long()


def test_permute_frames_moves_whole_frames() -> None:
    x = _ramp()
    out = permute_frames(x, seed=0)
    frames = _source_frames(out, x)
    assert (frames == frames[:, :, :1]).all()  # every bin of a window moved the same way
    for i in range(x.shape[0]):
        order = frames[i, 0, 0]
        assert sorted(order.tolist()) == list(range(x.shape[-1]))
        torch.testing.assert_close(out[i, 0], x[i, 0][:, order])
    assert not torch.equal(out, x)
    torch.testing.assert_close(permute_frames(x, seed=0), out)
    assert not torch.equal(permute_frames(x, seed=1), out)
    torch.testing.assert_close(permute_frames(x, torch.Generator().manual_seed(0)), out)


def test_shuffle_bins_shuffles_each_bin_on_its_own() -> None:
    x = _ramp()
    out = shuffle_bins(x, seed=0)
    torch.testing.assert_close(out.sort(dim=-1).values, x)  # each bin keeps its values
    frames = _source_frames(out, x)
    assert (frames[:, :, 1:] != frames[:, :, :1]).any(dim=(1, 3)).all()  # bins move apart
    torch.testing.assert_close(shuffle_bins(x, seed=0), out)
    assert not torch.equal(shuffle_bins(x, seed=1), out)


def test_matched_noise_matches_each_bins_statistics() -> None:
    gen = torch.Generator().manual_seed(0)
    mean = torch.linspace(-0.5, 0.3, 6).reshape(1, 1, 6, 1)
    std = torch.linspace(0.05, 0.2, 6).reshape(1, 1, 6, 1)
    x = mean + std * torch.randn(40, 1, 6, 50, generator=gen)
    out = matched_noise(x, seed=0)
    assert out.shape == x.shape
    assert float(out.abs().max()) <= 1.0
    torch.testing.assert_close(out.mean(dim=(0, 1, 3)), x.mean(dim=(0, 1, 3)), atol=0.01, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 1, 3)), x.std(dim=(0, 1, 3)), atol=0.01, rtol=0)
    torch.testing.assert_close(matched_noise(x, seed=0), out)
    assert not torch.equal(matched_noise(x, seed=1), out)
    assert float(matched_noise(torch.full((2, 1, 3, 4), 0.9) + 0.5, seed=0).max()) == 1.0


@pytest.mark.filterwarnings("ignore:.*n <= d")
def test_controls_pair_a_song_with_a_single_window() -> None:
    """One crop of a song's one recording (``quality_report(crops=1)``) still gets every
    control: its window twice, where a spread needs pairs."""
    gen = torch.Generator().manual_seed(0)
    train = torch.rand(7, 1, 8, 6, generator=gen) * 2 - 1
    held = torch.rand(5, 1, 8, 6, generator=gen) * 2 - 1
    train_songs, held_songs = ["a", "b", "b", "b", "c", "c", "c"], ["a", "b", "b", "c", "c"]
    controls = negative_controls(lambda x: x.mean(dim=(1, 3)), train, train_songs, held, held_songs)
    sizes = {name: c.n_synthetic for name, c in controls.items()}
    assert sizes == dict.fromkeys(controls, 6) | {"copies": 8}  # "a" twice, the rest once
    assert controls["collapsed"].diversity.value == 0.0
    assert controls["copies"].copy_fraction == 1.0 and controls["copies"].n_songs == 3


@pytest.mark.parametrize("fn", [permute_frames, shuffle_bins, matched_noise])
def test_control_errors(fn: Any) -> None:
    with pytest.raises(ParameterError, match=r"model-space windows \(n, 1, H, W\).*\(2, 5, 8\)"):
        fn(torch.zeros(2, 5, 8))
    with pytest.raises(ParameterError, match="seed=-2"):
        fn(torch.zeros(2, 1, 5, 8), seed=-2)
    with pytest.raises(ParameterError, match="must be a torch.Tensor"):
        fn(np.zeros((2, 1, 5, 8)))
    x = torch.rand(2, 1, 5, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fn(x, seed=np.int64(3)), fn(x, seed=3))  # NumPy ints are ints


def test_metric_result_verdicts() -> None:
    ok = MetricResult("identity", 0.5, 0.6, True, "ratio >= 0.8")
    assert ok.ratio == pytest.approx(0.5 / 0.6)
    assert ok.verdict == "pass"
    assert MetricResult("x", 1.0, 0.0, False, "r").ratio == float("inf")
    assert MetricResult("x", 0.0, 0.0, False, "r").ratio == 1.0
    assert MetricResult("x", 0.1, 0.1, False, "r", informative=False).verdict == "n/a"
