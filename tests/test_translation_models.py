import pytest
import torch

from gancv.errors import GancvError
from gancv.models import DISCRIMINATORS, GENERATORS, build
from gancv.models.translation import INITS, init_weights

IMAGE_G = [n for n in GENERATORS.names() if getattr(GENERATORS.get(n), "family", "generation") == "translation"]
IMAGE_D = [n for n in DISCRIMINATORS.names() if getattr(DISCRIMINATORS.get(n), "family", "generation") == "translation"]
# Tiny but structurally complete: every registered translation network, a few channels wide.
SMALL_G = {"unet": {"num_downs": 4}, "unet-128": {"num_downs": 4}, "unet-256": {"num_downs": 4},
           "resnet-blocks": {"n_blocks": 2}, "resnet-6blocks": {}, "resnet-9blocks": {}}


def small_g(name, **kw):
    return build("generator", {"name": name, "width": 4, **SMALL_G.get(name, {}), **kw})


def test_translation_networks_are_registered():
    assert {"unet", "unet-128", "unet-256", "resnet-6blocks", "resnet-9blocks"} <= set(IMAGE_G)
    assert {"patchgan", "nlayer", "pixel"} <= set(IMAGE_D)


@pytest.mark.parametrize("name", IMAGE_G)
@pytest.mark.parametrize("channels", [(3, 3), (1, 3)])
def test_generator_shapes_backward_round_trip(name, channels):
    torch.manual_seed(0)
    G = small_g(name, in_channels=channels[0], out_channels=channels[1])
    x = torch.rand(2, channels[0], 32, 48) * 2 - 1  # non-square: fully convolutional
    y = G(x)
    assert y.shape == (2, channels[1], 32, 48) and y.abs().max() <= 1
    y.mean().backward()
    assert all(p.grad is not None for p in G.parameters())
    clone = build("generator", G.config)
    clone.load_state_dict(G.state_dict())
    G.eval(), clone.eval()
    assert clone.config == G.config and G.config["name"] == name
    assert torch.equal(G(x), clone(x))


def test_generator_rejects_sizes_off_its_multiple_and_wrong_channels():
    G = small_g("unet", num_downs=3)
    assert G.multiple == 8
    with pytest.raises(GancvError, match="multiple of 8"):
        G(torch.zeros(1, 3, 12, 16))
    with pytest.raises(GancvError, match="expected a tensor"):
        G(torch.zeros(1, 1, 16, 16))


def test_reference_sizes():
    # The papers' networks: parameter counts of the reference implementation.
    assert sum(p.numel() for p in build("generator", {"name": "resnet-9blocks"}).parameters()) == 11_378_179
    assert build("generator", {"name": "unet-256", "width": 2}).multiple == 256
    assert build("generator", {"name": "unet-128", "width": 2}).multiple == 128
    assert build("discriminator", {"name": "patchgan"}).receptive_field == 70
    assert build("discriminator", {"name": "nlayer", "n_layers": 1}).receptive_field == 16


@pytest.mark.parametrize("name", IMAGE_D)
def test_discriminator_patch_logits(name):
    D = build("discriminator", {"name": name, "in_channels": 6, "width": 4})
    x = torch.randn(2, 6, 32, 32)
    out = D(x)
    assert out.dim() == 4 and out.shape[:2] == (2, 1)
    out.mean().backward()
    clone = build("discriminator", D.config)
    clone.load_state_dict(D.state_dict())
    D.eval(), clone.eval()
    assert torch.equal(D(x), clone(x))
    if name == "pixel":
        assert out.shape[-2:] == (32, 32)


@pytest.mark.parametrize("init", INITS)
def test_init_options(init):
    torch.manual_seed(0)
    G = small_g("resnet-blocks", init=init)
    conv = G.model[1].weight
    assert torch.isfinite(conv).all() and conv.std() > 0
    with pytest.raises(GancvError, match="init"):
        small_g("resnet-blocks", init="uniform")
    with pytest.raises(GancvError, match="norm"):
        small_g("unet", norm="group")
    init_weights(G, init)


