"""Tests for covergan.gan: ConditionalDCGAN configuration, training, sampling and checkpoints."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from covergan.errors import CheckpointError, CoverGANWarning, DatasetError, ParameterError
from covergan.gan import (
    CHECKPOINT_FORMAT_VERSION,
    CheckpointCallback,
    ConditionalDCGAN,
    GANConfig,
    SampleSnapshotCallback,
    resolve_device,
)

SIZE = (16, 24)


def tiny_config(**overrides: Any) -> GANConfig:
    base: dict[str, Any] = {
        "image_size": SIZE,
        "z_dim": 16,
        "g_width": 8,
        "d_width": 8,
        "max_width": 32,
        "batch_size": 4,
    }
    return GANConfig(**{**base, **overrides})


def tiny_data(n: int = 24, n_classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, *SIZE, generator=g) * 2 - 1
    y = torch.arange(n) % n_classes
    return TensorDataset(x, y)


def tiny_gan(n_classes: int = 3, seed: int = 0, **overrides: Any) -> ConditionalDCGAN:
    return ConditionalDCGAN(n_classes, config=tiny_config(**overrides), device="cpu", seed=seed)


def full_state(gan: ConditionalDCGAN) -> dict[str, Tensor]:
    """Every tensor of the model and its optimisers, flattened to one dict."""
    out: dict[str, Tensor] = {}
    for prefix, sd in (
        ("g", gan.generator.state_dict()),
        ("d", gan.discriminator.state_dict()),
        ("ema", gan.generator_ema.state_dict() if gan.generator_ema is not None else {}),
    ):
        out.update({f"{prefix}.{k}": v for k, v in sd.items()})
    for prefix, opt in (("opt_g", gan.opt_g), ("opt_d", gan.opt_d)):
        for idx, state in opt.state_dict()["state"].items():
            out.update(
                {f"{prefix}.{idx}.{k}": v for k, v in state.items() if isinstance(v, Tensor)}
            )
    return out


def assert_same_state(a: ConditionalDCGAN, b: ConditionalDCGAN) -> None:
    sa, sb = full_state(a), full_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ----------------------------------------------------------------------------- config


def test_default_config_values() -> None:
    cfg = GANConfig()
    assert cfg.image_size == (84, 200)
    assert cfg.loss == "hinge"
    assert cfg.ema_decay is not None


def test_thesis_preset_config_is_the_thesis_recipe() -> None:
    cfg = GANConfig.for_preset("thesis")
    assert (cfg.loss, cfg.lr_g, cfg.lr_d, cfg.batch_size, cfg.z_dim) == (
        "bce",
        0.002,
        0.002,
        10,
        100,
    )
    assert cfg.augment == "" and cfg.ema_decay is None
    assert GANConfig.for_preset("thesis", lr_g=1e-3).lr_g == 1e-3


def test_config_round_trips_through_a_plain_dict() -> None:
    cfg = tiny_config(loss="wgan-gp", betas=(0.5, 0.9), ema_decay=None)
    data = cfg.to_dict()
    assert all(isinstance(v, (int, float, str, bool, list, type(None))) for v in data.values())
    assert GANConfig.from_dict(data) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": (84,)}, "image_size"),
        ({"image_size": (1, 200)}, "image_size"),
        ({"z_dim": 0}, "z_dim"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"d_steps": True}, "d_steps"),
        ({"n_stages": 0}, "n_stages"),
        ({"n_stages": 12}, "n_stages"),
        ({"loss": "wgan"}, "loss"),
        ({"lr_g": 0.0}, "lr_g"),
        ({"lr_d": float("inf")}, "lr_d"),
        ({"betas": (0.5, 1.0)}, "betas"),
        ({"betas": (0.5,)}, "betas"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"lecam_weight": -0.1}, "lecam_weight"),
        ({"lecam_decay": 1.0}, "lecam_decay"),
        ({"augment": "translation,colour"}, "colour"),
        ({"augment_strength": -1.0}, "augment_strength"),
        ({"augment_p": 2.0}, "p="),
        ({"amp": "yes"}, "amp"),
    ],
)
def test_invalid_config_raises(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        GANConfig(**kwargs)


def test_unknown_config_fields_raise() -> None:
    with pytest.raises(ParameterError, match="unknown"):
        GANConfig.for_preset("default", learning_rate=1.0)
    with pytest.raises(ParameterError, match="unknown"):
        GANConfig.from_dict({"nope": 1})


# ----------------------------------------------------------------------------- construction


def test_construction_seed_fixes_the_weights_without_touching_global_rng() -> None:
    state = torch.random.get_rng_state()
    a, b = tiny_gan(seed=1), tiny_gan(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert_same_state(a, b)
    c = tiny_gan(seed=2)
    assert not torch.equal(a.generator.fc.weight, c.generator.fc.weight)


def test_thesis_preset_builds_the_thesis_modules() -> None:
    gan = ConditionalDCGAN(0, preset="thesis", device="cpu", seed=0)
    assert sum(p.numel() for p in gan.generator.parameters()) == 6_030_913
    assert sum(p.numel() for p in gan.discriminator.parameters()) == 5_350_209
    assert gan.generator_ema is None
    assert gan.opt_g.param_groups[0]["lr"] == 0.002


def test_thesis_preset_rejects_other_sizes() -> None:
    with pytest.raises(ParameterError, match="84, 200"):
        ConditionalDCGAN(
            3, preset="thesis", config=GANConfig.for_preset("thesis", image_size=(84, 100))
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_classes": -1}, "n_classes"),
        ({"n_classes": 2.0}, "n_classes"),
        ({"preset": "stylegan"}, "preset"),
        ({"classes": ["a", "b"]}, "classes"),
        ({"classes": ["a", "a", "b"]}, "duplicate"),
        ({"classes": "abc"}, "single string"),
        ({"seed": -1}, "seed"),
        ({"device": "nonsense"}, "device"),
        ({"config": {"z_dim": 3}}, "GANConfig"),
    ],
)
def test_invalid_constructor_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"n_classes": 3, "config": tiny_config(), "device": "cpu", **kwargs}
    n = args.pop("n_classes")
    with pytest.raises(ParameterError, match=match):
        ConditionalDCGAN(n, **args)


class _FlatGenerator(nn.Module):
    """Generator of arbitrary output size; ``value=None`` returns ``z / 10`` as the image."""

    def __init__(self, shape: tuple[int, int], z_dim: int | None = None) -> None:
        super().__init__()
        self.shape = shape
        self.z_dim = z_dim if z_dim is not None else shape[0] * shape[1]
        self.lin = nn.Linear(self.z_dim, shape[0] * shape[1])
        with torch.no_grad():
            if self.z_dim == shape[0] * shape[1]:
                self.lin.weight.copy_(torch.eye(self.z_dim) / 10)
                self.lin.bias.zero_()

    def forward(self, z: Tensor, labels: Tensor | None) -> Tensor:
        return self.lin(z).view(z.shape[0], 1, *self.shape)


class _LinearDiscriminator(nn.Module):
    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__()
        self.lin = nn.Linear(shape[0] * shape[1], 1)

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        return self.lin(x.flatten(1)).squeeze(1)


def test_dry_run_reports_a_generator_of_the_wrong_size() -> None:
    with pytest.raises(ParameterError, match=r"produces \(2, 1, 16, 20\).*image_size=\(16, 24\)"):
        ConditionalDCGAN(3, generator=_FlatGenerator((16, 20)), config=tiny_config(), device="cpu")


def test_dry_run_reports_a_discriminator_that_does_not_fit() -> None:
    with pytest.raises(ParameterError, match="discriminator cannot take"):
        ConditionalDCGAN(
            3, discriminator=_LinearDiscriminator((16, 20)), config=tiny_config(), device="cpu"
        )


def test_custom_generator_needs_z_dim() -> None:
    g = _FlatGenerator(SIZE)
    del g.z_dim
    with pytest.raises(ParameterError, match="z_dim"):
        ConditionalDCGAN(3, generator=g, config=tiny_config(), device="cpu")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ParameterError, match="not a valid torch device"):
        resolve_device("tpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ParameterError, match=rf"device='cuda:{count}', but"):
        resolve_device(f"cuda:{count}")  # one past the last GPU, or any GPU on a CPU machine
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        with pytest.raises(ParameterError, match="MPS is not available"):
            resolve_device("mps")
    if not torch.cuda.is_available():
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            assert resolve_device("auto") == torch.device("cpu")


# ----------------------------------------------------------------------------- training


def test_fit_records_history_and_counts_steps() -> None:
    gan = tiny_gan()
    assert gan.fit(tiny_data(), steps=3, progress=False) is gan
    assert gan.step == 3
    assert set(gan.history) == {"loss_d", "loss_g", "d_real", "d_fake"}
    assert all(len(v) == 3 and all(np.isfinite(v)) for v in gan.history.values())
    gan.fit(tiny_data(), steps=2, progress=False)
    assert gan.step == 5 and len(gan.history["loss_d"]) == 5


def test_epochs_give_the_matching_number_of_steps() -> None:
    gan = tiny_gan(d_steps=2)
    gan.fit(tiny_data(n=24), epochs=1, progress=False)  # 6 batches of 4, 2 per step
    assert gan.step == 3


def test_same_seed_gives_identical_weights() -> None:
    a = tiny_gan(seed=0).fit(tiny_data(), steps=4, seed=7, progress=False)
    b = tiny_gan(seed=0).fit(tiny_data(), steps=4, seed=7, progress=False)
    assert_same_state(a, b)
    assert a.history == b.history
    c = tiny_gan(seed=0).fit(tiny_data(), steps=4, seed=8, progress=False)
    assert not torch.equal(a.generator.fc.weight, c.generator.fc.weight)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"loss": "bce", "lecam_weight": 0.3},
        {"loss": "wgan-gp", "d_steps": 2},
    ],
    ids=["hinge", "bce-lecam", "wgan-gp-dsteps"],
)
def test_resume_is_exact(tmp_path: Path, overrides: dict[str, Any]) -> None:
    data = tiny_data(n=12)  # 3 batches per epoch, so the runs cross epoch boundaries
    straight = tiny_gan(**overrides).fit(data, steps=6, seed=3, progress=False)
    first = tiny_gan(**overrides).fit(data, steps=3, seed=3, progress=False)
    first.save(tmp_path / "half.pt")
    resumed = ConditionalDCGAN.load(tmp_path / "half.pt", device="cpu")
    resumed.fit(data, steps=3, progress=False)
    assert resumed.step == straight.step == 6
    assert_same_state(straight, resumed)
    assert resumed.history == straight.history


def test_loss_variants_log_their_terms() -> None:
    gan = tiny_gan(loss="wgan-gp", lecam_weight=0.1)
    gan.fit(tiny_data(), steps=2, progress=False)
    assert {"gp", "lecam"} <= set(gan.history)
    assert all(np.isfinite(gan.history["gp"]))


def test_fit_accepts_a_dataloader() -> None:
    loader = DataLoader(tiny_data(n=8), batch_size=4, shuffle=False)
    gan = tiny_gan().fit(loader, steps=5, progress=False)  # cycles past the end
    assert gan.step == 5


def test_unconditional_gan_trains_on_bare_tensors_and_ignores_labels() -> None:
    x = tiny_data().tensors[0]
    gan = tiny_gan(n_classes=0).fit(TensorDataset(x), steps=2, progress=False)
    gan.fit(tiny_data(), steps=1, progress=False)
    samples = gan.generate(n=5, generator=0)
    assert samples.shape == (5, 1, *SIZE)


def test_fit_calls_set_epoch_on_datasets_with_random_crops() -> None:
    epochs: list[int] = []

    class Cropping(TensorDataset):
        def set_epoch(self, epoch: int) -> None:
            epochs.append(epoch)

    x, y = tiny_data(n=8).tensors
    tiny_gan().fit(Cropping(x, y), steps=5, progress=False)  # 2 batches per epoch
    assert epochs == [0, 1, 2]


def test_out_of_range_inputs_warn() -> None:
    x, y = tiny_data().tensors
    with pytest.warns(CoverGANWarning, match="CQTNormalizer"):
        tiny_gan().fit(TensorDataset(x * 5, y), steps=1, progress=False)


def test_labels_out_of_range_raise() -> None:
    x, y = tiny_data().tensors
    with pytest.raises(
        ParameterError, match=r"labels must be in \[0, 2\] for n_classes=3, got values in"
    ):
        tiny_gan(n_classes=3).fit(TensorDataset(x, y * 2 + 1), steps=1, progress=False)


def test_conditional_model_needs_labels() -> None:
    with pytest.raises(ParameterError, match="label"):
        tiny_gan().fit(TensorDataset(tiny_data().tensors[0]), steps=1, progress=False)


def test_wrong_sample_shape_raises() -> None:
    x = torch.zeros(8, 1, 16, 20)
    with pytest.raises(ParameterError, match=r"\(1, 16, 24\).*\(4, 1, 16, 20\)"):
        tiny_gan().fit(TensorDataset(x, torch.zeros(8, dtype=torch.long)), steps=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"steps": 1, "epochs": 1}, "exactly one"),
        ({"steps": -1}, "steps"),
        ({"epochs": 0}, "epochs"),
        ({"steps": 1, "batch_size": 0}, "batch_size"),
        ({"steps": 1, "seed": -2}, "seed"),
    ],
)
def test_invalid_fit_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        tiny_gan().fit(tiny_data(), progress=False, **kwargs)


def test_fit_rejects_non_datasets_and_tiny_datasets() -> None:
    with pytest.raises(ParameterError, match="Dataset or DataLoader"):
        tiny_gan().fit([1, 2, 3], steps=1, progress=False)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="fewer than batch_size=4"):
        tiny_gan().fit(tiny_data(n=3), steps=1, progress=False)


def test_callbacks(tmp_path: Path) -> None:
    snaps = SampleSnapshotCallback(2, [0, 1, 2])
    ckpt = CheckpointCallback(tmp_path / "ckpt-{step}.pt", every=3)
    seen: list[int] = []

    class Recorder:
        def on_step_end(self, gan: ConditionalDCGAN, step: int, logs: dict[str, float]) -> None:
            seen.append(step)
            assert "loss_d" in logs

    tiny_gan().fit(tiny_data(), steps=6, callbacks=[snaps, ckpt, Recorder()], progress=False)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in snaps.snapshots] == [2, 4, 6]
    assert snaps.snapshots[0][1].shape == (3, 1, *SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-3.pt", "ckpt-6.pt"]
    assert ConditionalDCGAN.load(tmp_path / "ckpt-3.pt", device="cpu").step == 3


def test_callback_arguments_are_validated() -> None:
    with pytest.raises(ParameterError, match="every"):
        CheckpointCallback("x.pt", every=0)
    with pytest.raises(ParameterError, match="every"):
        SampleSnapshotCallback(0, [0])


def test_ema_ramp_tracks_the_generator_early() -> None:
    """With the ramp, the EMA after one step is 0.1 * init + 0.9 * G (decay (1+0)/(10+0))."""
    gan = tiny_gan()
    init = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    gan.fit(tiny_data(), steps=1, progress=False)
    g, ema = gan.generator.state_dict(), cast_ema(gan).state_dict()
    key = "fc.weight"
    assert torch.allclose(ema[key], 0.1 * init[key] + 0.9 * g[key], atol=1e-6)
    for name, buf in gan.generator.named_buffers():  # batch-norm statistics are copied
        assert torch.equal(ema[name], buf)


def cast_ema(gan: ConditionalDCGAN) -> nn.Module:
    assert gan.generator_ema is not None
    return gan.generator_ema


def test_thesis_preset_trains_one_step_at_84x200() -> None:
    gan = ConditionalDCGAN(2, preset="thesis", device="cpu", seed=0)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(4, 1, 84, 200, generator=g) * 2 - 1, torch.tensor([0, 1, 0, 1]))
    before = gan.generator.net[0].weight.clone()
    gan.fit(data, steps=1, batch_size=2, progress=False)
    assert gan.step == 1 and np.isfinite(gan.history["loss_d"][0])
    assert not torch.equal(before, gan.generator.net[0].weight)
    assert gan.generate([0, 1], generator=0).shape == (2, 1, 84, 200)


# ----------------------------------------------------------------------------- generation


def test_generate_shape_range_determinism_and_batching() -> None:
    gan = tiny_gan().fit(tiny_data(), steps=2, progress=False)
    labels = [0, 1, 2, 2, 1]
    a = gan.generate(labels, generator=5)
    assert a.shape == (5, 1, *SIZE) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert a.min() >= -1 and a.max() <= 1
    # conv kernels may block differently per batch size: equal up to float rounding
    assert torch.allclose(
        a, gan.generate(torch.tensor(labels), generator=5, batch_size=2), atol=1e-6
    )
    assert torch.equal(a, gan.generate(labels, generator=5))
    assert not torch.equal(a, gan.generate(labels, generator=6))
    assert not a.requires_grad
    assert gan.generator.training  # restored


def test_generate_uses_the_ema_weights() -> None:
    gan = tiny_gan().fit(tiny_data(), steps=3, progress=False)
    ema = gan.generate([0, 1], generator=0)
    raw = gan.generate([0, 1], generator=0, use_ema=False)
    assert not torch.allclose(ema, raw)
    ema_module = cast_ema(gan)
    z = torch.randn(2, gan.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ema, ema_module(z, torch.tensor([0, 1])), atol=1e-6)


def test_truncation_bounds_the_noise() -> None:
    gan = ConditionalDCGAN(0, generator=_FlatGenerator(SIZE), config=tiny_config(), device="cpu")
    z = gan.generate(n=50, generator=0, truncation=0.5) * 10  # this generator outputs z / 10
    assert z.abs().max() <= 0.5 + 1e-5
    assert z.std() > 0.2  # still random
    assert gan.generate(n=50, generator=0).mul(10).abs().max() > 2


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((), {}, "needs labels"),
        (([0, 3],), {}, "labels must be in"),
        (([0.5],), {}, "integer class indices"),
        (([0, 1],), {"n": 3}, "does not match"),
        (([0],), {"truncation": 0.0}, "truncation"),
        (([0],), {"batch_size": 0}, "batch_size"),
        (([0],), {"generator": "seed"}, "generator"),
    ],
)
def test_invalid_generate_arguments_raise(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        tiny_gan().generate(*args, **kwargs)


def test_unconditional_generate_takes_n() -> None:
    gan = tiny_gan(n_classes=0)
    with pytest.raises(ParameterError, match="n="):
        gan.generate([0, 1])
    with pytest.raises(ParameterError, match="n="):
        gan.generate()


# ----------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path: Path) -> None:
    gan = ConditionalDCGAN(
        3, config=tiny_config(), classes=["bwv1", 7, "bwv3"], device="cpu", seed=0
    )
    gan.fit(tiny_data(), steps=2, progress=False)
    gan.save(tmp_path / "m.pt")
    back = ConditionalDCGAN.load(tmp_path / "m.pt", n_classes=3, device="cpu")
    assert back.classes == ["bwv1", 7, "bwv3"]
    assert back.config == gan.config and back.step == 2 and back.seed == gan.seed
    assert_same_state(gan, back)
    assert torch.equal(back.generate([0, 2], generator=1), gan.generate([0, 2], generator=1))
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    assert ckpt["format"] == "covergan.gan" and ckpt["format_version"] == 1
    assert isinstance(ckpt["covergan_version"], str)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


def test_thesis_checkpoint_round_trip(tmp_path: Path) -> None:
    gan = ConditionalDCGAN(0, preset="thesis", device="cpu", seed=0)
    gan.save(tmp_path / "t.pt")
    back = ConditionalDCGAN.load(tmp_path / "t.pt", device="cpu")
    assert back.preset == "thesis" and back.generator_ema is None
    assert_same_state(gan, back)


def test_custom_modules_must_be_passed_back(tmp_path: Path) -> None:
    gan = ConditionalDCGAN(
        2, discriminator=_LinearDiscriminator(SIZE), config=tiny_config(), device="cpu"
    )
    gan.save(tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="discriminator="):
        ConditionalDCGAN.load(tmp_path / "c.pt", device="cpu")
    back = ConditionalDCGAN.load(
        tmp_path / "c.pt", discriminator=_LinearDiscriminator(SIZE), device="cpu"
    )
    assert torch.equal(back.discriminator.lin.weight, gan.discriminator.lin.weight)
    with pytest.raises(CheckpointError, match="do not fit"):
        ConditionalDCGAN.load(tmp_path / "c.pt", discriminator=_WiderDiscriminator(), device="cpu")


def test_a_gan_pickles_through_its_state() -> None:
    """As DataLoader workers under the spawn start method need: the spectral-norm layers are
    parametrized modules, which torch pickles only through a state dict."""
    gan = tiny_gan()
    gan.fit(tiny_data(), steps=2, progress=False)
    back = pickle.loads(pickle.dumps(gan))
    assert back.step == 2 and back.history == gan.history and back.seed == gan.seed
    torch.testing.assert_close(
        back.generate([0, 1, 2], generator=3), gan.generate([0, 1, 2], generator=3)
    )
    custom = ConditionalDCGAN(
        2, discriminator=_LinearDiscriminator(SIZE), config=tiny_config(), device="cpu"
    )
    gan.note = "mine"  # type: ignore[attr-defined]
    copied = copy.deepcopy(gan)  # a deep copy is an attribute-for-attribute copy, as always
    assert copied.note == "mine" and copied.step == 2  # type: ignore[attr-defined]
    torch.testing.assert_close(copied.generate([0], generator=3), gan.generate([0], generator=3))
    again = pickle.loads(pickle.dumps(custom))  # a user's network travels as itself
    assert isinstance(again.discriminator, _LinearDiscriminator)
    assert torch.equal(again.discriminator.lin.weight, custom.discriminator.lin.weight)


class _WiderDiscriminator(_LinearDiscriminator):
    def __init__(self) -> None:
        super().__init__(SIZE)
        self.extra = nn.Linear(2, 2)


def test_failed_save_leaves_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.pt"
    gan = tiny_gan()
    gan.save(path)
    before = path.read_bytes()

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    gan.fit(tiny_data(), steps=1, progress=False)
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        gan.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_truncated_checkpoint_raises(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    tiny_gan().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        ConditionalDCGAN.load(path)


def test_foreign_files_raise(tmp_path: Path) -> None:
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(CheckpointError, match="not a covergan GAN checkpoint"):
        ConditionalDCGAN.load(tensor_file)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="corrupt"):
        ConditionalDCGAN.load(noise)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        ConditionalDCGAN.load(tmp_path / "missing.pt")


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_malicious_pickle_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "covergan.gan", "payload": _Evil(str(marker))}, path)
    with pytest.raises(CheckpointError, match="other than tensors"):
        ConditionalDCGAN.load(path)
    assert not marker.exists()
    with path.open("wb") as fh:  # a plain pickle, not a torch zip file
        pickle.dump(_Evil(str(marker)), fh)
    with pytest.raises(CheckpointError):
        ConditionalDCGAN.load(path)
    assert not marker.exists()


def _rewrite(path: Path, **changes: Any) -> None:
    ckpt = torch.load(path, weights_only=True)
    ckpt.update(changes)
    torch.save(ckpt, path)


def test_newer_format_version_raises(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    tiny_gan().save(path)
    _rewrite(path, format_version=CHECKPOINT_FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="newer"):
        ConditionalDCGAN.load(path)
    _rewrite(path, format_version=0)
    with pytest.raises(CheckpointError, match="unknown format_version"):
        ConditionalDCGAN.load(path)


def test_class_count_mismatch_raises(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    tiny_gan(n_classes=3).save(path)
    with pytest.raises(CheckpointError, match="n_classes=3, expected 5"):
        ConditionalDCGAN.load(path, n_classes=5)
    _rewrite(path, classes=["a", "b"])
    with pytest.raises(CheckpointError, match="class list has 2 entries but n_classes=3"):
        ConditionalDCGAN.load(path)


def test_damaged_fields_raise(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    tiny_gan().save(path)
    _rewrite(path, step="three")
    with pytest.raises(CheckpointError, match="'step'"):
        ConditionalDCGAN.load(path)
    tiny_gan().save(path)
    _rewrite(path, config={"z_dim": -1})
    with pytest.raises(CheckpointError, match="configuration is invalid"):
        ConditionalDCGAN.load(path)


# ----------------------------------------------------------------------------- the digits control


@pytest.mark.slow
def test_digits_control_generates_recognisable_classes() -> None:
    """Section 5 of the design: the conditional GAN works on an easy offline image set.

    scikit-learn's 1,797 8 x 8 digits (values 0..16, scaled to [-1, 1]); the default preset at
    8 x 8 (default loss, optimiser, EMA) with image-style augmentation (translation only:
    semitone shifts and masks are CQT ops). A classifier trained on the real digits must label
    >= 90 % of generated digits as the class they were conditioned on.
    """
    datasets = pytest.importorskip("sklearn.datasets")
    linear_model = pytest.importorskip("sklearn.linear_model")
    digits = datasets.load_digits()
    x = digits.images.astype(np.float32) / 8.0 - 1.0
    y = digits.target.astype(np.int64)
    classifier = linear_model.LogisticRegression(max_iter=2000).fit(x.reshape(len(x), -1), y)
    assert classifier.score(x.reshape(len(x), -1), y) > 0.95

    config = GANConfig(
        image_size=(8, 8),
        g_width=32,
        d_width=32,
        batch_size=32,
        augment="translation",
    )
    gan = ConditionalDCGAN(10, config=config, device="cpu", seed=0)
    gan.fit(
        TensorDataset(torch.from_numpy(x)[:, None], torch.from_numpy(y)), steps=300, progress=False
    )

    labels = torch.arange(10).repeat(50)
    fakes = gan.generate(labels, generator=1).reshape(len(labels), -1).numpy()
    accuracy = float((classifier.predict(fakes) == labels.numpy()).mean())
    assert accuracy >= 0.9, f"only {accuracy:.1%} of generated digits match their label"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_mixed_precision_trains_resumes_and_samples(tmp_path: Path) -> None:
    data = tiny_data(n=12)
    gan = ConditionalDCGAN(3, config=tiny_config(), device="cuda", seed=0)
    assert gan._amp_dtype in (torch.bfloat16, torch.float16)
    gan.fit(data, steps=3, seed=1, progress=False)
    assert all(np.isfinite(gan.history["loss_d"]))
    gan.save(tmp_path / "m.pt")
    back = ConditionalDCGAN.load(tmp_path / "m.pt", device="cuda")
    back.fit(data, steps=2, progress=False)
    assert back.step == 5
    samples = back.generate([0, 1, 2], generator=0)
    assert samples.device.type == "cpu" and samples.dtype == torch.float32
    on_cpu = ConditionalDCGAN.load(tmp_path / "m.pt", device="cpu")
    assert on_cpu.generate([0], generator=0).shape == (1, 1, *SIZE)


def test_state_dict_round_trip_for_embedding_in_other_files(tmp_path: Path) -> None:
    gan = tiny_gan().fit(tiny_data(), steps=1, progress=False)
    torch.save({"my_format": 1, "gan": gan.state_dict()}, tmp_path / "outer.pt")
    outer = torch.load(tmp_path / "outer.pt", weights_only=True)
    back = ConditionalDCGAN.from_state_dict(outer["gan"], device="cpu", source="outer.pt")
    assert_same_state(gan, back)
    with pytest.raises(CheckpointError, match="outer.pt is not a covergan GAN checkpoint"):
        ConditionalDCGAN.from_state_dict({"format": "other"}, source="outer.pt")


# ----------------------------------------------------------------------------- autoencoder init


def test_autoencoder_pretraining_learns_to_reconstruct_and_resets_the_ema() -> None:
    data = tiny_data(n=16)
    gan = tiny_gan().pretrain_autoencoder(data, steps=30, seed=0, progress=False)
    l1 = gan.pretrain_history["ae_l1"]
    assert len(l1) == 30 and len(gan.pretrain_history["ae_kl"]) == 30
    assert np.mean(l1[-5:]) < np.mean(l1[:5])
    assert gan.step == 0 and gan.history == {}
    ema = cast_ema(gan).state_dict()
    for key, value in gan.generator.state_dict().items():
        assert torch.equal(ema[key], value), key
    gan.fit(data, steps=2, progress=False)  # adversarial training follows as usual
    assert gan.step == 2


def test_autoencoder_pretraining_is_deterministic_and_checkpointed(tmp_path: Path) -> None:
    a = tiny_gan().pretrain_autoencoder(tiny_data(), steps=3, seed=4, progress=False)
    b = tiny_gan().pretrain_autoencoder(tiny_data(), steps=3, seed=4, progress=False)
    assert_same_state(a, b)
    a.save(tmp_path / "m.pt")
    assert ConditionalDCGAN.load(tmp_path / "m.pt").pretrain_history == a.pretrain_history


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2, "lr": 0.0}, "lr"),
        ({"steps": 2, "kl_weight": -1.0}, "kl_weight"),
        ({"steps": 2, "batch_size": 0}, "batch_size"),
    ],
)
def test_invalid_pretraining_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        tiny_gan().pretrain_autoencoder(tiny_data(), progress=False, **kwargs)


def test_pretraining_after_gan_training_raises() -> None:
    gan = tiny_gan().fit(tiny_data(), steps=1, progress=False)
    with pytest.raises(ParameterError, match="1 GAN steps"):
        gan.pretrain_autoencoder(tiny_data(), steps=1, progress=False)


@pytest.mark.filterwarnings("error::covergan.errors.CoverGANWarning")
def test_fit_on_a_cqt_dataset_with_a_normaliser() -> None:
    from covergan.cqt import CQTNormalizer
    from covergan.data import CQTDataset

    rng = np.random.default_rng(0)
    features = [rng.random((12, int(rng.integers(10, 40)))).astype(np.float32) for _ in range(10)]
    songs = ["a", "a", "b", "b", "b", "c", "c", "d", "d", "d"]
    norm = CQTNormalizer().fit(features)
    data = CQTDataset(features, songs, window=16, transform=norm)
    config = tiny_config(image_size=(12, 16))
    gan = ConditionalDCGAN(data.n_songs, config=config, classes=list(data.index.ids), device="cpu")
    gan.fit(data, steps=4, seed=0, progress=False)  # model space: no range warning (an error here)
    assert data.epoch == 1  # 2 batches per epoch: the dataset drew new crops for epoch 1
    assert gan.generate([0, 3], generator=0).shape == (2, 1, 12, 16)
