"""The fast path (training/precision.py): each switch stays within tolerance of plain fp32."""
import json
import warnings

import pytest
import torch

from gancv.cli import main
from gancv.config import make_config
from gancv.errors import GancvError
from gancv.training import precision
from gancv.training.loop import Trainer

PLAIN = ["amp=off", "matmul_precision=highest", "channels_last=off", "fused_optim=off", "compile=off", "cuda_graph=off"]
MLP_NO_BN = ["generator.name=mlp", "generator.hidden=[32,64]", "generator.batchnorm=false",
             "discriminator.name=mlp", "discriminator.hidden=[64,32]", "discriminator.dropout=0.0"]


def run_steps(tmp_path, overrides, steps=3, name="r"):
    cfg = make_config(None, overrides)
    trainer = Trainer(cfg, tmp_path / name)
    losses = []
    for _ in range(steps):
        losses.append({k: float(v) for k, v in trainer.train_step().items()})
    weights = {f"{n}.{k}": v.detach().float().clone() for n, net in trainer.networks.items()
               for k, v in net.state_dict().items() if v.is_floating_point()}
    return trainer, losses, weights


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(precision, "_warned", set())


# (switch, loss rtol, mean |weight diff| bound): fp32 switches only reorder float sums; bf16 keeps
# 8 mantissa bits in the networks, so its losses agree to ~1e-2. Adam moves every weight by ~lr
# per step whatever the gradient's size, so weights are compared by their mean difference.
SWITCHES = [
    (["channels_last=on"], 1e-4, 1e-6),
    (["fused_optim=on"], 1e-4, 1e-6),
    (["amp=bf16"], 3e-2, 1e-4),
    (["grad_checkpoint=true"], 1e-4, 1e-6),
    (["amp=bf16", "channels_last=on", "fused_optim=on"], 3e-2, 1e-4),
]


@pytest.mark.parametrize("switch,rtol,wtol", SWITCHES, ids=["+".join(s[0]) for s in SWITCHES])
def test_each_switch_matches_plain_fp32(tiny_overrides, tmp_path, switch, rtol, wtol):
    _, plain_losses, plain_w = run_steps(tmp_path, tiny_overrides + PLAIN, name="plain")
    _, fast_losses, fast_w = run_steps(tmp_path, tiny_overrides + PLAIN + switch, name="fast")
    for a, b in zip(plain_losses, fast_losses):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=rtol, abs=rtol), (switch, key)
    for key in plain_w:
        diff = (plain_w[key] - fast_w[key]).abs().mean().item()
        assert diff <= wtol, (switch, key, diff)


def test_matmul_precision_medium_matches_fp32_and_holds_only_during_the_step(tiny_overrides, tmp_path, monkeypatch):
    # An MLP: all of its FLOPs are matmuls, which is where the switch acts.
    mlp = tiny_overrides + PLAIN + MLP_NO_BN
    seen = []
    step = Trainer._step
    monkeypatch.setattr(Trainer, "_step", lambda self, b: seen.append(torch.get_float32_matmul_precision()) or step(self, b))
    _, plain_losses, plain_w = run_steps(tmp_path, mlp, name="plain")
    before = torch.get_float32_matmul_precision()
    trainer, fast_losses, fast_w = run_steps(tmp_path, mlp + ["matmul_precision=medium"], name="fast")
    assert seen == ["highest"] * 3 + ["medium"] * 3
    assert torch.get_float32_matmul_precision() == before == "highest"  # sampling, metrics, other code untouched
    assert "'medium' precision" in trainer.plan.describe()
    for a, b in zip(plain_losses, fast_losses):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=3e-2, abs=3e-2), key
    for key in plain_w:
        assert (plain_w[key] - fast_w[key]).abs().mean().item() <= 1e-4, key


@pytest.mark.parametrize("bf16_units,min_params,expected", [(True, 0, "medium"), (False, 0, "highest"),
                                                            (True, 10**9, "highest")],
                         ids=["bf16-cpu", "no-bf16-units", "small-network"])
def test_matmul_precision_auto_on_cpu(tiny_overrides, tmp_path, monkeypatch, bf16_units, min_params, expected):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: bf16_units)
    monkeypatch.setattr(precision, "MATMUL_MEDIUM_MIN_PARAMS", min_params)
    trainer, _, _ = run_steps(tmp_path, tiny_overrides, steps=1)
    assert trainer.plan.matmul_precision == expected
    with pytest.raises(GancvError, match="matmul_precision='low' is not one of auto, highest, high, medium"):
        make_config(None, tiny_overrides + ["matmul_precision=low"])


def test_auto_plan_on_cpu(tiny_overrides, tmp_path):
    trainer, _, _ = run_steps(tmp_path, tiny_overrides, steps=1)
    plan = trainer.plan
    assert plan.device == "cpu" and not plan.cuda_graph and not plan.compile  # CUDA-only / not worth it on CPU
    assert plan.fused_optim and plan.channels_last  # measured to help on CPU (docs/benchmarks.md)
    assert all(o.param_groups[0]["fused"] for o in trainer.optimizers.values())
    explicit = make_config(None, tiny_overrides + ["cuda_graph=on"])
    with pytest.warns(UserWarning, match="cuda_graph=on needs a CUDA device"):
        Trainer(explicit, tmp_path / "graph")


