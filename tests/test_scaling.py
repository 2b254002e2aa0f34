"""Catalogue-scale extraction: the extractor pickles, is stateless, and runs on Dask.

The pickling tests are fast and always run. The Dask tests start a two-process
``distributed.LocalCluster`` and need the optional extra (``pip install "covergan[dask]"``);
they are skipped without it.
"""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from covergan.cqt import (
    CQTConfig,
    CQTExtractor,
    ExtractionFailure,
    ExtractionResult,
)
from covergan.datasets import toy_covers
from covergan.errors import AudioLoadError, ExtractionError, ParameterError
from tests.signals import SR, tone

# -- shared data -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four short toy-cover recordings (two songs, two versions) written as WAV."""
    root = tmp_path_factory.mktemp("toy")
    return toy_covers(2, 2, seed=0, duration=2.0).write(root)


@pytest.fixture(scope="module")
def local_result(extractor: CQTExtractor, audio_files: list[Path]) -> ExtractionResult:
    """The reference: ``extract_many`` in this process."""
    result = extractor.extract_many(audio_files, n_jobs=1, progress=False)
    assert result.ok
    return result


def assert_identical(got: list[Any], want: list[Any]) -> None:
    """Same length, and every array equal bit for bit with the same dtype and shape."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, np.ndarray)
        assert g.dtype == w.dtype
        assert g.shape == w.shape
        assert g.tobytes() == w.tobytes()


# -- picklable and stateless -------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_config_pickles_to_an_equal_config(protocol: int) -> None:
    cfg = CQTConfig(bins_per_octave=36, n_bins=252, scale="db", pool=10)
    back = pickle.loads(pickle.dumps(cfg, protocol=protocol))
    assert back == cfg
    assert hash(back) == hash(cfg)
    assert back.digest() == cfg.digest()  # same cache keys on every worker


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_extractor_pickles_and_gives_identical_features(
    extractor: CQTExtractor, protocol: int
) -> None:
    y = tone(440.0, 1.0)
    back = pickle.loads(pickle.dumps(extractor, protocol=protocol))
    assert back == extractor
    assert back.config == extractor.config
    assert back(y, SR).tobytes() == extractor(y, SR).tobytes()


def test_custom_extractor_round_trips_through_pickle_and_deepcopy() -> None:
    ext = CQTExtractor(bins_per_octave=24, n_bins=168, scale="power", pool=4)
    y = tone(220.0, 0.5)
    for back in (pickle.loads(pickle.dumps(ext)), copy.deepcopy(ext)):
        assert back == ext
        assert back(y, SR).tobytes() == ext(y, SR).tobytes()


def test_extractor_state_is_only_its_config(extractor: CQTExtractor) -> None:
    assert vars(extractor) == {"config": extractor.config}
    assert isinstance(extractor.config, CQTConfig)
    # No hidden class-level caches either: a fresh extractor with the same config is equal.
    assert CQTExtractor(extractor.config) == extractor


def test_extraction_leaves_the_extractor_unchanged(
    extractor: CQTExtractor, audio_files: list[Path], tmp_path: Path
) -> None:
    before = pickle.dumps(extractor)
    extractor(tone(440.0, 0.5), SR)
    extractor.extract_file(audio_files[0])
    extractor.extract_many(audio_files[:2], cache_dir=tmp_path, progress=False)
    assert pickle.dumps(extractor) == before
    assert vars(extractor) == {"config": extractor.config}


def test_pickled_extractor_is_small(extractor: CQTExtractor) -> None:
    # Only the config travels to each task: no arrays, filters or librosa state.
    assert len(pickle.dumps(extractor)) < 2048


def test_bound_extract_file_pickles(extractor: CQTExtractor, audio_files: list[Path]) -> None:
    # What ``client.map(extractor.extract_file, paths)`` or ``ray.remote`` ships.
    fn = pickle.loads(pickle.dumps(extractor.extract_file))
    assert fn(audio_files[0]).tobytes() == extractor.extract_file(audio_files[0]).tobytes()


def test_extractor_pickles_with_cloudpickle(extractor: CQTExtractor) -> None:
    cloudpickle = pytest.importorskip("cloudpickle")  # what Dask and Ray use
    y = tone(330.0, 0.5)
    back = pickle.loads(cloudpickle.dumps(extractor))
    assert back == extractor
    assert back(y, SR).tobytes() == extractor(y, SR).tobytes()


def test_results_and_errors_survive_pickling(tmp_path: Path) -> None:
    # Results and exceptions travel back from workers by pickle.
    failure = ExtractionFailure(tmp_path / "a.wav", "AudioLoadError", "audio file not found")
    result = ExtractionResult(
        paths=[tmp_path / "a.wav", tmp_path / "b.wav"],
        features=[None, np.ones((84, 3), dtype=np.float32)],
        failures=[failure],
        n_cached=1,
    )
    back = pickle.loads(pickle.dumps(result))
    assert back.paths == result.paths
    assert back.failures == [failure]
    assert back.n_cached == 1
    assert back.features[0] is None
    assert back.features[1] is not None
    assert back.features[1].tobytes() == np.ones((84, 3), dtype=np.float32).tobytes()

    error = pickle.loads(pickle.dumps(ExtractionError("1 failed", [failure])))
    assert isinstance(error, ExtractionError)
    assert str(error) == "1 failed"
    assert error.failures == [failure]
    for exc in (AudioLoadError("audio file not found: x.wav"), ParameterError("sr=0 bad")):
        back_exc = pickle.loads(pickle.dumps(exc))
        assert type(back_exc) is type(exc)
        assert str(back_exc) == str(exc)


# -- Dask --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A two-process local Dask cluster, shared by the module's Dask tests."""
    distributed = pytest.importorskip("distributed")
    import dask

    scratch = str(tmp_path_factory.mktemp("dask"))
    with (
        dask.config.set({"temporary-directory": scratch}),  # not /tmp/dask-scratch-space
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,  # e.g. the nanny's "still alive ..., killing"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
def test_dask_joblib_backend_matches_local_run(
    dask_client: Any,
    extractor: CQTExtractor,
    audio_files: list[Path],
    local_result: ExtractionResult,
    tmp_path: Path,
) -> None:
    from distributed import get_task_stream

    with get_task_stream(dask_client) as stream, joblib.parallel_config(backend="dask"):
        result = extractor.extract_many(audio_files, n_jobs=-1, progress=False)
    assert len(stream.data) >= len(audio_files)  # the files really went to the cluster
    assert result.ok
    assert result.paths == local_result.paths
    assert_identical(result.features, local_result.features)

    # The content-hash cache works from the workers too: second run is all hits.
    with joblib.parallel_config(backend="dask"):
        cold = extractor.extract_many(audio_files, n_jobs=2, cache_dir=tmp_path, progress=False)
        warm = extractor.extract_many(audio_files, n_jobs=2, cache_dir=tmp_path, progress=False)
    assert (cold.n_cached, warm.n_cached) == (0, len(audio_files))
    assert len(list(tmp_path.glob("*.npy"))) == len(audio_files)
    assert_identical(cold.features, local_result.features)
    assert_identical(warm.features, local_result.features)


@pytest.mark.slow
def test_dask_client_map_matches_local_run(
    dask_client: Any,
    extractor: CQTExtractor,
    audio_files: list[Path],
    local_result: ExtractionResult,
) -> None:
    futures = dask_client.map(extractor.extract_file, audio_files, pure=False)
    assert_identical(dask_client.gather(futures), local_result.features)


@pytest.mark.slow
def test_dask_backend_reports_failures_per_file(
    dask_client: Any,
    extractor: CQTExtractor,
    audio_files: list[Path],
    local_result: ExtractionResult,
    tmp_path: Path,
) -> None:
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    paths = [audio_files[0], bad, audio_files[1]]
    with joblib.parallel_config(backend="dask"):
        result = extractor.extract_many(paths, n_jobs=2, progress=False, on_error="skip")
    assert [f.path for f in result.failures] == [bad]
    assert result.failures[0].error == "AudioLoadError"
    assert result.features[1] is None
    assert_identical(
        [result.features[0], result.features[2]],
        [local_result.features[0], local_result.features[1]],
    )
    # A worker's exception comes back as the same covergan error type.
    with pytest.raises(AudioLoadError, match="corrupt.wav"):
        dask_client.submit(extractor.extract_file, bad, pure=False).result()
