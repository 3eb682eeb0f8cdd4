import pytest
import torch

from gancv.errors import GancvError
from gancv.models import DISCRIMINATORS, GENERATORS, build
from gancv.models.dcgan import ProjectLatent, stages_for

SHAPES = {"mlp": [(1, 28, 28), (3, 16, 16), (2,)], "dcgan": [(1, 28, 28), (3, 32, 32), (1, 16, 16), (3, 64, 64)],
          "stylegan": [(1, 16, 16), (3, 32, 32)], "resnet": [(3, 32, 32), (1, 16, 16), (3, 64, 64), (1, 28, 28)]}
SMALL = {"mlp": {"hidden": [32, 32]}, "dcgan": {"width": 8}, "resnet": {"width": 16},
         "stylegan": {"channel_base": 64, "channel_max": 16, "w_dim": 16, "mapping_layers": 2}}
SMALL_D = {"mlp": {"hidden": [32, 16]}, "dcgan": {"width": 8}, "resnet": {"width": 8},
           "stylegan": {"channel_base": 64, "channel_max": 16, "cmap_dim": 8}}


def latent_models(registry):
    # Image-to-image networks (restoration, translation) declare a ``family`` and have their own tests.
    return [name for name in registry.names() if getattr(registry.get(name), "family", "generation") == "generation"]


def cases(registry):
    return [(name, shape) for name in latent_models(registry) for shape in SHAPES.get(name, [(1, 32, 32)])]


@pytest.mark.parametrize("name,shape", cases(GENERATORS))
@pytest.mark.parametrize("num_classes", [0, 3])
def test_generator_shapes_and_backward(name, shape, num_classes):
    torch.manual_seed(0)
    G = build("generator", {"name": name, "shape": list(shape), "z_dim": 8, "num_classes": num_classes, **SMALL.get(name, {})})
    z = torch.randn(4, 8)
    labels = torch.tensor([0, 1, 2, 0]) if num_classes else None
    out = G(z, labels)
    assert out.shape == (4, *shape)
    if len(shape) == 3:
        assert out.min() >= -1 and out.max() <= 1
    out.mean().backward()
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)


@pytest.mark.parametrize("name,shape", cases(DISCRIMINATORS))
@pytest.mark.parametrize("num_classes", [0, 3])
def test_discriminator_logits(name, shape, num_classes):
    D = build("discriminator", {"name": name, "shape": list(shape), "num_classes": num_classes, **SMALL_D.get(name, {})})
    x = torch.randn(4, *shape)
    labels = torch.tensor([0, 1, 2, 0]) if num_classes else None
    logits = D(x, labels)
    assert logits.shape == (4,)
    logits.sum().backward()


@pytest.mark.parametrize("kind,registry", [("generator", GENERATORS), ("discriminator", DISCRIMINATORS)])
def test_config_round_trip_equal_outputs(kind, registry):
    for name in latent_models(registry):
        shape = SHAPES.get(name, [(1, 32, 32)])[0]
        extra = {"z_dim": 8} if kind == "generator" else {}
        torch.manual_seed(1)
        net = build(kind, {"name": name, "shape": list(shape), **extra}).eval()
        clone = build(kind, net.config).eval()
        clone.load_state_dict(net.state_dict())
        x = torch.randn(3, 8) if kind == "generator" else torch.randn(3, *shape)
        assert torch.equal(net(x), clone(x))
        assert net.config["name"] == name


@pytest.mark.parametrize("name", latent_models(GENERATORS))
def test_seeded_construction_is_deterministic(name):
    nets = []
    for _ in range(2):
        torch.manual_seed(5)
        nets.append(build("generator", {"name": name, "shape": [1, 16, 16], "z_dim": 4}))
    a, b = nets
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_mlp_matches_the_classic_architecture():
    G = build("generator", {"name": "mlp", "shape": [1, 28, 28]})
    D = build("discriminator", {"name": "mlp", "shape": [1, 28, 28]})
    linear_g = [m.out_features for m in G.modules() if isinstance(m, torch.nn.Linear)]
    linear_d = [m.out_features for m in D.modules() if isinstance(m, torch.nn.Linear)]
    assert linear_g == [256, 512, 1024, 784] and G.z_dim == 100
    assert linear_d == [512, 256, 1]
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in D.modules())


@pytest.mark.parametrize("size,expected", [(16, (4, 2)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4)), (128, (4, 5))])
def test_dcgan_stages(size, expected):
    assert stages_for(size) == expected


