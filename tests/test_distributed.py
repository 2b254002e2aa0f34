"""Tests for data-parallel training under torch.distributed (covergan.gan, Augmenter.fit).

The multi-process test spawns two CPU ranks joined with gloo, as ``torchrun --nproc_per_node 2``
would, and skips where torch.distributed or gloo is missing. The NCCL variant needs two GPUs.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from covergan import batches as batches_module
from covergan import distributed
from covergan.augmenter import Augmenter
from covergan.data import CQTDataset
from covergan.errors import CoverGANWarning, DatasetError, ParameterError
from covergan.gan import (
    Callback,
    CheckpointCallback,
    ConditionalDCGAN,
    SampleSnapshotCallback,
    init_distributed,
    is_main_process,
    resolve_device,
)
from covergan.store import FeatureStore
from tests.test_augmenter import CFG, TINY_GAN, toy_features
from tests.test_gan import assert_same_state, full_state, tiny_config, tiny_data
from tests.test_references import TINY_VERSIONS, WINDOW, works

WORLD = 2
N_ITEMS = 16  # 2 ranks x batch 2 = 4 items a step: 4 steps are exactly one epoch
STEPS = 4

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="needs torch.distributed with the gloo backend",
)


class RecordingDataset(Dataset[tuple[Tensor, Tensor]]):
    """A TensorDataset that remembers which indices this process fetched."""

    def __init__(self, data: TensorDataset) -> None:
        self.data = data
        self.seen: list[int] = []

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        self.seen.append(int(i))
        x, y = self.data[i]
        return x, y


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, root: str, backend: str) -> None:
    """One rank: what a user's ``torchrun`` script does, plus a report for the test."""
    torch.set_num_threads(1)
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    out = Path(root)
    report: dict[str, Any] = {}
    assert init_distributed(backend) == (rank, world)
    try:
        device = resolve_device("auto")
        report["device"] = str(device)
        report["main"] = is_main_process()
        # 1. plain fit: different initial weights and seeds per rank must be reconciled
        torch.manual_seed(100 + rank)
        gan = ConditionalDCGAN(3, config=tiny_config(batch_size=2), device=device)
        data = RecordingDataset(tiny_data(n=N_ITEMS))
        ckpt_dir = out / f"ckpt-{rank}"  # rank 1 writing anything would show up here
        ckpt_dir.mkdir()
        snaps = SampleSnapshotCallback(2, [0, 1], path=ckpt_dir / "samples-{step}.pt")
        callbacks: list[Callback] = [
            CheckpointCallback(ckpt_dir / "model-{step}.pt", every=2),
            snaps,
        ]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            gan.fit(data, steps=STEPS, callbacks=callbacks, progress=True)
        report["bar"] = stderr.getvalue()
        report["seen"] = data.seen
        report["seed"] = gan.seed
        report["snapshots"] = len(snaps.snapshots)
        report["state"] = {k: v.detach().cpu().clone() for k, v in full_state(gan).items()}
        report["history"] = {k: list(v) for k, v in gan.history.items()}
        # 2. every loss term, several D steps, pretraining, on the same footing
        gp = ConditionalDCGAN(
            3,
            config=tiny_config(batch_size=2, loss="wgan-gp", lecam_weight=0.2, d_steps=2),
            device=device,
            seed=1,
        )
        gp.pretrain_autoencoder(tiny_data(n=N_ITEMS), steps=2, progress=False)
        gp.fit(tiny_data(n=N_ITEMS), steps=2, progress=False)
        report["gp_state"] = {k: v.detach().cpu().clone() for k, v in full_state(gp).items()}
        report["gp_history"] = (gp.history, gp.pretrain_history)
        report["lecam"] = gp._lecam
        # 3. DataLoaders: without a DistributedSampler fit warns
        plain = DataLoader(tiny_data(n=8), batch_size=2)
        sampler: DistributedSampler[Any] = DistributedSampler(tiny_data(n=8), seed=0)
        sharded = DataLoader(tiny_data(n=8), batch_size=2, sampler=sampler)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gan.fit(sharded, steps=1, progress=False)
            report["sharded_warnings"] = [str(w.message) for w in caught]
            gan.fit(plain, steps=1, progress=False)
            report["plain_warnings"] = [str(w.message) for w in caught]
        # 4. the Augmenter, with a random seed that the ranks must agree on
        feats, songs = toy_features()
        aug = Augmenter(
            model="gan",
            steps=3,
            pretrain_steps=1,
            seed=None,
            progress=False,
            gan=TINY_GAN,
            window=16,
        )
        aug.fit(CQTDataset.from_arrays(feats, songs, config=CFG))
        if is_main_process():
            aug.save(out / "augmenter.pt")
        report["aug_seed"] = aug.seed_
        report["aug_state"] = {k: v.detach().cpu().clone() for k, v in full_state(aug.gan_).items()}
        # 5. the default version model, trained from a feature store on disk
        versions = store_augmenter().fit(CQTDataset.from_folder(out / "store"))
        report["versions_state"] = version_state(versions)
        report["versions_history"] = dict(versions.versions_.history)
    finally:
        dist.destroy_process_group()
    torch.save(report, out / f"report-{rank}.pt")


