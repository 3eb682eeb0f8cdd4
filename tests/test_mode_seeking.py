"""MSGAN mode seeking: the loss's maths, and the G step pairing samples of one class."""
import pytest
import torch

from gancv.config import make_config
from gancv.errors import GancvError
from gancv.losses import mode_seeking_loss
from gancv.training.loop import Trainer


def test_mode_seeking_loss_is_the_inverse_distance_ratio():
    za, zb = torch.zeros(4, 8), torch.full((4, 8), 2.0)      # mean |za - zb| = 2
    fa, fb = torch.zeros(4, 1, 3, 3), torch.ones(4, 1, 3, 3)  # mean |fa - fb| = 1
    assert mode_seeking_loss(fa, fb, za, zb, eps=0.0).item() == pytest.approx(2.0)
    # Collapse (two latents, one image) costs far more than distinct images do.
    collapsed = mode_seeking_loss(fa, fa.clone(), za, zb)
    assert collapsed.item() == pytest.approx(1e5) and collapsed > mode_seeking_loss(fa, 3 * fb, za, zb)


def test_mode_seeking_gradient_pushes_paired_images_apart():
    fa = torch.zeros(2, 1, 2, 2, requires_grad=True)
    fb = torch.full((2, 1, 2, 2), 0.5)
    mode_seeking_loss(fa, fb, torch.zeros(2, 4), torch.ones(2, 4)).backward()
    assert (fa.grad > 0).all()  # descending moves fa away from fb (which is above it)


def test_g_step_pairs_same_class_latents_and_logs_the_term(tiny_overrides, tmp_path):
    tr = Trainer(make_config(None, [*tiny_overrides, "conditional=true", "mode_seeking=1"]), tmp_path / "run")
    seen = []
    fake = tr.task.fake
    tr.task.fake = lambda n, labels, z=None: (seen.append((labels, z)), fake(n, labels, z))[1]
    logs = tr.task.g_step((torch.randn(16, 1, 16, 16), torch.arange(16) % 10))
    labels, z = seen[-1]
    half = len(labels) // 2
    assert torch.equal(labels[:half], labels[half:2 * half]) and not torch.equal(z[:half], z[half:2 * half])
    assert "mode_seeking" in logs and torch.isfinite(logs["mode_seeking"]) and logs["mode_seeking"] > 0


def test_negative_weight_is_refused(tiny_overrides, tmp_path):
    with pytest.raises(GancvError, match="mode_seeking"):
        Trainer(make_config(None, [*tiny_overrides, "mode_seeking=-1"]), tmp_path / "run")
