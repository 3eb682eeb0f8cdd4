"""Inference precision (auto/fp32/bf16) for translate, upscale and inpaint: resolution and agreement."""
import pytest
import torch

from gancv.errors import GancvError
from gancv.models import build
from gancv.tasks.inference import TranslationModel
from gancv.tasks.restoring import InpaintingModel, SuperResolutionModel
from gancv.training import precision as P

CPU = torch.device("cpu")


def test_inference_dtype_resolution(monkeypatch):
    assert P.inference_dtype("fp32", CPU) == torch.float32
    assert P.inference_dtype("bf16", CPU) == torch.bfloat16
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: False)
    assert P.inference_dtype("auto", CPU) == torch.float32  # emulated bf16 would be slower
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: True)
    assert P.inference_dtype("auto", CPU) == torch.bfloat16
    with pytest.raises(GancvError, match="use auto, fp32 or bf16"):
        P.inference_dtype("fp16", CPU)


def test_inference_copy_is_cached_and_leaves_the_fp32_weights_alone():
    G = build("generator", {"name": "resnet-6blocks", "width": 8})
    cache: dict = {}
    fast = P.inference_copy(G, torch.bfloat16, cache)
    assert fast is P.inference_copy(G, torch.bfloat16, cache)
    assert next(fast.parameters()).dtype == torch.bfloat16 and next(G.parameters()).dtype == torch.float32


def _grey_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


def test_translate_bf16_agrees_with_fp32():
    torch.manual_seed(0)
    G = build("generator", {"name": "resnet-6blocks", "width": 8})
    model = TranslationModel({"a2b": G}, {"task": "cyclegan", "data": {"image_size": 32}}, CPU)
    img = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    fp32, bf16 = model.translate(img, precision="fp32"), model.translate(img, precision="bf16")
    assert fp32.shape == bf16.shape == img.shape
    assert _grey_diff(fp32, bf16) < 3
    assert torch.equal(model.translate(img, precision="fp32"), fp32)  # the bf16 copy did not touch G


def test_upscale_and_inpaint_bf16_agree_with_fp32():
    torch.manual_seed(0)
    G = build("generator", {"name": "srresnet", "width": 8, "blocks": 2})
    for p in G.parameters():  # the last conv starts at zero (output = bicubic); make the body matter
        torch.nn.init.normal_(p, std=0.05)
    sr = SuperResolutionModel(G, {"channels": 3, "scale": 4}, CPU)
    img = torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8)
    assert _grey_diff(sr.upscale(img, precision="fp32"), sr.upscale(img, precision="bf16")) < 3
    inp = InpaintingModel(build("generator", {"name": "gated-inpaint", "width": 8}), {"channels": 3}, CPU)
    mask = torch.zeros(32, 40, dtype=torch.uint8)
    mask[8:20, 10:30] = 255
    photo = torch.randint(0, 256, (3, 32, 40), dtype=torch.uint8)
    a, b = inp.inpaint(photo, mask, precision="fp32"), inp.inpaint(photo, mask, precision="bf16")
    keep = (mask == 0).expand(3, -1, -1)
    assert torch.equal(a[keep], photo[keep]) and torch.equal(b[keep], photo[keep])  # known pixels exact in both
    assert _grey_diff(a[~keep], b[~keep]) < 3


def test_tiled_inpaint_runs_only_hole_tiles_and_keeps_known_pixels(monkeypatch):
    torch.manual_seed(0)
    inp = InpaintingModel(build("generator", {"name": "gated-inpaint", "width": 8}), {"channels": 3}, CPU)
    photo = torch.randint(0, 256, (3, 96, 160), dtype=torch.uint8)
    mask = torch.zeros(96, 160, dtype=torch.uint8)
    mask[70:90, 130:150] = 255
    shapes = []
    net = P.inference_copy(inp.generator, torch.float32, inp._fast)
    real_forward = net.forward
    monkeypatch.setattr(net, "forward", lambda *a: shapes.append(a[0].shape) or real_forward(*a))
    out = inp.inpaint(photo, mask, tile=48, overlap=8, precision="fp32")
    keep = (mask == 0).expand(3, -1, -1)
    assert torch.equal(out[keep], photo[keep]) and not torch.equal(out[~keep], photo[~keep])
    assert 1 <= len(shapes) <= 2  # of 3 x 5 tiles, only those touching the hole


def test_instance_norms_become_equivalent_group_norms():
    torch.manual_seed(0)
    G = build("generator", {"name": "resnet-6blocks", "width": 8}).eval()
    fast = P.inference_copy(G, torch.float32, {})
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in G.modules())  # the original is untouched
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in fast.modules())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(P.run_inference(fast, torch.float32, x), G(x), atol=1e-5)
