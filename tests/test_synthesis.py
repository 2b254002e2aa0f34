"""The synthesis-model protocol: a third model is one class and one registry entry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from covergan.augmenter import Augmenter
from covergan.cqt import CQTConfig, CQTNormalizer
from covergan.data import CQTDataset, SongId, SongIndex
from covergan.errors import ParameterError
from covergan.synthesis import REGISTRY, ClassGANModel, FitContext, SynthesisModel, VersionModel
from covergan.synthesis.base import Space
from tests.test_references import works


class _Counter:
    """A stand-in network: counts steps, logs a constant loss."""

    def __init__(self) -> None:
        self.step, self.history, self.pretrained = 0, {}, 0

    def pretrain_autoencoder(self, data: CQTDataset, *, steps: int, **_: Any) -> None:
        self.pretrained = steps

    def fit(self, data: CQTDataset, *, steps: int, **_: Any) -> None:
        self.step += steps
        self.history.setdefault("loss_d", []).extend([0.0] * steps)
        self.history.setdefault("loss_g", []).extend([0.0] * steps)


class EchoModel(SynthesisModel):
    """Samples a song's first training window again and again (the whole third model)."""

    name, label = "echo", "echo"

    def __init__(self, network: _Counter, windows: dict[SongId, torch.Tensor]) -> None:
        self.network, self.windows = network, windows

    @classmethod
    def check(
        cls, params: Mapping[str, Any], data: CQTDataset, *, window: int, config: CQTConfig
    ) -> None:
        if params["steps"] > 100:
            raise ParameterError("echo trains at most 100 steps")

    @classmethod
    def build(cls, params: Mapping[str, Any], ctx: FitContext) -> EchoModel:
        train = ctx.train
        windows: dict[SongId, torch.Tensor] = {}
        for i, song in enumerate(ctx.data.song_ids):
            windows.setdefault(song, train[i][0])
        return cls(_Counter(), windows)

    @staticmethod
    def planned_steps(params: Mapping[str, Any]) -> int:
        return int(params["steps"])

    @staticmethod
    def default_pretrain(params: Mapping[str, Any]) -> int:
        return 2

    def batch_size(self, params: Mapping[str, Any], ctx: FitContext) -> int:
        return 2

    def sample(
        self,
        counts: Mapping[SongId, int],
        labels: Mapping[SongId, int],
        normalizer: CQTNormalizer,
        *,
        space: Space,
        seed: int | None,
        truncation: float | None,
    ) -> dict[SongId, torch.Tensor]:
        out = {s: self.windows[s].expand(n, -1, -1, -1).clone() for s, n in counts.items()}
        return {s: normalizer.inverse(x) if space == "features" else x for s, x in out.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"echo": {"step": self.network.step, "windows": dict(self.windows)}}

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        *,
        songs: SongIndex,
        config: CQTConfig,
        window: int,
        device: str | torch.device,
        source: str,
    ) -> EchoModel | None:
        if state.get("echo") is None:
            return None
        network = _Counter()
        network.step = int(state["echo"]["step"])
        return cls(network, dict(state["echo"]["windows"]))


def test_a_third_model_is_one_class_and_one_registry_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(REGISTRY, "echo", EchoModel)
    data = works((3, 2, 2, 1))
    aug = Augmenter(model="echo", steps=3, window=16, seed=0, progress=False).fit(data)
    assert aug.steps_done == {"echo": 3} and aug.steps_planned == {"echo": 3}
    assert aug.models_["echo"].network.pretrained == 2 and len(aug.history_["loss_d"]) == 3
    x = aug.sample("work-1", 4, space="model")
    assert x.shape == (4, 1, 24, 16) and torch.equal(x[0], x[3])
    assert aug.gan_ is None and aug.versions_ is None and aug.references_ is None
    back = Augmenter.load(aug.save(tmp_path / "echo.pt"))
    assert back.models == ("echo",) and back.steps_done == {"echo": 3}
    assert torch.equal(back.sample("work-1", 4), aug.sample("work-1", 4))
    with pytest.raises(ParameterError, match="at most 100 steps"):
        Augmenter(model="echo", steps=101, window=16, progress=False).fit(data)


def test_the_built_in_models_are_registered_in_order() -> None:
    assert list(REGISTRY) == ["versions", "gan"]
    assert REGISTRY["versions"] is VersionModel and REGISTRY["gan"] is ClassGANModel
    assert [m.label for m in REGISTRY.values()] == ["versions", "class GAN"]
