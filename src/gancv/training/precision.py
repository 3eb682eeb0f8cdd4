"""The fast path: mixed precision, memory format, fused optimisers, torch.compile, CUDA graphs.

Every switch is a config field (``amp``, ``matmul_precision``, ``channels_last``, ``fused_optim``,
``compile``, ``cuda_graph``, ``grad_checkpoint``, ``cpu_threads``) whose ``auto`` value means "on where it
measurably helps on this device" (figures: ``gancv benchmark throughput``, docs/benchmarks.md).
The switches never change what is trained, only how: losses and statistics stay fp32, weights
and checkpoints stay fp32 and keep their names (forwards are wrapped on the instance, modules
are never replaced), and anything that fails to compile or capture falls back to the plain
eager path with one warning instead of stopping the run.
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from ..errors import GancvError

# Above this many parameters a step is compute-bound and a CUDA graph saves nothing worth its
# memory (the graph pins every intermediate); below it kernel launches dominate a GAN step
# (the reference MLP GAN spends 8 ms per step on a GPU that needs well under 1 ms of math).
GRAPH_MAX_PARAMS = 20_000_000
# Below this many parameters ``matmul_precision=auto`` keeps plain fp32 matmuls (see resolve_plan).
MATMUL_MEDIUM_MIN_PARAMS = 1_000_000
# Eager steps before capture: lazy cuDNN/cuBLAS initialisation, autotuning and compilation
# must all happen before the graph is recorded.
GRAPH_WARMUP_STEPS = 3


@dataclass(frozen=True)
class SpeedPlan:
    """The resolved switches for one run (``auto`` already decided)."""

    device: str
    amp: bool
    # torch.set_float32_matmul_precision while the step runs: "highest" (plain fp32), "high"
    # (TF32 on GPUs) or "medium" (bf16 products, fp32 sums: oneDNN on CPUs with bf16 units).
    matmul_precision: str
    channels_last: bool
    fused_optim: bool
    compile: bool
    cuda_graph: bool
    grad_checkpoint: bool
    cpu_threads: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        on = [k for k, v in self.as_dict().items() if v is True]
        if self.matmul_precision != "highest":
            on.insert(1, f"fp32 matmuls at {self.matmul_precision!r} precision")
        return f"fast path on {self.device}: " + (", ".join(on) if on else "plain fp32 eager")


def _switch(value: Any, auto: bool) -> bool:
    value = str(value).lower()
    if value in ("auto",):
        return auto
    return value in ("on", "bf16", "true")


def resolve_plan(cfg: Any, device: torch.device, networks: dict[str, nn.Module], *, graph_ok: bool = True) -> SpeedPlan:
    """Decide each ``auto`` switch for this device and these networks.

    ``graph_ok``: the caller's step can be captured at all (one process, no gradient
    accumulation, resident data, no lazy phases) -- a CUDA graph replays a fixed sequence.
    Measured on CPU (2-core Xeon with AMX, torch 2.14; docs/benchmarks.md): channels_last and
    fused Adam pay; bf16 autocast pays for convolutions on CPUs with AMX/AVX512-BF16 but not
    elsewhere; torch.compile costs minutes of compilation on a small CPU for little gain.
    """
    cuda = device.type == "cuda"
    convnet = any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for net in networks.values() for m in net.modules())
    params = sum(p.numel() for net in networks.values() for p in net.parameters())
    amp = _switch(cfg.amp, cuda and torch.cuda.is_bf16_supported() if cuda else (convnet and cpu_has_bf16()))
    matmul = str(cfg.matmul_precision)
    if matmul == "auto":
        # What autocast leaves in fp32 (all of an MLP: on CPU autocast's per-forward weight and
        # gradient casts cost more than its bf16 matmuls gain) still gets the fast units: bf16
        # products with fp32 accumulation keep the weights, gradients and optimiser in fp32.
        # Small networks (toy2d's 2-D MLPs) are bound by per-op overhead, so the faster products
        # would save nothing and only cost precision that a 0.05-std mode on a +-4 grid needs.
        matmul = "highest" if params < MATMUL_MEDIUM_MIN_PARAMS else (
            "high" if cuda else ("medium" if cpu_has_bf16() else "highest"))
    channels_last = _switch(cfg.channels_last, convnet)
    fused = _switch(cfg.fused_optim, True)
    compile_ = _switch(cfg.compile, cuda)
    graph = _switch(cfg.cuda_graph, params <= GRAPH_MAX_PARAMS) and cuda and graph_ok
    if str(cfg.cuda_graph).lower() in ("on", "true") and not (cuda and graph_ok):
        warnings.warn("cuda_graph=on needs a CUDA device, one process, grad_accum=1, resident data and no lazy "
                      "phases; running without CUDA graphs")
    return SpeedPlan(str(device), amp, matmul, channels_last, fused, compile_, graph, bool(cfg.grad_checkpoint),
                     cfg.cpu_threads)


@functools.lru_cache(maxsize=None)
def cpu_has_bf16() -> bool:
    """True when this CPU has native bf16 matrix units (AVX512-BF16 or AMX), where oneDNN runs
    bf16 convolutions faster than fp32; elsewhere bf16 is emulated and slower."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """``torch.set_float32_matmul_precision`` for the duration of the block only: the setting is
    process-wide, and code outside the training step (a reference benchmark path, sampling,
    metrics) must keep getting the precision it asked for."""
    saved = torch.get_float32_matmul_precision()
    if precision == saved:
        yield
        return
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)


# ---- inference ------------------------------------------------------------------------------------
INFERENCE_PRECISIONS = ("auto", "fp32", "bf16")


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 where the device has bf16 matrix units (AMX/AVX512-BF16 CPUs, CUDA GPUs
    with bf16), else fp32. bf16 outputs differ from fp32 by about one grey level."""
    if precision not in INFERENCE_PRECISIONS:
        raise GancvError(f"precision={precision!r}: use auto, fp32 or bf16")
    if precision == "auto":
        fast = cpu_has_bf16() if device.type == "cpu" else device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if fast else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