def test_unet_skip_connections_carry_detail():
    # Without a norm, a U-Net whose bottleneck is zeroed still passes input detail through skips.
    torch.manual_seed(0)
    G = small_g("unet", num_downs=3, norm="none", dropout=False).eval()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert not torch.allclose(G(x), G(torch.zeros_like(x)))


def test_patchgan_too_small_input_is_a_clear_error():
    D = build("discriminator", {"name": "patchgan", "width": 4})
    assert D(torch.zeros(1, 3, 24, 24)).shape == (1, 1, 1, 1)
    with pytest.raises(GancvError, match="n_layers"):
        D(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("name", ["unet", "resnet-blocks"])
def test_residual_generators_predict_a_change_to_the_input(name):
    torch.manual_seed(0)
    G = small_g(name, residual=True, norm="none").eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    last = [m for m in G.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    assert torch.equal(G(x), x)  # a zero body is exactly the identity: no tanh squashes the input
    init_weights(G, "kaiming")  # unit-scale activations, so the body's output is not negligible
    y = G(x)
    assert not torch.allclose(y, x) and y.abs().max() > 1  # unbounded: inference clamps, training pulls back
    assert build("generator", G.config).residual
    with pytest.raises(GancvError, match="in_channels"):
        small_g(name, residual=True, in_channels=1, out_channels=3)


@pytest.mark.parametrize("name", ["unet", "resnet-blocks"])
def test_resize_upsampling_option(name):
    torch.manual_seed(0)
    G = small_g(name, upsample="resize")
    x = torch.rand(2, 3, 16, 32) * 2 - 1
    assert G(x).shape == x.shape
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in small_g(name).modules())  # default: the papers'
    clone = build("generator", G.config)
    clone.load_state_dict(G.state_dict())
    assert clone.config["upsample"] == "resize" and torch.equal(G.eval()(x), clone.eval()(x))
    with pytest.raises(GancvError, match="upsample"):
        small_g(name, upsample="bilinear-ish")


@pytest.mark.parametrize("resnet", [False, True])
def test_transposed_conv_builds_in_a_checkerboard_and_resize_conv_does_not(resnet):
    # A flat input: a transposed stride-2 conv gives output pixels of different parity different
    # sums of kernel taps (Odena et al. 2016); nearest resize + conv gives every pixel the same taps.
    from gancv.models.translation import up_conv

    torch.manual_seed(0)
    flat = torch.ones(1, 4, 8, 8)
    for kind, expect_flat in (("transpose", False), ("resize", True)):
        layer = torch.nn.Sequential(*up_conv(4, 2, kind, bias=False, resnet=resnet))
        inner = layer(flat)[..., 2:-2, 2:-2]  # away from the zero-padded borders
        assert inner.shape[-1] == 12
        assert torch.allclose(inner, inner[..., :1, :1].expand_as(inner), atol=1e-6) == expect_flat


def test_nlayer_discriminator_spectral_norm_option():
    torch.manual_seed(0)
    D = build("discriminator", {"name": "nlayer", "n_layers": 2, "width": 8, "norm": "instance", "spectral_norm": True})
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    D.train()
    for _ in range(30):  # power iterations converge: every layer's largest singular value -> 1
        D(torch.rand(2, 3, 16, 16))
    sigma = torch.linalg.matrix_norm(convs[0].weight.flatten(1), ord=2)
    assert float(sigma.detach()) == pytest.approx(1.0, abs=0.05)
    clone = build("discriminator", D.config)
    clone.load_state_dict(D.state_dict())
    x = torch.rand(2, 3, 16, 16)
    assert clone.config["spectral_norm"] and torch.equal(D.eval()(x), clone.eval()(x))
    assert not any(hasattr(m, "parametrizations") for m in build("discriminator", {"name": "nlayer", "n_layers": 2}).modules())


def test_layer_norm_keeps_a_channel_offset_that_instance_norm_removes():
    from gancv.models.translation import norm_layer

    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    tint = x + torch.tensor([0.5, -0.5, 0.0, 0.0])[None, :, None, None]  # one offset per channel and image
    assert torch.allclose(norm_layer("instance")(4)(tint), norm_layer("instance")(4)(x), atol=1e-5)
    layer = norm_layer("layer")(4)
    assert not torch.allclose(layer(tint), layer(x), atol=1e-2)
    assert torch.allclose(layer(x + 0.5), layer(x), atol=1e-5)  # still per image: a common offset goes
    D = build("discriminator", {"name": "nlayer", "n_layers": 2, "width": 8, "norm": "layer"})
    assert D(torch.rand(2, 3, 16, 16)).shape == (2, 1, 2, 2) and not list(D.model[3].parameters())


@pytest.mark.parametrize("name", ["unet", "unet-256"])
def test_unet_pixel_skip_gives_a_full_resolution_colour_matrix(name):
    torch.manual_seed(0)
    G = small_g(name, residual=True, norm="none", dropout=False, pixel_skip=True).eval()
    plain = small_g(name, residual=True, norm="none", dropout=False).eval()
    assert plain.pixel_skip is None and not plain.config["pixel_skip"]
    plain.load_state_dict({k: v for k, v in G.state_dict().items() if not k.startswith("pixel_skip.")})
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(G(x), plain(x))  # zero-initialised: starts exactly where the U-Net without it does
    # with the U-Net's body zeroed, the output is x + W x per pixel: e.g. the luma, replicated, at full resolution
    last = [m for m in G.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    luma = torch.tensor([0.299, 0.587, 0.114]).expand(3, 3)
    with torch.no_grad():
        G.pixel_skip.weight.copy_((luma - torch.eye(3))[..., None, None])
    assert torch.allclose(G(x), (x * luma[0, :, None, None]).sum(1, keepdim=True).expand_as(x), atol=1e-6)
    clone = build("generator", G.config)
    clone.load_state_dict(G.state_dict())
    assert clone.config["pixel_skip"] and torch.equal(G(x), clone.eval()(x))


@pytest.mark.parametrize("name", ["unet", "unet-256"])
def test_unet_pixel_hidden_makes_the_pixel_skip_a_per_pixel_mlp(name):
    torch.manual_seed(0)
    G = small_g(name, residual=True, norm="none", dropout=False, pixel_skip=True, pixel_hidden=3).eval()
    plain = small_g(name, residual=True, norm="none", dropout=False).eval()
    plain.load_state_dict({k: v for k, v in G.state_dict().items() if not k.startswith("pixel_skip.")})
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(G(x), plain(x))  # zero-initialised output layer: starts where the U-Net without it does
    # with the body zeroed and both 1x1 convs the identity, G(x) = x + relu(x) per pixel: a nonlinear
    # per-pixel map (a plain pixel_skip can only add a linear one)
    last = [m for m in G.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    with torch.no_grad():
        G.pixel_skip[1].weight.copy_(torch.eye(3)[..., None, None]), G.pixel_skip[1].bias.zero_()
        G.pixel_skip[3].weight.copy_(torch.eye(3)[..., None, None])
    assert torch.allclose(G(x), x + x.clamp(min=0), atol=1e-6)
    clone = build("generator", G.config)
    clone.load_state_dict(G.state_dict())
    assert clone.config["pixel_hidden"] == 3 and torch.equal(G(x), clone.eval()(x))
    with pytest.raises(ValueError, match="pixel_skip"):
        small_g(name, residual=True, pixel_hidden=3)


def test_unet_pixel_kernel_gives_the_pixel_path_a_full_resolution_neighbourhood():
    torch.manual_seed(0)
    G = small_g("unet", residual=True, norm="none", dropout=False, pixel_skip=True, pixel_hidden=8, pixel_kernel=3).eval()
    last = [m for m in G.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)  # only x + the pixel path is left
    torch.nn.init.normal_(G.pixel_skip[-1].weight)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    y = x.clone()
    y[..., 5, 6] += 0.5  # one pixel changed: only it and its 8 neighbours change in G's output
    moved = (G(y) - G(x)).abs().sum(1)[0] > 1e-6
    assert moved[4:7, 5:8].all() and moved.sum() == 9
    with pytest.raises(ValueError, match="pixel_kernel"):
        small_g("unet", pixel_skip=True, pixel_kernel=3)  # a 3x3 first conv needs the hidden layer
