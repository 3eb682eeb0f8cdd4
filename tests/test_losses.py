import math

import pytest
import torch

from gancv.losses import LOSSES


@pytest.mark.parametrize("name", LOSSES.names())
def test_losses_are_pure_finite_and_differentiable(name):
    loss = LOSSES.get(name)
    real = torch.randn(8, requires_grad=True)
    fake = torch.randn(8, requires_grad=True)
    d1, d2 = loss.d_loss(real, fake), loss.d_loss(real, fake)
    assert torch.equal(d1, d2) and d1.dim() == 0 and torch.isfinite(d1)
    (d1 + loss.g_loss(fake)).backward()
    assert real.grad is not None and fake.grad is not None


@pytest.mark.parametrize("name", LOSSES.names())
def test_d_loss_prefers_correct_discriminator(name):
    loss = LOSSES.get(name)
    good = loss.d_loss(torch.full((4,), 3.0), torch.full((4,), -3.0))
    bad = loss.d_loss(torch.full((4,), -3.0), torch.full((4,), 3.0))
    assert good < bad
    assert loss.g_loss(torch.full((4,), 3.0)) < loss.g_loss(torch.full((4,), -3.0))


def test_bce_is_the_minmax_value():
    loss = LOSSES.get("bce")
    # At D = 1/2 everywhere (logit 0) the discriminator loss is 2 log 2 (Goodfellow et al., Thm 1).
    assert math.isclose(loss.d_loss(torch.zeros(5), torch.zeros(5)).item(), 2 * math.log(2), rel_tol=1e-6)


def test_bce_is_safe_for_extreme_logits():
    loss = LOSSES.get("bce")
    x = torch.tensor([1e4, -1e4])
    assert torch.isfinite(loss.d_loss(x, x)) and torch.isfinite(loss.g_loss(x))
