"""``gancv benchmark throughput``: images/s of a full D+G training step, ours against the reference.

Both paths train the *same* gancv networks (same constructor config, same initial weights):

- reference: the classic DCGAN recipe exactly as ``shared/bench/reference_step_throughput.py``
  measures it -- fp32, eager, unfused Adam, ``Sigmoid`` + ``BCELoss``, pre-made batches already
  on the device, cuDNN autotuning off;
- ours: gancv's own ``Trainer.train_step`` with the run's fast path (``auto`` switches, or the
  ``--set key=value`` overrides), data drawn from the resident training stream each step.

Timing as in the reference script: warm-up steps, then ``iters`` steps between two device
synchronisations. The two paths alternate in rounds inside one process, so a busy machine
slows both alike; the reported figure is the median round. FLOPs of one step are counted
with ``torch.utils.flop_counter`` (the same count serves both paths: same model, same math).
"""
from __future__ import annotations

import contextlib
import math
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from . import BENCHMARKS
from ..errors import GancvError

# Dense peak FLOP/s (bf16 tensor cores, plain fp32) by GPU name fragment, from vendor data sheets.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (989.0, 67.0),
    "H100 PCIe": (756.0, 51.0),
    "H100": (989.0, 67.0),
    "A100": (312.0, 19.5),
    "L40S": (362.0, 91.6),
    "L4": (121.0, 30.3),
    "A10": (125.0, 31.2),
    "RTX 4090": (165.2, 82.6),
    "RTX 3090": (71.0, 35.6),
    "V100": (0.0, 15.7),
    "T4": (0.0, 8.1),
}

# Each model is benchmarked at the reference's size: DCGAN-64 RGB (width 64, z 100) and the
# classic MLP GAN on 28 px gray. Other registered generators get a 32 px RGB set-up. Ours runs
# with share_fakes (the reference's recipe: D and G judge one fake batch per step), so both
# paths do the same maths and the FLOP count below holds for both.
MODELS: dict[str, dict[str, Any]] = {
    "dcgan": {"image_size": 64, "channels": 3, "generator": {"name": "dcgan", "width": 64},
              "discriminator": {"name": "dcgan", "width": 64}},
    "mlp": {"image_size": 28, "channels": 1, "generator": {"name": "mlp"}, "discriminator": {"name": "mlp"}},
}
QUICK_MODELS: dict[str, dict[str, Any]] = {
    "dcgan": {"image_size": 16, "channels": 1, "generator": {"name": "dcgan", "width": 8},
              "discriminator": {"name": "dcgan", "width": 8}},
    "mlp": {"image_size": 16, "channels": 1, "generator": {"name": "mlp", "hidden": [32, 64]},
            "discriminator": {"name": "mlp", "hidden": [64, 32]}},
}
# (model, batch) pairs: the reference figures and the goals of the speed issue.
GPU_CASES = [("dcgan", 128), ("dcgan", 1024), ("mlp", 64)]
CPU_CASES = [("dcgan", 16), ("mlp", 64)]
QUICK_CASES = [("dcgan", 8), ("mlp", 16)]


