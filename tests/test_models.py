"""Tests for covergan.models: the thesis architecture, the default pair, the protocols."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from covergan.errors import ParameterError
from covergan.models import (
    ConditionalBatchNorm2d,
    DCGANGenerator,
    DiscriminatorModule,
    GeneratorModule,
    ProjectionDiscriminator,
    ThesisDiscriminator,
    ThesisGenerator,
    auto_stages,
)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- thesis


def test_thesis_parameter_counts_match_the_thesis() -> None:
    assert _count(ThesisGenerator(0)) == 6_030_913
    assert _count(ThesisDiscriminator(0)) == 5_350_209


def test_thesis_conditioning_adds_input_channels() -> None:
    n = 7
    g, d = ThesisGenerator(n), ThesisDiscriminator(n)
    first_g = g.net[0]
    first_d = d.net[0]
    assert isinstance(first_g, nn.ConvTranspose2d) and first_g.in_channels == 100 + n
    assert isinstance(first_d, nn.Conv2d) and first_d.in_channels == 1 + n
    # only the first layers grow: one (kernel) slice per class each
    assert _count(g) - _count(ThesisGenerator(0)) == n * 256 * 8 * 20
    assert _count(d) - _count(ThesisDiscriminator(0)) == n * 64 * 10 * 54


@pytest.mark.parametrize("n_classes", [0, 3])
def test_thesis_shapes(n_classes: int) -> None:
    torch.manual_seed(0)
    g, d = ThesisGenerator(n_classes).eval(), ThesisDiscriminator(n_classes).eval()
    labels = torch.tensor([0, 2]) if n_classes else None
    with torch.no_grad():
        x = g(torch.randn(2, 100), labels)
        assert x.shape == (2, 1, 84, 200)
        assert x.min() >= -1 and x.max() <= 1
        assert d(x, labels).shape == (2,)


def test_thesis_labels_change_the_outputs() -> None:
    torch.manual_seed(0)
    g, d = ThesisGenerator(3).eval(), ThesisDiscriminator(3).eval()
    z = torch.randn(1, 100).repeat(2, 1)
    with torch.no_grad():
        x = g(z, torch.tensor([0, 1]))
        assert not torch.allclose(x[0], x[1])
        scores = d(x[:1].repeat(2, 1, 1, 1), torch.tensor([0, 2]))
        assert scores[0] != scores[1]


def test_thesis_one_hot_planes_equal_explicit_channels() -> None:
    """D's label input is the one-hot vector broadcast over H x W as extra channels."""
    torch.manual_seed(0)
    d = ThesisDiscriminator(2).eval()
    x = torch.rand(1, 1, 84, 200) * 2 - 1
    planes = torch.zeros(1, 2, 84, 200)
    planes[:, 1] = 1.0
    with torch.no_grad():
        expected = d.net(torch.cat([x, planes], dim=1)).flatten()
        assert torch.allclose(d(x, torch.tensor([1])), expected)


def test_thesis_needs_labels_when_conditional() -> None:
    with pytest.raises(ParameterError, match="labels"):
        ThesisGenerator(2)(torch.zeros(1, 100), None)
    with pytest.raises(ParameterError, match="labels"):
        ThesisDiscriminator(2)(torch.zeros(1, 1, 84, 200), None)


# ----------------------------------------------------------------------------- default pair


@pytest.mark.parametrize(
    ("size", "stages"), [((84, 200), 4), ((8, 8), 2), ((28, 28), 2), ((13, 37), 2), ((64, 64), 4)]
)
def test_auto_stages(size: tuple[int, int], stages: int) -> None:
    assert auto_stages(*size) == stages


@pytest.mark.parametrize("size", [(84, 200), (8, 8), (13, 37), (96, 96), (5, 300)])
@pytest.mark.parametrize("n_classes", [0, 4])
def test_default_pair_works_at_any_size(size: tuple[int, int], n_classes: int) -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(n_classes, image_size=size, width=8, max_width=32, z_dim=16)
    d = ProjectionDiscriminator(n_classes, image_size=size, width=8, max_width=32)
    labels = torch.tensor([0, 3, 1]) if n_classes else None
    x = g(torch.randn(3, 16), labels)
    assert x.shape == (3, 1, *size)
    assert x.min() >= -1 and x.max() <= 1
    out = d(x, labels)
    assert out.shape == (3,)
    out.sum().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_default_generator_seed_and_crop_for_84x200() -> None:
    g = DCGANGenerator(0)
    assert g.seed_size == (6, 13)  # 6 * 16 = 96 >= 84, 13 * 16 = 208 >= 200
    assert g.seed_channels == 256