def test_dcgan_latent_projection_is_the_transposed_conv():
    # The matmul fast path must be the very op it replaces: same output, same gradients, same
    # state-dict (checkpoints written before it still load).
    torch.manual_seed(0)
    for bias in (False, True):
        ref = torch.nn.ConvTranspose2d(6, 5, 4, 1, 0, bias=bias)
        fast = ProjectLatent(6, 5, 4, 1, 0, bias=bias)
        fast.load_state_dict(ref.state_dict())
        z = torch.randn(3, 6, 1, 1, requires_grad=True)
        out_ref, out_fast = ref(z), fast(z)
        torch.testing.assert_close(out_fast, out_ref)
        grads_ref = torch.autograd.grad(out_ref.square().sum(), [z, ref.weight])
        grads_fast = torch.autograd.grad(out_fast.square().sum(), [z, fast.weight])
        for a, b in zip(grads_fast, grads_ref):
            torch.testing.assert_close(a, b)
        wide = torch.randn(3, 6, 2, 2)  # any other input takes the transposed-conv path
        torch.testing.assert_close(fast(wide), ref(wide))


@pytest.mark.parametrize("size", [30, 48, 100])
def test_dcgan_rejects_odd_sizes(size):
    with pytest.raises(GancvError, match="power of two"):
        build("generator", {"name": "dcgan", "shape": [1, size, size]})


def test_unknown_model_and_bad_kwarg():
    with pytest.raises(GancvError, match="choose one of"):
        build("generator", {"name": "nope"})
    with pytest.raises(GancvError, match="unexpected keyword"):
        build("generator", {"name": "dcgan", "widht": 3})


def test_shape_check_at_boundary():
    D = build("discriminator", {"name": "dcgan", "shape": [1, 16, 16], "width": 8})
    with pytest.raises(GancvError, match=r"expected a tensor of shape \(\*, 1, 16, 16\)"):
        D(torch.randn(2, 3, 16, 16))


def test_mlp_latent_codes_split_z_into_equally_likely_pieces(tmp_path):
    torch.manual_seed(0)
    G = build("generator", {"name": "mlp", "shape": [2], "z_dim": 4, "hidden": [16, 16], "batchnorm": False,
                            "activation": "relu", "latent_codes": 8})
    assert G.codes.num_embeddings == 8 and G.net[0].in_features == 3  # z's first coordinate is the code
    with torch.no_grad():
        G.codes.weight.copy_(torch.randn_like(G.codes.weight) * 5)
    z = torch.randn(5, 4)
    # Moving z_0 across a code boundary (Phi(z_0) = 1/2 at 0) changes the piece; within a piece it changes nothing.
    lo, hi, lo2 = z.clone(), z.clone(), z.clone()
    lo[:, 0], hi[:, 0], lo2[:, 0] = -0.01, 0.01, -0.02
    assert not torch.allclose(G(lo), G(hi)) and torch.equal(G(lo), G(lo2))
    clone = build("generator", G.config)
    clone.load_state_dict(G.state_dict())
    assert torch.equal(G(z), clone(z))
    with pytest.raises(GancvError, match="latent_codes"):
        build("generator", {"name": "mlp", "shape": [2], "z_dim": 1, "latent_codes": 8})


def test_mlp_scale_maps_points_to_and_from_unit_spread():
    torch.manual_seed(0)
    G = build("generator", {"name": "mlp", "shape": [2], "z_dim": 4, "hidden": [16], "batchnorm": False, "scale": 3.0})
    D = build("discriminator", {"name": "mlp", "shape": [2], "hidden": [16], "dropout": 0.0, "scale": 3.0})
    plain_G = build("generator", {**G.config, "scale": 1.0})
    plain_D = build("discriminator", {**D.config, "scale": 1.0})
    plain_G.load_state_dict(G.state_dict())
    plain_D.load_state_dict(D.state_dict())
    z, x = torch.randn(5, 4), torch.randn(5, 2)
    assert torch.allclose(G(z), 3.0 * plain_G(z)) and torch.allclose(D(3.0 * x), plain_D(x))
    clone = build("generator", G.config)
    clone.load_state_dict(G.state_dict())
    assert torch.equal(G(z), clone(z))
    with pytest.raises(GancvError, match="scale"):
        build("generator", {"name": "mlp", "shape": [1, 8, 8], "scale": 2.0})
    with pytest.raises(GancvError, match="scale"):
        build("discriminator", {"name": "mlp", "shape": [2], "scale": 0.0})


