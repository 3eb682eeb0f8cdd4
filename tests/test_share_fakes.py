"""share_fakes: G steps first and D judges the very same fakes (the classic MLP GAN recipe);
joint_d_forward: D judges real and fake in one forward where that is exact."""
import pytest
import torch

from gancv.config import make_config
from gancv.errors import GancvError
from gancv.training.loop import Trainer

MLP = ["generator.name=mlp", "generator.hidden=[16,32]", "discriminator.name=mlp", "discriminator.hidden=[32,16]"]
SEPARATE_D = "joint_d_forward=false"  # the call-order tests below count D's real and fake forwards


@pytest.fixture
def trainer(tiny_overrides):
    def make(tmp_path, *extra):
        return Trainer(make_config(None, [*tiny_overrides, *MLP, *extra]), tmp_path / "run")
    return make


def record_calls(tr):
    """G's outputs and D's inputs, in call order, over the next training step."""
    calls = []
    hooks = [tr.task.G.register_forward_hook(lambda m, i, o: calls.append(("G", o.detach().clone()))),
             tr.task.D.register_forward_hook(lambda m, i, o: calls.append(("D", i[0].detach().clone())))]
    return calls, hooks


@pytest.mark.parametrize("share", [False, True])
def test_one_generator_forward_per_step_and_d_judges_those_fakes(share, trainer, tmp_path):
    tr = trainer(tmp_path, f"share_fakes={str(share).lower()}", SEPARATE_D)
    tr.train_step()
    calls, hooks = record_calls(tr)
    tr.train_step()
    for h in hooks:
        h.remove()
    names = [n for n, _ in calls]
    if not share:  # D first on fresh no-grad fakes, then G draws its own
        assert names == ["G", "D", "D", "G", "D"]
        assert not torch.equal(calls[0][1], calls[3][1])
        return
    assert names == ["G", "D", "D", "D"]  # G phase: G, D(fake); D phase: D(real), D(the same fake)
    fake = calls[0][1]
    assert torch.equal(calls[3][1].reshape(fake.shape), fake)
    assert not torch.equal(calls[2][1].reshape(fake.shape), fake)  # the real batch


def test_share_fakes_is_deterministic_and_changes_training(trainer, tmp_path):
    def weights(name, *extra):
        tr = trainer(tmp_path / name, *extra)
        for _ in range(4):
            tr.train_step()
        return torch.cat([p.detach().flatten() for p in tr.task.G.parameters()])

    a, b = weights("a", "share_fakes=true"), weights("b", "share_fakes=true")
    assert torch.equal(a, b)
    assert not torch.allclose(a, weights("c", "share_fakes=false"))


def test_conditional_d_sees_the_labels_the_fakes_were_drawn_for(trainer, tmp_path):
    tr = trainer(tmp_path, "share_fakes=true", "conditional=true", SEPARATE_D)
    seen = []
    run_d = tr.task.run_D
    tr.task.run_D = lambda x, labels: (seen.append((x.detach().clone(), labels)), run_d(x, labels))[1]
    g_labels = []
    fake = tr.task.fake
    tr.task.fake = lambda n, labels, z=None: (g_labels.append(labels), fake(n, labels, z))[1]
    tr.train_step()
    assert len(g_labels) == 1 and len(seen) == 3  # G(fake); D(real), D(shared fake)
    assert torch.equal(seen[0][1], g_labels[0]) and torch.equal(seen[2][1], g_labels[0])


@pytest.mark.parametrize("extra, words", [
    (["n_critic=2"], "n_critic=2"),
    (["conditional=true", "loss=wasserstein", "gp_weight=10"], "gp_weight=0"),
])
def test_incompatible_settings_are_refused(extra, words, trainer, tmp_path):
    with pytest.raises(GancvError, match=words):
        trainer(tmp_path, "share_fakes=true", *extra)


@pytest.mark.parametrize("extra", [[], ["conditional=true"], ["pack=2"]], ids=["plain", "conditional", "pack2"])
def test_joint_d_forward_is_one_call_with_the_same_logits(extra, trainer, tmp_path):
    # fp32 matmuls: bf16 products would round differently at another batch size
    tr = trainer(tmp_path, "share_fakes=true", "discriminator.dropout=0.0", "matmul_precision=highest", *extra)
    assert tr.task.joint_d
    seen = []
    run_d = tr.task.run_D
    tr.task.run_D = lambda x, labels: (seen.append((x.detach().clone(), labels)), run_d(x, labels))[1]
    logged = tr.train_step()
    (x_g, _), (x_d, labels) = seen  # G phase: D(fake); D phase: one D(real + the same fake)
    n = x_g.shape[0]
    assert x_d.shape[0] == 2 * n and torch.equal(x_d[n:], x_g.detach())
    if "conditional=true" in extra:
        assert labels.shape[0] == 2 * n
    # The logged D means are those of two separate forwards (the D step's weights: before its update).
    tr2 = trainer(tmp_path / "b", "share_fakes=true", "discriminator.dropout=0.0", "matmul_precision=highest",
                  SEPARATE_D, *extra)
    logged2 = tr2.train_step()
    for key in ("d_real", "d_fake", "d_loss", "g_loss"):
        assert float(logged[key]) == pytest.approx(float(logged2[key]), rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("extra", [["discriminator.spectral_norm=true"], ["discriminator.name=dcgan", "discriminator.width=8"]],
                         ids=["spectral-norm", "batchnorm"])
def test_joint_d_forward_is_off_where_it_would_change_the_maths(extra, trainer, tmp_path):
    assert not trainer(tmp_path, *extra).task.joint_d
    assert not trainer(tmp_path / "off", SEPARATE_D).task.joint_d