def peak_tflops(device: torch.device) -> tuple[float | None, float | None, str]:
    """(bf16, fp32) dense peak TFLOP/s of the device, None where unknown (CPUs, unlisted GPUs)."""
    if device.type != "cuda":
        return None, None, "cpu"
    name = torch.cuda.get_device_name(device)
    for fragment, (bf16, fp32) in PEAK_TFLOPS.items():
        if fragment in name:
            return (bf16 or None), fp32, name
    return None, None, name


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _reference_backend_flags() -> Iterator[None]:
    # The reference script leaves cuDNN autotuning at torch's default (off); ours turns it on.
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def reference_step(G: nn.Module, D: nn.Module, z_dim: int, device: torch.device) -> Callable[[torch.Tensor], Any]:
    """The classic recipe's D+G step (reference_step_throughput.py, fp32 path)."""
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False, fused=False)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False, fused=False)
    bce = nn.BCELoss()

    def step(real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = real.size(0)
        opt_d.zero_grad(set_to_none=True)
        fake = G(torch.randn(b, z_dim, device=device))
        pr, pf = torch.sigmoid(D(real)), torch.sigmoid(D(fake.detach()))
        loss_d = 0.5 * (bce(pr, torch.ones_like(pr)) + bce(pf, torch.zeros_like(pf)))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        pg = torch.sigmoid(D(fake))
        loss_g = bce(pg, torch.ones_like(pg))
        loss_g.backward()
        opt_g.step()
        return loss_d.detach(), loss_g.detach()

    return step


def _timed(fn: Callable[[int], Any], iters: int, device: torch.device) -> float:
    _sync(device)
    t = time.perf_counter()
    for i in range(iters):
        fn(i)
    _sync(device)
    return time.perf_counter() - t


def _peak_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def run_case(model: str, batch: int, device: torch.device, *, quick: bool, overrides: list[str],
             iters: int, warm: int, rounds: int, log: Callable[[str], None], min_round_s: float = 0.0) -> dict[str, Any]:
    from ..config import make_config
    from ..models import GENERATORS, DISCRIMINATORS, build
    from ..training.loop import Trainer

    table = QUICK_MODELS if quick else MODELS
    if model in table:
        setup = table[model]
    elif model in GENERATORS.names():
        setup = {"image_size": 32, "channels": 3, "generator": {"name": model},
                 "discriminator": {"name": model if model in DISCRIMINATORS.names() else "dcgan"}}
    else:
        raise GancvError(f"--model {model!r} is not a registered generator; choose one of {', '.join(GENERATORS.names())}")
    base = {
        "data": "digits", "image_size": setup["image_size"], "channels": setup["channels"],
        "generator": dict(setup["generator"]), "discriminator": dict(setup["discriminator"]), "batch_size": batch,
        "device": str(device), "progress": False, "ema_kimg": 0.0, "steps": 10**9, "seed": 0, "share_fakes": True,
    }
    cfg = make_config(None, _deep_merge(base, _dotlist(overrides)))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer = Trainer(cfg, Path(tmp) / "run")
        shape = tuple(trainer.bundle.shape)
        batch = trainer.stream.batch_size  # a data set smaller than the batch shrinks it
        torch.manual_seed(0)
        # The reference trains a fresh copy of the same networks, built from the same configs.
        G = build("generator", trainer.task.G.config).to(device)
        D = build("discriminator", trainer.task.D.config).to(device)
        G.load_state_dict(trainer.task.G.state_dict())
        D.load_state_dict(trainer.task.D.state_dict())
        ref = reference_step(G, D, cfg.z_dim, device)
        real = [torch.rand(batch, *shape, device=device).mul_(2).sub_(1) for _ in range(4)]

        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with _reference_backend_flags(), counter:
            ref(real[0])
        flops = counter.get_total_flops()

        with _reference_backend_flags():
            ref_warm = _timed(lambda i: ref(real[i % 4]), warm, device)
        _timed(lambda i: trainer.train_step(), warm, device)
        # Rounds of at least min_round_s: 5 steps of a 15 ms MLP step are 75 ms, where one
        # scheduler hiccup moves the ratio by 30 %; a slow DCGAN step keeps the given iters.
        iters = max(iters, math.ceil(min_round_s * warm / max(ref_warm, 1e-9)))
        setup_s = time.perf_counter() - t0
        ref_s, ours_s = [], []
        ref_mem = ours_mem = None
        for _ in range(rounds):
            _reset_peak(device)
            with _reference_backend_flags():
                ref_s.append(_timed(lambda i: ref(real[i % 4]), iters, device))
            ref_mem = _peak_mb(device)
            _reset_peak(device)
            ours_s.append(_timed(lambda i: trainer.train_step(), iters, device))
            ours_mem = _peak_mb(device)
        plan = trainer.plan.as_dict()
        compile_fell_back = any(c.failed for c in trainer.compiled)
        graph = trainer._graph
        graph_used = graph is not None and graph.graph is not None
    bf16_peak, fp32_peak, name = peak_tflops(device)

    def figures(seconds: list[float], peak: float | None, mem: float | None) -> dict[str, Any]:
        dt = statistics.median(seconds)
        achieved = flops * iters / dt / 1e12
        return {"img_per_s": round(iters * batch / dt, 1), "ms_per_step": round(1000 * dt / iters, 3),
                "tflops_achieved": round(achieved, 4),
                "frac_of_peak": round(achieved / peak, 4) if peak else None,
                "frac_of_bf16_peak": round(achieved / bf16_peak, 4) if bf16_peak else None,
                "peak_mem_mb": mem, "rounds_img_per_s": [round(iters * batch / s, 1) for s in seconds]}

    ours_peak = bf16_peak if plan["amp"] else fp32_peak
    result = {"model": model, "image_size": shape[-1] if len(shape) == 3 else None, "shape": list(shape),
              "batch": batch, "gflop_per_step": round(flops / 1e9, 3), "iters": iters, "warmup": warm,
              "rounds": rounds, "setup_s": round(setup_s, 1),
              "reference": figures(ref_s, fp32_peak, ref_mem),
              "ours": {**figures(ours_s, ours_peak, ours_mem), "plan": plan,
                       "compile_fell_back": compile_fell_back, "cuda_graph_captured": graph_used},
              "device_name": name}
    result["speedup"] = round(result["ours"]["img_per_s"] / result["reference"]["img_per_s"], 3)
    if model == "mlp" and len(shape) == 3 and shape[-1] == 28:
        result["seconds_per_mnist_epoch"] = round(60000 / result["ours"]["img_per_s"], 3)
    log(f"throughput {model} b{batch}: reference {result['reference']['img_per_s']} img/s, "
        f"ours {result['ours']['img_per_s']} img/s, x{result['speedup']}")
    return result


def _dotlist(items: list[str]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from ..config import parse_overrides

    return OmegaConf.to_container(OmegaConf.from_dotlist(parse_overrides(items))) if items else {}  # type: ignore[return-value]


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _goals(cases: list[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
    goals = []
    for case in cases:
        model, batch, speedup = case["model"], case["batch"], case["speedup"]
        if device.type == "cpu":
            goals.append({"goal": f"{model} b{batch}: ours >= 1.5x reference on CPU", "value": speedup,
                          "met": speedup >= 1.5})
        elif model == "dcgan" and batch == 128:
            goals.append({"goal": "dcgan-64 b128: ours >= 3x reference", "value": speedup, "met": speedup >= 3})
        elif model == "dcgan" and batch == 1024:
            frac = case["ours"]["frac_of_bf16_peak"]
            goals.append({"goal": "dcgan-64 b1024: >= 35% of bf16 peak", "value": frac,
                          "met": frac is not None and frac >= 0.35})
        elif model == "mlp" and batch == 64:
            goals.append({"goal": "mlp b64: ours >= 10x reference", "value": speedup, "met": speedup >= 10})
    return goals


@BENCHMARKS.register("throughput", description="images/s of a full D+G step: gancv's fast path vs the classic "
                                               "fp32 eager reference, same process (--model, --batch, --set)")
def throughput(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None,
               model: str | None = None, batch: int | None = None, overrides: list[str] | None = None) -> dict:
    from ..device import resolve_device

    log = log or (lambda msg: None)
    dev = resolve_device(device)
    if batch is not None and batch < 1:
        raise GancvError(f"--batch must be >= 1, got {batch}")
    cases = QUICK_CASES if quick else (GPU_CASES if dev.type == "cuda" else CPU_CASES)
    if model is not None:
        batches = sorted({b for m, b in cases if m == model}) or [cases[0][1]]
        cases = [(model, b) for b in batches]
    if batch is not None:
        cases = list(dict.fromkeys((m, batch) for m, _ in cases))
    if quick:
        iters, warm, rounds = 2, 1, 1
    elif dev.type == "cuda":
        iters, warm, rounds = 100, 25, 3
    else:
        iters, warm, rounds = 5, 2, 3
    min_round_s = 0.0 if quick or dev.type == "cuda" else 2.0
    results = [run_case(m, b, dev, quick=quick, overrides=list(overrides or []), iters=iters, warm=warm,
                        rounds=rounds, log=log, min_round_s=min_round_s) for m, b in cases]
    return {
        "benchmark": "throughput", "quick": quick, "device": str(dev),
        "device_name": results[0]["device_name"] if results else str(dev),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "overrides": list(overrides or []), "cases": results,
        "goals": [] if quick else _goals(results, dev),  # the quick sizes are not what the goals are about
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "note": "median of alternating rounds in one process; peak_mem_mb is CUDA-only (CPU: peak_rss_mb, whole process)",
    }