def test_default_generator_is_class_conditional() -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(3, image_size=(16, 16), width=8, z_dim=8, embed_dim=4)
    assert g.embed is not None and g.fc.in_features == 8 + 4  # [z, e] feeds the seed layer
    g.eval()
    z = torch.randn(1, 8).repeat(2, 1)
    with torch.no_grad():
        x = g(z, torch.tensor([0, 2]))
    assert not torch.allclose(x[0], x[1])


def test_projection_term_uses_the_label() -> None:
    torch.manual_seed(0)
    d = ProjectionDiscriminator(5, image_size=(16, 16), width=8).eval()
    x = torch.rand(1, 1, 16, 16).repeat(2, 1, 1, 1)
    with torch.no_grad():
        scores = d(x, torch.tensor([0, 4]))
    assert scores[0] != scores[1]


def test_discriminator_is_spectrally_normalised_except_the_class_embedding() -> None:
    d = ProjectionDiscriminator(3, image_size=(16, 16), width=8)
    weights = [n for n, _ in d.named_parameters() if not n.endswith("bias")]
    plain = [n for n in weights if "parametrizations" not in n]
    assert plain == ["embed.weight"]
    assert len(weights) - len(plain) == 4  # 2 stride-2 convs, the 3 x 3 conv, the linear head
    with torch.no_grad():
        for m in d.modules():  # every normalised weight has spectral norm ~1 once converged
            if isinstance(m, nn.Conv2d):
                for _ in range(30):  # each training-mode access runs one power iteration
                    weight = m.weight
                sigma = float(torch.linalg.matrix_norm(weight.flatten(1), ord=2))
                assert sigma == pytest.approx(1.0, rel=0.05)


def test_default_needs_labels_when_conditional() -> None:
    with pytest.raises(ParameterError, match="labels"):
        DCGANGenerator(2, image_size=(8, 8))(torch.zeros(1, 128), None)
    with pytest.raises(ParameterError, match="labels"):
        ProjectionDiscriminator(2, image_size=(8, 8))(torch.zeros(1, 1, 8, 8), None)


@pytest.mark.parametrize("size", [(1, 8), (8, 1)])
def test_default_rejects_degenerate_sizes(size: tuple[int, int]) -> None:
    with pytest.raises(ParameterError, match="image_size"):
        DCGANGenerator(0, image_size=size)


def test_conditional_batch_norm_starts_as_plain_batch_norm() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    cbn = ConditionalBatchNorm2d(3, cond_dim=6)
    plain = nn.BatchNorm2d(3)
    assert torch.allclose(cbn(x, torch.randn(4, 6)), plain(x), atol=1e-6)
    assert ConditionalBatchNorm2d(3, cond_dim=0).bn.affine


def test_conditional_batch_norm_is_linear_in_the_embedding() -> None:
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, cond_dim=2)
    assert cbn.gain is not None and cbn.bias is not None
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        cbn.bias.weight.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, -1.0]]))
    x = torch.randn(2, 3, 4, 4)
    cond = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    h = nn.functional.batch_norm(x, None, None, training=True)
    expected_gain = torch.tensor([[2.0, 1.0, 1.0], [1.0, 4.0, 1.0]])[:, :, None, None]
    expected_bias = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, -3.0]])[:, :, None, None]
    assert torch.allclose(cbn(x, cond), h * expected_gain + expected_bias, atol=1e-5)


def test_modules_satisfy_the_protocols() -> None:
    assert isinstance(DCGANGenerator(0, image_size=(8, 8)), GeneratorModule)
    assert isinstance(ThesisGenerator(0), GeneratorModule)
    assert isinstance(ProjectionDiscriminator(0, image_size=(8, 8)), DiscriminatorModule)
    assert isinstance(ThesisDiscriminator(0), DiscriminatorModule)


def test_conditional_batch_norm_eval_folds_running_stats_exactly() -> None:
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, cond_dim=4)
    assert cbn.gain is not None and cbn.bias is not None
    with torch.no_grad():
        cbn.gain.weight.normal_()
        cbn.bias.weight.normal_()
    for _ in range(3):  # populate running statistics
        cbn(torch.randn(8, 3, 5, 5) * 2 + 1, torch.randn(8, 4))
    cbn.eval()
    x, cond = torch.randn(4, 3, 5, 5), torch.randn(4, 4)
    expected = cbn.bn(x) * (1 + cbn.gain(cond))[:, :, None, None] + cbn.bias(cond)[:, :, None, None]
    assert torch.allclose(cbn(x, cond), expected, atol=1e-5)
