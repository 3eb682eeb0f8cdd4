import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancv.errors import GancvError
from gancv.tiling import pad_to_multiple, tiled_apply


def conv_net(scale: int = 1) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)]
    if scale > 1:
        layers.append(nn.Upsample(scale_factor=scale, mode="nearest"))
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (100, 30)])
def test_tiled_equals_untiled_away_from_tile_edges(scale, size):
    net = conv_net(scale)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        full = net(x)
    tiled = tiled_apply(net, x, tile=24, overlap=8, scale=scale)
    assert tiled.shape == full.shape
    # The receptive field is 5 px, smaller than the overlap: blending identical values is exact.
    assert torch.allclose(tiled, full, atol=1e-5)


def test_padding_restores_original_size():
    x = torch.rand(2, 3, 13, 22)
    padded, (h, w) = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (16, 24) and (h, w) == (13, 22)
    out = tiled_apply(lambda t: t * 2, x, tile=16, overlap=4, multiple=8)
    assert out.shape == x.shape and torch.allclose(out, x * 2)


def test_wrong_output_size_is_reported():
    with pytest.raises(GancvError, match="expected scale 2"):
        tiled_apply(lambda t: t, torch.rand(1, 3, 16, 16), tile=8, overlap=2, scale=2)


def test_bad_tiling_arguments():
    with pytest.raises(GancvError):
        tiled_apply(lambda t: t, torch.rand(1, 3, 16, 16), tile=8, overlap=4)
    with pytest.raises(GancvError):
        tiled_apply(lambda t: t, torch.rand(3, 16, 16))


def test_single_tile_image_is_plain_call():
    x = torch.rand(1, 3, 10, 10)
    assert torch.allclose(tiled_apply(lambda t: F.avg_pool2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), 3, 1), x, tile=64, overlap=8),
                          F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1))


def test_tile_count():
    from gancv.tiling import tile_count

    assert tile_count(10, 10, 64, 8) == 1
    assert tile_count(100, 30, 24, 8) == 6 * 2


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gancv.tiling import _layout  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 3000), tile=st.integers(16, 600), overlap=st.integers(0, 60),
       multiple=st.sampled_from([1, 4, 8]))
def test_layout_covers_the_axis_with_enough_overlap(length, tile, overlap, multiple):
    tile = max(multiple, tile - tile % multiple)
    if 2 * overlap >= tile:
        return
    length = -(-length // multiple) * multiple  # tiled_apply pads to the multiple first
    size, starts = _layout(length, tile, overlap, multiple)
    assert starts[0] == 0 and starts[-1] + size == length
    assert size <= max(tile, length if length <= tile else 0)
    if length > tile:
        assert size % multiple == 0
        assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))  # neighbours overlap enough
        # Balanced: no more tiles than a fixed stride would use, and little recomputation.
        assert len(starts) == -(-(length - overlap) // (tile - overlap))
        assert len(starts) * size <= length + len(starts) * (overlap + multiple)


def test_balanced_tiles_for_a_1024x768_photo():
    # The fixed-stride layout ran six 512x512 tiles (2x the pixels); balanced tiles cost ~1.1x.
    (tw, lefts), (th, tops) = _layout(1024, 512, 32, 4), _layout(768, 512, 32, 4)
    assert len(lefts) * len(tops) == 6 and len(lefts) * tw * len(tops) * th < 1.12 * 1024 * 768


def test_needed_map_skips_tiles_and_matches_where_needed():
    net = conv_net()
    x = torch.rand(1, 3, 64, 96)
    needed = torch.zeros(64, 96, dtype=torch.bool)
    needed[4:10, 5:12] = True  # only the top-left corner matters
    calls = []

    def counting(t):
        calls.append(t.shape)
        return net(t)

    with torch.no_grad():
        full = net(x)
    out = tiled_apply(counting, x, tile=24, overlap=8, needed=needed)
    assert len(calls) == 1  # one of 4 x 6 tiles touches the needed pixels
    assert torch.allclose(out[..., 4:10, 5:12], full[..., 4:10, 5:12], atol=1e-5)
    with pytest.raises(GancvError, match="all False"):
        tiled_apply(net, x, tile=24, overlap=8, needed=torch.zeros(64, 96, dtype=torch.bool))