@pytest.mark.parametrize("name,extra", [("dcgan", {"width": 8}), ("resnet", {"width": 8}), ("stylegan", {})])
def test_grad_checkpointing_gives_the_same_gradients_and_statistics(name, extra):
    from gancv.models import build

    torch.manual_seed(0)
    G = build("generator", {"name": name, "shape": [1, 16, 16], "z_dim": 8, **extra})
    G_ckpt = build("generator", G.config)
    G_ckpt.load_state_dict(G.state_dict())
    assert precision.enable_grad_checkpointing(G_ckpt)
    z = torch.randn(4, 8)
    for net in (G, G_ckpt):
        torch.manual_seed(1)  # StyleGAN's per-layer noise: the same draws for both
        net(z).square().mean().backward()
    for (key, a), b in zip(G.named_parameters(), G_ckpt.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=key)
    for (key, a), b in zip(G.named_buffers(), G_ckpt.buffers()):  # BatchNorm statistics moved once
        torch.testing.assert_close(b, a, msg=key)


class _Boom(torch.autograd.Function):
    """Identity whose backward fails, like an inductor backward that does not compile."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward compilation failed (simulated)")


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_compile_failure_falls_back_to_eager_with_one_warning(tiny_overrides, tmp_path, monkeypatch, where):
    def broken_compile(fn, mode=None):
        def compiled(*args, **kwargs):
            if where == "forward":
                raise RuntimeError("inductor exploded (simulated)")
            return _Boom.apply(fn(*args, **kwargs))
        return compiled

    _, _, eager_w = run_steps(tmp_path, tiny_overrides + PLAIN, name="eager")
    monkeypatch.setattr(torch, "compile", broken_compile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, _, compiled_w = run_steps(tmp_path, tiny_overrides + PLAIN + ["compile=on"], name="compiled")
    failures = [w for w in caught if "torch.compile failed" in str(w.message)]
    assert len(failures) == 1, [str(w.message) for w in caught]
    assert all(c.failed for c in trainer.compiled)
    for key in eager_w:  # the failed first step was undone and redone eagerly: the same training
        assert torch.equal(eager_w[key], compiled_w[key]), key


def test_bad_switch_values_and_batch_split(tiny_overrides, tmp_path):
    with pytest.raises(GancvError, match="amp='fp16' is not one of"):
        make_config(None, tiny_overrides + ["amp=fp16"])
    with pytest.raises(GancvError, match="does not split over 1 process"):
        Trainer(make_config(None, tiny_overrides + ["grad_accum=3"]), tmp_path / "x")


def test_grad_accum_trains(tiny_overrides, tmp_path):
    trainer, losses, _ = run_steps(tmp_path, tiny_overrides + ["grad_accum=2"], steps=2)
    assert trainer.stream.micro == 8 and trainer.stream.pos == 2 * 2 * 16  # 2 steps x (D, G) x global batch
    assert all(torch.isfinite(torch.tensor(list(row.values()))).all() for row in losses)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
@pytest.mark.parametrize("args", [["train", "--device", "cuda", "steps=1"],
                                  ["benchmark", "throughput", "--quick", "--device", "cuda"]])
def test_cuda_without_gpu_exits_2(capsys, args):
    assert main(args) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_benchmark_rejects_foreign_options(capsys):
    assert main(["benchmark", "demo-digits", "--batch", "8"]) == 2
    assert "does not take --batch" in capsys.readouterr().err


@pytest.mark.slow
def test_throughput_benchmark_quick_json(capsys):
    code = main(["benchmark", "throughput", "--quick", "--device", "cpu", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["benchmark"] == "throughput" and result["torch"] == torch.__version__
    assert [c["model"] for c in result["cases"]] == ["dcgan", "mlp"]
    for case in result["cases"]:
        assert case["gflop_per_step"] > 0 and case["reference"]["img_per_s"] > 0 and case["ours"]["img_per_s"] > 0
        assert case["speedup"] == pytest.approx(case["ours"]["img_per_s"] / case["reference"]["img_per_s"], rel=1e-2)
        assert case["reference"]["frac_of_peak"] is None  # CPU peak unknown


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: the GPU script runs these")
@pytest.mark.parametrize("switch", [["cuda_graph=on"], ["compile=on"], ["amp=bf16", "channels_last=on", "fused_optim=on"]])
def test_cuda_fast_path_matches_plain(tiny_overrides, tmp_path, switch):
    cuda = [o for o in tiny_overrides if not o.startswith("device=")] + ["device=cuda"]
    _, plain_losses, plain_w = run_steps(tmp_path, cuda + PLAIN, steps=6, name="plain")
    trainer, fast_losses, fast_w = run_steps(tmp_path, cuda + PLAIN + switch, steps=6, name="fast")
    if "cuda_graph=on" in switch:
        assert trainer._graph is not None and trainer._graph.graph is not None, "the step was not captured"
    for a, b in zip(plain_losses, fast_losses):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=3e-2, abs=3e-2), (switch, key)
    for key in plain_w:
        assert (plain_w[key] - fast_w[key]).abs().mean().item() <= 2e-4, key