class _InstanceAsGroupNorm(nn.Module):
    """``InstanceNorm2d`` (per-image statistics) computed as ``GroupNorm`` with one channel per group.

    The same maths, but PyTorch's CPU group-norm kernel works on channels_last and bf16 directly,
    while instance norm reshapes to NCHW and back: on a CycleGAN ResNet in bf16 the norms took
    three quarters of the CPU time, and group norm is 4-5x faster on the same tensors.
    """

    def __init__(self, norm: nn.InstanceNorm2d):
        super().__init__()
        self.groups, self.eps = norm.num_features, norm.eps
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.group_norm(x, self.groups, self.weight, self.bias, self.eps)


def _swap_instance_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm2d) and not child.track_running_stats and child.num_features:
            setattr(module, name, _InstanceAsGroupNorm(child))
        else:
            _swap_instance_norms(child)


def inference_copy(module: nn.Module, dtype: torch.dtype, cache: dict[Any, nn.Module]) -> nn.Module:
    """A copy of the module for inference in ``dtype`` and channels_last, made once per (module,
    dtype) and kept in ``cache``; the module itself is not touched.

    Whole-network bf16 rather than autocast: autocast re-casts every weight on every call and runs
    normalisation layers in fp32, so a CycleGAN ResNet spends a third of its CPU time in copies;
    converted once, oneDNN's AMX kernels run on bf16 end to end. channels_last is the layout
    those kernels want (fp32 convolutions gain from it too), and instance norms become group
    norms that run on that layout natively.
    """
    import copy

    key = (id(module), dtype)
    if key not in cache:
        fast = copy.deepcopy(module).eval().requires_grad_(False)
        _swap_instance_norms(fast)
        cache[key] = fast.to(dtype=dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return cache[key]


def run_inference(module: nn.Module, dtype: torch.dtype, *inputs: torch.Tensor) -> torch.Tensor:
    """``module(*inputs)`` with inputs cast to ``dtype`` in channels_last; the output comes back fp32."""
    cast = [t.to(dtype=dtype, memory_format=torch.channels_last) if t.dim() == 4 else t.to(dtype) for t in inputs]
    return module(*cast).float()


# ---- networks -------------------------------------------------------------------------------------
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class CompiledForward:
    """``torch.compile`` of a forward that falls back to eager, with one warning, if compiling fails."""

    def __init__(self, eager: Callable[..., Any], name: str, mode: str | None = None):
        self.eager, self.name, self.failed = eager, name, False
        self.compiled = torch.compile(eager, mode=mode)

    def disable(self, exc: BaseException) -> None:
        self.failed = True
        first = str(exc).strip().split("\n")[0][:200]
        _warn_once("compile", f"torch.compile failed for {self.name} ({type(exc).__name__}: {first}); "
                              "continuing eagerly (set compile=off to skip the attempt)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except GancvError:  # the user's mistake (e.g. a shape check), not the compiler's
            raise
        except Exception as exc:  # inductor/dynamo raise many types; every one means "use eager"
            self.disable(exc)
            return self.eager(*args, **kwargs)


def _to_float(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float(o) for o in out)
    return out


def autocast_forward(forward: Callable[..., Any], device_type: str) -> Callable[..., Any]:
    """Run a forward under bf16 autocast and hand back fp32, so losses, penalties and the EMA
    see fp32 (bf16's 8-bit mantissa is fine for activations, not for a mean over a batch)."""

    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        # No cast cache: each forward is its own autocast region anyway (the cache would be
        # emptied on exit), and a cache is unsafe inside CUDA-graph capture (torch.cuda.graph docs).
        with torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=False):
            out = forward(*args, **kwargs)
        return _to_float(out)

    return run


def enable_grad_checkpointing(net: nn.Module, segments: int = 2) -> bool:
    """Recompute ``net``'s activations in backward instead of storing them (less memory, ~1/3 more
    compute for that network).

    A model with its own ``checkpointing`` switch (StyleGAN's synthesis blocks) is simply told to
    use it. Otherwise the container holding most of the parameters is checkpointed: each block of
    an ``nn.ModuleList`` (ResNet blocks), or ``segments`` chunks of an ``nn.Sequential`` (DCGAN).
    Weights and names are untouched, gradients are exact, and BatchNorm running statistics are
    frozen during the recomputation so they move once per step, as without checkpointing.
    Returns False when there is nothing to checkpoint.
    """
    from torch.utils.checkpoint import checkpoint

    if isinstance(getattr(net, "checkpointing", None), bool):
        net.checkpointing = True  # type: ignore[assignment]
        return True
    containers = [m for m in net.modules() if isinstance(m, (nn.ModuleList, nn.Sequential)) and len(m) >= 2]
    if not containers:
        return False
    body = max(containers, key=lambda m: sum(p.numel() for p in m.parameters()))
    norms = [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    @contextlib.contextmanager
    def frozen_statistics() -> Iterator[None]:
        # momentum 0 keeps running_mean/var exactly as they are; the counter is put back.
        saved = [(m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
                 for m in norms]
        for m in norms:
            m.momentum = 0.0
        try:
            yield
        finally:
            for m, momentum, count in saved:
                m.momentum = momentum
                if count is not None:
                    m.num_batches_tracked.copy_(count)

    def contexts() -> tuple[Any, Any]:
        return contextlib.nullcontext(), frozen_statistics()

    def checkpointed(module: nn.Module, run: Callable[..., Any]) -> Callable[..., Any]:
        def forward(*args: Any, **kwargs: Any) -> Any:
            if torch.is_grad_enabled() and module.training:
                return checkpoint(run, *args, use_reentrant=False, context_fn=contexts, **kwargs)
            return run(*args, **kwargs)

        return forward

    if isinstance(body, nn.ModuleList):  # blocks called by the parent's own loop, any signature
        for block in body:
            block.forward = checkpointed(block, block.forward)  # type: ignore[method-assign]
        return True
    layers = list(body)
    size = -(-len(layers) // segments)
    chunks = [nn.Sequential(*layers[i: i + size]) for i in range(0, len(layers), size)]
    eager = body.forward
    runs = [checkpointed(body, chunk) for chunk in chunks[:-1]]

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and body.training):
            return eager(x)
        for run in runs:  # the last chunk's activations are needed at once: not worth recomputing
            x = run(x)
        return chunks[-1](x)

    body.forward = forward  # type: ignore[method-assign]
    return True


def prepare_networks(networks: dict[str, nn.Module], plan: SpeedPlan, checkpointed: Iterable[str] = ()) -> list[CompiledForward]:
    """Apply the plan to the networks in place (after EMA copies were taken: the shadow stays
    plain). Returns the compiled forwards so a failure found later (in backward) can disable
    them all."""
    device_type = torch.device(plan.device).type
    if device_type == "cuda":
        # Fixed shapes every step: let cuDNN pick the fastest algorithm once.
        torch.backends.cudnn.benchmark = True
    if plan.cpu_threads and device_type == "cpu":
        torch.set_num_threads(plan.cpu_threads)
    compiled: list[CompiledForward] = []
    for name, net in networks.items():
        if plan.channels_last:
            net.to(memory_format=torch.channels_last)
        if plan.grad_checkpoint and name in checkpointed and not enable_grad_checkpointing(net):
            _warn_once(f"ckpt-{name}", f"grad_checkpoint: {name} has no sequential body to checkpoint; skipped")
        forward: Callable[..., Any] = net.forward
        if plan.compile:
            cf = CompiledForward(forward, name)
            compiled.append(cf)
            forward = cf
        if plan.amp:
            forward = autocast_forward(forward, device_type)
        if forward is not net.forward:
            net.forward = forward  # type: ignore[method-assign]
    return compiled


def make_adam(params: list[torch.nn.Parameter], lr: float, betas: tuple[float, float], plan: SpeedPlan) -> torch.optim.Adam:
    """Adam with fused kernels when asked (one kernel for all tensors instead of ~10 per tensor),
    capturable when the step is replayed as a CUDA graph (its step count lives on the device)."""
    kwargs: dict[str, Any] = {"lr": lr, "betas": betas}
    if plan.fused_optim:
        kwargs["fused"] = True
    if plan.cuda_graph:
        kwargs["capturable"] = True
    return torch.optim.Adam(params, **kwargs)


# ---- CUDA graph of the whole step -----------------------------------------------------------------
def _clone_batches(batches: list[Any]) -> list[Any]:
    return [tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in batch) for batch in batches]


def _copy_batches(static: list[Any], batches: list[Any]) -> None:
    for dst, src in zip(static, batches):
        for d, s in zip(dst, src):
            if isinstance(d, torch.Tensor):
                d.copy_(s, non_blocking=True)


class CudaGraphStep:
    """Replays one whole training step (every phase's forward, backward and optimiser update,
    and the EMA) as a single CUDA graph: one launch instead of hundreds, which is what a small
    GAN's step costs on a fast GPU. Inputs are copied into static buffers before each replay;
    losses come back in static tensors that the next replay overwrites (the loop clones them).

    The first ``GRAPH_WARMUP_STEPS`` calls run eagerly on a side stream (real training steps,
    so capture changes nothing about what is trained); the next one is captured and replayed.
    If capture fails the step stays eager, with one warning.
    """

    def __init__(self, step_fn: Callable[[list[Any]], dict[str, torch.Tensor]], optimizers: Iterable[torch.optim.Optimizer],
                 generators: Iterable[torch.Generator] = ()):
        self.step_fn, self.optimizers, self.generators = step_fn, list(optimizers), list(generators)
        self.calls, self.graph, self.failed = 0, None, False
        self.static_in: list[Any] = []
        self.static_out: dict[str, torch.Tensor] = {}

    def __call__(self, batches: list[Any]) -> dict[str, torch.Tensor]:
        if self.failed:
            return self.step_fn(batches)
        if self.graph is not None:
            _copy_batches(self.static_in, batches)
            self.graph.replay()
            return self.static_out
        self.calls += 1
        if self.calls <= GRAPH_WARMUP_STEPS:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.step_fn(batches)
            torch.cuda.current_stream().wait_stream(side)
            return out
        return self._capture(batches)

    def _capture(self, batches: list[Any]) -> dict[str, torch.Tensor]:
        self.static_in = _clone_batches(batches)
        graph = torch.cuda.CUDAGraph()
        for gen in self.generators:  # the task's own noise generator must advance on every replay
            graph.register_generator_state(gen)
        for opt in self.optimizers:
            # Gradients are allocated inside the graph's memory pool and reused by every replay.
            opt.zero_grad(set_to_none=True)
        try:
            with torch.cuda.graph(graph):
                self.static_out = self.step_fn(self.static_in)
        except Exception as exc:  # capture rejects host syncs, CPU tensors, unsupported ops...
            self.failed = True
            first = str(exc).strip().split("\n")[0][:200]
            _warn_once("graph", f"CUDA graph capture of the training step failed ({type(exc).__name__}: {first}); "
                                "continuing without it (set cuda_graph=off to skip the attempt)")
            torch.cuda.synchronize()
            return self.step_fn(batches)
        self.graph = graph
        graph.replay()  # capture records without running: this replay is the step itself
        return self.static_out
