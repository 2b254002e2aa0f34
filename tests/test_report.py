"""The quality report's song cap and its refusals (the report runs end to end in test_cli)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from covergan.data import CQTDataset, split_recordings
from covergan.errors import DatasetError, ParameterError
from covergan.report import MAX_REPORT_RECORDINGS, _distinct, _evaluated_songs, quality_report
from tests.test_references import make, works


def catalogue(n_songs: int, per_song: int) -> CQTDataset:
    feats = [np.ones((6, 8), dtype=np.float32)] * (n_songs * per_song)
    return CQTDataset.from_arrays(feats, [f"s{i}" for i in range(n_songs) for _ in range(per_song)])


def test_under_the_cap_everything_is_evaluated() -> None:
    train, held = catalogue(10, 3), catalogue(6, 1)
    songs, real, heldout = _evaluated_songs(train, held, held.index.ids, 10, seed=0)
    assert songs == list(held.index.ids) and real is train and heldout is held
    assert _evaluated_songs(train, held, held.index.ids, None, seed=0)[1] is train


def test_over_the_cap_a_seeded_subset_and_distractors_fill_it() -> None:
    train, held = catalogue(40, 3), catalogue(20, 1)
    songs, real, heldout = _evaluated_songs(train, held, held.index.ids, 8, seed=0)
    assert len(songs) == 8 and set(songs) <= set(held.index.ids)
    assert songs == sorted(songs, key=list(held.index.ids).index)  # in the held-out order
    assert set(heldout.song_ids) == set(songs) and len(heldout) == 8
    # the evaluated songs' training recordings, all of them, and nothing beyond the cap
    assert set(real.song_ids) == set(songs) and len(real) == 8 * 3
    assert _evaluated_songs(train, held, held.index.ids, 8, seed=0)[0] == songs
    assert _evaluated_songs(train, held, held.index.ids, 8, seed=1)[0] != songs


def test_room_left_by_few_evaluated_songs_goes_to_distractors() -> None:
    train, held = catalogue(40, 2), catalogue(3, 1)
    songs, real, heldout = _evaluated_songs(train, held, held.index.ids, 10, seed=0)
    assert songs == list(held.index.ids) and heldout is held
    assert real.n_songs == 10 and set(songs) <= set(real.song_ids) and len(real) == 20


def test_a_song_with_many_recordings_gives_windows_of_a_seeded_few() -> None:
    many = MAX_REPORT_RECORDINGS + 5
    train, held = catalogue(3, many), catalogue(3, many)
    songs, real, heldout = _evaluated_songs(train, held, held.index.ids, 10, seed=0)
    assert songs == list(held.index.ids)
    for part in (real, heldout):
        assert part.class_counts() == dict.fromkeys(songs, MAX_REPORT_RECORDINGS)
    assert real.names != _evaluated_songs(train, held, songs, 10, seed=1)[1].names
    # no cap: every recording, the report before the cap
    assert _evaluated_songs(train, held, songs, None, seed=0)[1] is train


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_max_songs_is_refused_before_anything_is_written(bad: object, tmp_path: Path) -> None:
    train, held = catalogue(2, 2), catalogue(2, 1)
    with pytest.raises(ParameterError, match="max_songs"):
        quality_report(None, train, held, tmp_path / "r", max_songs=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "embed",
    [
        lambda x: torch.zeros(x.shape[0]),  # one number per window, not a vector
        lambda x: torch.zeros(x.shape[0] + 1, 4),  # a row too many
        lambda x: torch.full((x.shape[0], 4), float("nan")),
    ],
    ids=["1-d", "rows", "nan"],
)
def test_an_embedding_of_the_wrong_shape_is_refused_before_anything_is_written(
    embed: object, tmp_path: Path
) -> None:
    data = works((3, 3, 3, 2), frames=40)
    train, held = split_recordings(data, holdout=1, min_recordings=3, seed=0)
    aug = make(steps=1, pretrain_steps=0).fit(train)
    with pytest.raises(
        ParameterError, match=r"feature function (must return a \(b, d\)|returned NaN)"
    ):
        quality_report(aug, train, held, tmp_path / "r", embed=embed)  # type: ignore[arg-type]
    assert not (tmp_path / "r").exists()


def test_an_output_path_that_is_a_file_is_refused_before_the_work(tmp_path: Path) -> None:
    train, held = catalogue(2, 2), catalogue(2, 1)
    (tmp_path / "r").write_text("keep me")

    class Fitted:  # refused before anything of the augmenter is used beyond its songs
        songs_ = train.index

    with pytest.raises(ParameterError, match="is not a folder"):
        quality_report(Fitted(), train, held, tmp_path / "r")  # type: ignore[arg-type]
    assert (tmp_path / "r").read_text() == "keep me"


def with_short_song(data: CQTDataset, train_frames: int) -> tuple[CQTDataset, CQTDataset]:
    """``data``'s split, plus a song whose training recordings have ``train_frames`` frames
    and whose held-out recording is long."""
    train, held = split_recordings(data, holdout=1, min_recordings=3, seed=0)
    short = [np.full((train.n_bins, train_frames), 0.5, dtype=np.float32)] * 2
    long = [np.full((train.n_bins, 40), 0.5, dtype=np.float32)]
    return (
        CQTDataset.from_arrays(
            [*train.features, *short], [*train.song_ids, "short", "short"], config=train.config
        ),
        CQTDataset.from_arrays(
            [*held.features, *long], [*held.song_ids, "short"], config=held.config
        ),
    )


@pytest.mark.filterwarnings("ignore:.*n <= d:covergan.errors.CoverGANWarning")
def test_held_out_songs_without_reference_windows_are_left_out_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, held = with_short_song(works((3, 3, 3, 2), frames=40), train_frames=3)
    aug = make(steps=1, pretrain_steps=0).fit(train)
    assert aug.references_ is not None and "short" not in aug.references_
    report = quality_report(aug, train, held, tmp_path / "r", embed=lambda x: x.mean(-1).flatten(1))
    assert "short" not in [row.song for row in report.per_song.rows]
    left_out = "left out for want of reference windows (every training recording shorter"
    page = report.markdown.read_text()
    assert f"{left_out} than a quarter window): 1" in page
    comb = report.artefacts["control: comb in the 4 lowest bins"].describe()
    assert comb.startswith("0 flicker over") and f"| {comb} | FAIL |" in page
    assert "not evaluated: 1 of 4: ['short']" in caplog.text


def test_held_out_songs_none_of_which_has_reference_windows_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import covergan.report

    train, _ = with_short_song(works((3, 3, 3, 2), frames=40), train_frames=3)
    aug = make(steps=1, pretrain_steps=0).fit(train)

    def work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report started working")

    monkeypatch.setattr(covergan.report, "model_space_windows", work)
    held = CQTDataset.from_arrays(
        [np.full((train.n_bins, 40), 0.5, dtype=np.float32)], ["short"], config=train.config
    )
    with pytest.raises(DatasetError, match="none of the 1 held-out songs has reference windows"):
        quality_report(aug, train, held, tmp_path / "r", embed=lambda x: x.mean(-1).flatten(1))
    assert not (tmp_path / "r").exists()


def test_the_grid_shows_each_distinct_real_window_once() -> None:
    a, b = torch.zeros(1, 2, 3), torch.ones(1, 2, 3)
    x = torch.cat([a, b, a, b, 2 * b, a])  # crops of short recordings repeat
    assert torch.equal(_distinct(x), torch.cat([a, b, 2 * b]))