def store_augmenter() -> Augmenter:
    return Augmenter(
        steps=3, pretrain_steps=2, seed=5, progress=False, window=WINDOW, versions=TINY_VERSIONS
    )


def version_state(aug: Augmenter) -> dict[str, Tensor]:
    model = aug.versions_
    modules = {"g": model.generator, "d": model.discriminator, "ema": model.generator_ema}
    return {
        f"{name}.{k}": v.detach().cpu().clone()
        for name, m in modules.items()
        for k, v in m.state_dict().items()
    }


def _write_store(root: Path) -> None:
    data = works((3, 2, 2, 1))
    store = FeatureStore.create(root, config=data.config)
    for x, song, name in zip(data.features, data.song_ids, data.names, strict=True):
        store.add(song, name, x)


def _spawn(root: Path, backend: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Run ``_worker`` on ``WORLD`` spawned ranks; return their reports."""
    _write_store(root / "store")
    # forked ranks inherit torch and covergan already imported: seconds faster than spawn
    ConditionalDCGAN(3, config=tiny_config(), device="cpu")  # imports what Adam pulls in
    method = "fork" if "fork" in mp.get_all_start_methods() and backend == "gloo" else "spawn"
    port = _free_port()
    ctx = mp.start_processes(
        _worker,
        args=(WORLD, port, str(root), backend),
        nprocs=WORLD,
        join=False,
        start_method=method,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} ranks did not finish within {timeout:.0f} s")
    finally:
        for proc in ctx.processes:
            if proc.is_alive():
                proc.terminate()
    return [torch.load(root / f"report-{r}.pt", weights_only=False) for r in range(WORLD)]


def _assert_equal_states(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def gloo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("gloo")
    return root, _spawn(root, "gloo")


# ----------------------------------------------------------------------------- two ranks


@needs_gloo
def test_ranks_end_with_identical_weights_and_history(
    gloo_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, (r0, r1) = gloo_run
    assert (r0["main"], r1["main"]) == (True, False)
    assert r0["device"] == r1["device"] == "cpu"
    assert r0["seed"] == r1["seed"]  # rank 0's random training seed wins
    _assert_equal_states(r0["state"], r1["state"])
    assert r0["history"] == r1["history"] and len(r0["history"]["loss_d"]) == STEPS
    # wgan-gp (double backward), LeCam anchors, two D steps and autoencoder pretraining
    _assert_equal_states(r0["gp_state"], r1["gp_state"])
    assert r0["gp_history"] == r1["gp_history"]
    assert torch.equal(r0["lecam"], r1["lecam"])
    assert r0["aug_seed"] == r1["aug_seed"]
    _assert_equal_states(r0["aug_state"], r1["aug_state"])


@needs_gloo
def test_each_rank_trains_on_a_disjoint_shard(
    gloo_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, (r0, r1) = gloo_run
    assert len(r0["seen"]) == len(r1["seen"]) == STEPS * 2
    assert not set(r0["seen"]) & set(r1["seen"])
    assert sorted(r0["seen"] + r1["seen"]) == list(range(N_ITEMS))  # one epoch, all of it


@needs_gloo
def test_only_rank_zero_writes_and_its_checkpoint_loads_in_one_process(
    gloo_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    root, (r0, r1) = gloo_run
    names = ["model-2.pt", "model-4.pt", "samples-2.pt", "samples-4.pt"]
    assert sorted(p.name for p in (root / "ckpt-0").iterdir()) == names
    assert list((root / "ckpt-1").iterdir()) == []
    assert (r0["snapshots"], r1["snapshots"]) == (2, 0)
    assert "covergan" in r0["bar"] and r1["bar"] == ""  # the progress bar is rank 0's
    gan = ConditionalDCGAN.load(root / "ckpt-0" / "model-4.pt", device="cpu")
    assert gan.step == STEPS
    _assert_equal_states(full_state(gan), r0["state"])
    gan.fit(tiny_data(n=N_ITEMS), steps=1, batch_size=2, progress=False)  # resumes alone
    assert gan.step == STEPS + 1
    assert Augmenter.load(root / "augmenter.pt").gan_.step == 3


@needs_gloo
def test_the_version_model_trains_data_parallel_from_a_store(
    gloo_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    root, (r0, r1) = gloo_run
    _assert_equal_states(r0["versions_state"], r1["versions_state"])
    assert r0["versions_history"] == r1["versions_history"]
    # each rank drew its own pairs: the run is not what one process makes of the same seed
    alone = store_augmenter().fit(CQTDataset.from_folder(root / "store"))
    assert alone.versions_.history["loss_d"] != r0["versions_history"]["loss_d"]
    assert len(r0["versions_history"]["loss_d"]) == 3


@needs_gloo
def test_a_dataloader_without_a_distributed_sampler_warns(
    gloo_run: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, (r0, _) = gloo_run
    assert r0["sharded_warnings"] == []
    assert any("DistributedSampler" in m for m in r0["plain_warnings"])


@pytest.mark.cuda
@pytest.mark.skipif(
    not (torch.cuda.device_count() >= 2 and dist.is_available() and dist.is_nccl_available()),
    reason="needs two CUDA devices and NCCL",
)
def test_two_gpus_under_nccl(tmp_path: Path) -> None:
    r0, r1 = _spawn(tmp_path, "nccl", timeout=300.0)
    assert (r0["device"], r1["device"]) == ("cuda:0", "cuda:1")
    _assert_equal_states(r0["state"], r1["state"])
    assert not set(r0["seen"]) & set(r1["seen"])
    assert list((tmp_path / "ckpt-1").iterdir()) == []
    ConditionalDCGAN.load(tmp_path / "ckpt-0" / "model-4.pt", device="cpu")


# ----------------------------------------------------------------------------- one process


def test_shards_partition_the_single_process_batches() -> None:
    data = tiny_data(n=12)
    whole = list(batches_module.dataset_batches(data, 12, 4, 5, 0, 6, 2))  # 3 a epoch, 2 epochs
    shards = [list(batches_module.dataset_batches(data, 12, 2, 5, 0, 6, 2, r, 2)) for r in (0, 1)]
    for b, batch in enumerate(whole):
        joined = torch.cat([shards[0][b][0], shards[1][b][0]])
        assert torch.equal(joined, batch[0])


def test_without_a_process_group_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed() == (0, 1)
    assert not dist.is_initialized() and is_main_process()


def test_init_distributed_needs_torch_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(dist, "is_available", lambda: False)
    with pytest.raises(ParameterError, match="torch.distributed"):
        init_distributed()


@needs_gloo
def test_a_one_rank_group_trains_exactly_like_one_process(tmp_path: Path) -> None:
    data = tiny_data(n=12)
    alone = ConditionalDCGAN(3, config=tiny_config(), device="cpu", seed=0)
    alone.fit(data, steps=2, seed=2, progress=False)
    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    try:
        grouped = ConditionalDCGAN(3, config=tiny_config(), device="cpu", seed=0)
        grouped.fit(data, steps=2, seed=2, progress=False)
    finally:
        dist.destroy_process_group()
    assert_same_state(alone, grouped)
    assert alone.history == grouped.history


def test_non_main_ranks_skip_the_writing_callbacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distributed, "_rank_world", lambda: (1, 2))
    assert not is_main_process()
    gan = ConditionalDCGAN(3, config=tiny_config(), device="cpu", seed=0)
    snaps = SampleSnapshotCallback(1, [0], path=tmp_path / "s-{step}.pt")
    for callback in (CheckpointCallback(tmp_path / "m-{step}.pt", every=1), snaps):
        callback.on_step_end(gan, 1, {})
    assert list(tmp_path.iterdir()) == [] and snaps.snapshots == []


def test_the_global_batch_must_fit_in_the_dataset_and_loaders_must_shard() -> None:
    assert batches_module.batches_per_epoch(tiny_data(n=17), 4, world=2) == 2
    with pytest.raises(DatasetError, match=r"batch_size=4 x 2 ranks"):
        batches_module.batches_per_epoch(tiny_data(n=7), 4, world=2)
    with pytest.warns(CoverGANWarning, match="DistributedSampler"):
        batches_module.batches_per_epoch(DataLoader(tiny_data(n=8), batch_size=4), 4, world=2)
