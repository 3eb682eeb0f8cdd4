import pytest
import torch

from gancv.augment import AUGMENTS, AdaptiveP, augment, parse_policy
from gancv.errors import GancvError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", AUGMENTS.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_each_op_keeps_shape_is_seeded_and_differentiable(name, channels):
    op = AUGMENTS.get(name)
    x = torch.rand(4, channels, 16, 16, requires_grad=True)
    a, b = op(x, gen(1)), op(x, gen(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, op(x, gen(2)))  # the randomness comes from the generator passed in
    a.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_is_a_pure_shift_with_zero_fill():
    x = torch.arange(64.0).view(1, 1, 8, 8) + 1
    out = AUGMENTS.get("translation")(x, gen(3))
    # Every non-zero output pixel is an input pixel, and the shifted block is contiguous.
    kept = out[out != 0]
    assert set(kept.tolist()) <= set(x.flatten().tolist())
    assert int((out == 0).sum()) in {0, 8, 15, 16}  # at most one row and one column shift of 1 px for 8 px


def test_cutout_zeros_a_square_of_half_the_size():
    x = torch.ones(16, 1, 16, 16)
    out = AUGMENTS.get("cutout")(x, gen(4))
    zeros = (out == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and zeros.min() >= 16  # 8x8, clipped at the border


def test_policy_parsing_and_unknown_op():
    assert parse_policy("color,translation, cutout") == ["color", "translation", "cutout"]
    with pytest.raises(GancvError, match="unknown op 'flip'"):
        parse_policy("color,flip")


def test_probability_zero_is_identity_and_one_applies_all():
    x = torch.rand(8, 3, 16, 16)
    assert torch.equal(augment(x, ["color", "cutout"], gen(), torch.tensor(0.0)), x)
    assert torch.equal(augment(x, ["cutout"], gen(5), 1.0), AUGMENTS.get("cutout")(x, gen(5)))


def test_adaptive_p_moves_towards_target():
    ada = AdaptiveP(target=0.6, batch_size=100, device=torch.device("cpu"), interval=2, speed_kimg=1.0)
    for _ in range(4):  # D is confident on reals: r_t = 1 > 0.6, so p rises by 0.2 per interval
        ada.observe(torch.ones(10))
    assert ada.p.item() == pytest.approx(0.4)
    for _ in range(10):  # D unsure: r_t = -1 < 0.6, p falls and stops at 0
        ada.observe(-torch.ones(10))
    assert ada.p.item() == 0.0
    state = ada.state_dict()
    other = AdaptiveP(0.6, 100, torch.device("cpu"), 2, 1.0)
    other.load_state_dict(state)
    assert other.p == ada.p and other.count == ada.count