def test_registered_variants_are_their_base_with_other_defaults():
    from gancv.models.base import register_variant
    from gancv.models.translation import NLayerDiscriminator, UNetGenerator

    unet128 = build("generator", {"name": "unet-128", "width": 4, "norm": "instance"})
    assert isinstance(unet128, UNetGenerator) and unet128.multiple == 2**7
    # the recorded config lists every keyword of the base, with the variant's default
    full = build("generator", {"name": "unet", "width": 4, "norm": "instance", "num_downs": 7}).config
    assert unet128.config == {**full, "name": "unet-128"}
    assert build("generator", {"name": "unet-128", "num_downs": 3, "width": 4}).multiple == 8  # still overridable
    torch.manual_seed(0)
    a = build("discriminator", {"name": "patchgan", "width": 4})
    torch.manual_seed(0)
    b = build("discriminator", {"name": "nlayer", "width": 4, "n_layers": 3})
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(a(x), b(x)) and a.config["n_layers"] == 3
    with pytest.raises(TypeError, match="no parameter"):
        register_variant(NLayerDiscriminator, "discriminator", "never-registered", "", depth=3)


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 16, 16)])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_dcgan_extra_layers_shapes_and_backward(shape, spectral_norm):
    torch.manual_seed(0)
    G = build("generator", {"name": "dcgan", "shape": list(shape), "z_dim": 8, "width": 8, "extra_layers": 1})
    D = build("discriminator", {"name": "dcgan", "shape": list(shape), "width": 8, "extra_layers": 1,
                                "spectral_norm": spectral_norm})
    plain_G = build("generator", {**G.config, "extra_layers": 0})
    plain_D = build("discriminator", {**D.config, "extra_layers": 0})
    # One stride-1 3x3 conv block more on each side; in D it has BatchNorm unless spectral norm is on.
    convs = lambda net: [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (1, 1) and m.kernel_size == (3, 3)]
    assert len(convs(G)) == len(convs(D)) == 1 and not convs(plain_G) and not convs(plain_D)
    batchnorms = lambda net: sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert batchnorms(G) == batchnorms(plain_G) + 1
    assert batchnorms(D) == batchnorms(plain_D) + (0 if spectral_norm else 1)
    out = G(torch.randn(4, 8))
    assert out.shape == (4, *shape) and out.min() >= -1 and out.max() <= 1
    logits = D(out)
    assert logits.shape == (4,)
    logits.sum().backward()
    assert all(p.grad is not None for net in (G, D) for p in net.parameters())


def test_dcgan_extra_layers_save_load_round_trip(tmp_path):
    from gancv.training.checkpoint import load_weights, save_weights

    torch.manual_seed(0)
    for kind, x in [("generator", torch.randn(3, 8)), ("discriminator", torch.randn(3, 3, 8, 8))]:
        extra = {"z_dim": 8} if kind == "generator" else {}
        net = build(kind, {"name": "dcgan", "shape": [3, 8, 8], "width": 8, "extra_layers": 2, **extra})
        net(x)  # a training pass moves the BatchNorm statistics
        net.eval()
        save_weights(net, tmp_path / f"{kind}.pt")
        clone = build(kind, net.config).eval()
        load_weights(clone, tmp_path / f"{kind}.pt")
        assert clone.config["extra_layers"] == 2
        assert torch.equal(net(x), clone(x))


def test_dcgan_default_has_no_extra_layers():
    # extra_layers=0 builds today's networks: same parameter and buffer names, so old checkpoints load.
    G = build("generator", {"name": "dcgan", "shape": [3, 8, 8], "width": 8})
    D = build("discriminator", {"name": "dcgan", "shape": [3, 16, 16], "width": 8})
    assert G.config["extra_layers"] == D.config["extra_layers"] == 0
    assert list(G.state_dict()) == [
        "net.0.weight", "net.1.weight", "net.1.bias", "net.1.running_mean", "net.1.running_var",
        "net.1.num_batches_tracked", "net.3.weight", "net.3.bias"]
    assert list(D.state_dict()) == [
        "net.0.weight", "net.0.bias", "net.2.weight", "net.3.weight", "net.3.bias", "net.3.running_mean",
        "net.3.running_var", "net.3.num_batches_tracked", "net.5.weight", "net.5.bias"]


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_dcgan_negative_extra_layers_is_a_clear_error(kind):
    # A negative count used to build no extra block silently; now it names the value and the fix.
    with pytest.raises(GancvError, match=r"extra_layers=-1: use 0"):
        build(kind, {"name": "dcgan", "shape": [1, 16, 16], "width": 8, "extra_layers": -1})
