"""Spectral norm, conditional BatchNorm, projection and ACGAN discriminators."""
import pytest
import torch

from gancv.models import DISCRIMINATORS, build
from gancv.nn import ConditionalBatchNorm2d


def sn_discriminators():
    return [n for n in DISCRIMINATORS.names() if "spectral_norm" in DISCRIMINATORS.get(n).__init__.__wrapped__.__code__.co_varnames]


@pytest.mark.parametrize("name", sn_discriminators())
def test_spectral_norm_bounds_every_layer_and_round_trips(name):
    shape = [2] if name == "mlp" else [1, 16, 16]
    torch.manual_seed(0)
    if name == "mlp":
        spec = {"name": name, "shape": shape, "spectral_norm": True, "hidden": [16, 16]}
    elif getattr(DISCRIMINATORS.get(name), "family", None) == "translation":  # PatchGANs take in_channels and their own norm
        spec = {"name": name, "in_channels": 1, "n_layers": 2, "norm": "instance", "spectral_norm": True, "width": 8}
    else:
        spec = {"name": name, "shape": shape, "spectral_norm": True, "width": 8}
    D = build("discriminator", spec)
    x = torch.randn(4, *shape)
    for _ in range(30):  # power iterations converge in training mode
        D(x)
    D.eval()
    weights = [m.weight for m in D.modules() if hasattr(m, "parametrizations")]
    assert weights
    for w in weights:
        sigma = torch.linalg.matrix_norm(w.flatten(1), ord=2)
        assert sigma <= 1.05
    clone = build("discriminator", D.config).eval()
    clone.load_state_dict(D.state_dict())
    assert torch.equal(D(x), clone(x))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())


def test_conditional_batchnorm_depends_on_the_class():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(4, 3)
    with torch.no_grad():
        cbn.gain.weight[1] = 2.0
    x = torch.randn(6, 4, 5, 5)
    a, b = cbn(x, torch.zeros(6, dtype=torch.long)), cbn(x, torch.ones(6, dtype=torch.long))
    assert torch.allclose(b, 2 * a, atol=1e-5)


def test_resnet_generator_uses_conditional_batchnorm_and_labels_matter():
    torch.manual_seed(0)
    G = build("generator", {"name": "resnet", "shape": [1, 16, 16], "z_dim": 8, "width": 16, "num_classes": 3}).eval()
    assert any(isinstance(m, ConditionalBatchNorm2d) for m in G.modules())
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.bias.weight.normal_()
    z = torch.randn(2, 8)
    assert not torch.allclose(G(z, torch.tensor([0, 0])), G(z, torch.tensor([1, 1])))
    with pytest.raises(ValueError, match="pass labels"):
        G(z)


def test_projection_discriminator_depends_on_the_class():
    torch.manual_seed(0)
    D = build("discriminator", {"name": "resnet", "shape": [1, 16, 16], "width": 8, "num_classes": 3}).eval()
    x = torch.randn(2, 1, 16, 16)
    assert D.embed is not None and not D.aux_classifier
    assert not torch.allclose(D(x, torch.tensor([0, 0])), D(x, torch.tensor([2, 2])))


def test_acgan_discriminator_has_a_class_head():
    torch.manual_seed(0)
    D = build("discriminator", {"name": "resnet", "shape": [1, 16, 16], "width": 8, "num_classes": 3,
                                "conditioning": "acgan"})
    logits, classes = D.forward_with_aux(torch.randn(4, 1, 16, 16))
    assert logits.shape == (4,) and classes.shape == (4, 3) and D.aux_classifier and D.embed is None
    (logits.sum() + classes.sum()).backward()
    clone = build("discriminator", D.config).eval()
    clone.load_state_dict(D.state_dict())
    x = torch.randn(2, 1, 16, 16)
    D.eval()
    assert all(torch.equal(a, b) for a, b in zip(D.forward_with_aux(x), clone.forward_with_aux(x)))


def test_bad_conditioning_is_a_clear_error():
    from gancv.errors import GancvError

    with pytest.raises(GancvError, match="conditioning must be"):
        build("discriminator", {"name": "resnet", "shape": [1, 16, 16], "conditioning": "concat"})
