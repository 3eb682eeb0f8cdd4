"""StyleGAN benchmarks: GAN inversion of held-out faces against a random-w baseline; label
directions of an unconditional model (InterFaceGAN) against random directions; training memory."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig

from . import BENCHMARKS

FULL_RUN = Path("runs/stylegan-faces")  # where the README trains the preset; reused when complete


def _train_seconds(run: Path) -> float:
    """Training wall time from the run's own log (each row covers its steps at img_per_s)."""
    from ..config import load_config

    batch = load_config(run / "config.yaml").batch_size
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    seconds, prev = 0.0, 0
    for row in rows:
        if row.get("img_per_s"):
            seconds += (row["step"] - prev) * batch / row["img_per_s"]
        prev = row["step"]
    return round(seconds, 1)


# --quick's StyleGAN: small enough to train 20 steps in seconds, every stage of the protocol kept.
_TINY_STYLEGAN = ["steps=20", "batch_size=8", "z_dim=16", "generator.channel_base=64", "generator.channel_max=16",
                  "generator.w_dim=32", "discriminator.channel_base=64", "discriminator.channel_max=16",
                  "sample_every=1000", "checkpoint_every=1000"]


def _reuse_or_train(cfg: DictConfig, run: Path, device: str, log: Callable[[str], None], quick: bool) -> bool:
    """The full benchmarks reuse the README's complete run (resuming a partial one); --quick always
    trains in ``run``. Returns whether a complete run was reused."""
    from ..api import train

    if not quick and _complete(run, cfg.steps):
        log(f"reusing the complete run {run} (delete it to retrain)")
        return True
    resume = not quick and (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir())
    log(f"training {cfg.preset} ({cfg.steps} steps) in {run}" + (" (resuming)" if resume else ""))
    if resume:
        train({"steps": cfg.steps, "device": device, "progress": False}, resume=run)
    else:
        train(cfg, out=run)
    return False


def _complete(run: Path, steps: int) -> bool:
    metrics = run / "metrics.jsonl"
    if not (run / "model" / "config.json").is_file() or not metrics.is_file():
        return False
    lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
    return bool(lines) and json.loads(lines[-1])["step"] >= steps


@BENCHMARKS.register("inversion", description="stylegan-faces: project held-out LFW faces (W+ and W), PSNR vs random w")
def inversion(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None) -> dict:
    from ..api import load
    from ..config import make_config
    from ..data import load_data
    from ..inversion import LPIPS_NET, psnr
    from ..metrics.reference import lpips, lpips_status

    log = log or (lambda msg: None)
    if quick:
        overrides = ["image_size=16", *_TINY_STYLEGAN]
        faces, proj_steps, n_random = 2, 40, 8
    else:
        overrides, faces, proj_steps, n_random = [], 10, 300, 64
    cfg = make_config("stylegan-faces", overrides + [f"device={device}", "progress=false"])
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run" if quick else FULL_RUN
        reused = _reuse_or_train(cfg, run, device, log, quick)
        train_seconds = _train_seconds(run)
        model = load(run, device=device)
        held = load_data("faces:heldout", image_size=model.shape[-1], channels=model.shape[0]).x[:faces]
        results: dict[str, list[float]] = {"w_plus": [], "w": [], "mean_w": [], "random_w_mean": [], "random_w_best": []}
        # The table's protocol is L2 everywhere; with the LPIPS backbone cached, W+ is also run with LPIPS+L2.
        lpips_available, lpips_reason = lpips_status()
        if lpips_available:
            results["w_plus_lpips_l2"], results["lpips_of_w_plus_lpips_l2"], results["lpips_of_w_plus"] = [], [], []
        t0 = time.perf_counter()
        randoms = model.sample(n_random, seed=1234)
        mean_image = model.synthesize(model.generator.w_avg[None])[0]
        for i, target in enumerate(held):
            pixel = model.project(target, steps=proj_steps, w_plus=True, seed=i, loss="l2")
            results["w_plus"].append(pixel.psnr)
            results["w"].append(model.project(target, steps=proj_steps, w_plus=False, seed=i, loss="l2").psnr)
            if lpips_available:
                perceptual = model.project(target, steps=proj_steps, w_plus=True, seed=i, loss="lpips+l2")
                results["w_plus_lpips_l2"].append(perceptual.psnr)
                # Both W+ reconstructions scored by the same metric (AlexNet LPIPS, enlarged to 64 px),
                # so the perceptual loss's gain is read against the pixel loss's.
                results["lpips_of_w_plus"].append(lpips(pixel.image[None], target[None], net=LPIPS_NET))
                results["lpips_of_w_plus_lpips_l2"].append(lpips(perceptual.image[None], target[None], net=LPIPS_NET))
            scores = [psnr(r, target) for r in randoms]
            results["random_w_mean"].append(sum(scores) / len(scores))
            results["random_w_best"].append(max(scores))
            results["mean_w"].append(psnr(mean_image, target))
            log(f"face {i}: W+ {results['w_plus'][-1]:.2f} dB, W {results['w'][-1]:.2f} dB, random w {results['random_w_mean'][-1]:.2f} dB")
        project_seconds = time.perf_counter() - t0
    mean = {k: round(sum(v) / len(v), 2) for k, v in results.items()}
    return {
        "benchmark": "inversion", "quick": quick, "device": str(model.device), "preset": "stylegan-faces",
        "train_steps": cfg.steps, "batch_size": cfg.batch_size, "image_size": cfg.image_size,
        "train_seconds": train_seconds, "reused_run": reused, "heldout_faces": faces,
        "projection": {"steps": proj_steps, "loss": "l2" + (" (W+ also with lpips+l2)" if lpips_available else ""),
                       "optimizer": "Adam lr 0.05, warm-up + cosine ramp-down, w noise early"},
        "lpips_available": lpips_available, "lpips_note": None if lpips_available else lpips_reason,
        "psnr_db": {"w_plus": mean["w_plus"], "w": mean["w"], "mean_w_start": mean["mean_w"],
                    f"random_w_mean_of_{n_random}": mean["random_w_mean"],
                    f"random_w_best_of_{n_random}": mean["random_w_best"]},
        **({"psnr_db_w_plus_lpips_l2": mean["w_plus_lpips_l2"],
            "lpips_w_plus": round(sum(results["lpips_of_w_plus"]) / faces, 4),
            "lpips_w_plus_lpips_l2": round(sum(results["lpips_of_w_plus_lpips_l2"]) / faces, 4)}
           if lpips_available else {}),
        "psnr_db_per_face_w_plus": [round(v, 2) for v in results["w_plus"]],
        "margin_over_random_db": round(mean["w_plus"] - mean["random_w_mean"], 2),
        "goal": {"psnr_db": 20.0, "met": mean["w_plus"] >= 20.0 and mean["w_plus"] - mean["random_w_mean"] >= 5.0},
        "project_seconds": round(project_seconds, 1), "threads": torch.get_num_threads(),
    }


DIGITS_RUN = Path("runs/stylegan-digits")  # where the README trains the preset; reused when complete


@BENCHMARKS.register("label-directions", description="stylegan-digits (unconditional): InterFaceGAN label directions; "
                     "classifier and W-boundary accuracy, edit success vs random directions")
def label_directions(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None) -> dict:
    """Train (or reuse) an unconditional StyleGAN on the digits, find one W direction per digit from
    generated images labelled by a classifier trained on 80 % of the real digits, and measure on fresh
    samples how often moving along a digit's direction makes the classifier see that digit."""
    from ..api import load
    from ..config import make_config
    from ..directions import classifier_directions, edit_success
    from ..metrics.classifier import heldout_classifier

    log = log or (lambda msg: None)
    if quick:
        overrides = list(_TINY_STYLEGAN)
        # a 20-step model's digits are blobs the classifier is rarely sure of: a lower bar keeps every class
        clf_steps, samples, eval_samples, confidence = 100, 512, 100, 0.3
    else:
        overrides, clf_steps, samples, eval_samples, confidence = [], 0, 2000, 500, 0.9
    strength = 10.0
    cfg = make_config("stylegan-digits", overrides + [f"device={device}", "progress=false"])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run" if quick else DIGITS_RUN
        reused = _reuse_or_train(cfg, run, device, log, quick)
        train_seconds = _train_seconds(run)
        train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        model = load(run, device=device)
        t0, c0 = time.perf_counter(), time.process_time()
        clf, info = heldout_classifier(cfg.data, model.shape[-1], model.shape[0], steps=clf_steps, log=log)
        found = classifier_directions(model, clf, info["class_names"], samples=samples, confidence=confidence, seed=0)
        success = edit_success(model, clf, found, strength, samples=eval_samples)
        directions_wall, directions_cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = found.summary()
    return {
        "benchmark": "label-directions", "quick": quick, "device": str(model.device), "preset": "stylegan-digits",
        "train_steps": cfg.steps, "image_size": cfg.image_size, "reused_run": reused,
        "train_seconds_from_log": train_seconds,
        "classifier": {"data": cfg.data, "steps": info["steps"], "train_images": info["train_images"],
                       "heldout_images": info["heldout_images"], "heldout_accuracy": info["heldout_accuracy"]},
        "sampled": samples, "confidence": confidence, "confident_per_class": summary["confident_per_class"],
        "classes": summary["classes"], "skipped_classes": summary["skipped_classes"],
        "boundary_accuracy": summary["boundary_accuracy"],
        "boundary_accuracy_mean": round(float(found.boundary_accuracy.mean()), 4),
        "edit_success": success,
        "seconds": {"train_wall": round(train_wall, 1), "train_cpu": round(train_cpu, 1),
                    "directions_wall": round(directions_wall, 1), "directions_cpu": round(directions_cpu, 1)},
        "threads": torch.get_num_threads(),
    }


def _phase_activation_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of distinct storages autograd keeps for backward while ``fn`` builds its graph, then backward."""
    seen: dict[int, int] = {}
    keep: list[torch.Tensor] = []

    def pack(x: torch.Tensor) -> torch.Tensor:
        storage = x.untyped_storage()
        seen.setdefault(storage._cdata, storage.nbytes())
        keep.append(x)  # hold it so a freed storage's id cannot be reused and missed
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        loss = fn()
    loss.backward()
    return sum(seen.values())


def estimate_training_memory(preset: str, batch_size: int, checkpointing: bool = False,
                             overrides: list[str] | None = None) -> dict:
    """Training memory of a StyleGAN preset per phase, computed on the CPU without running it:
    the networks run under FakeTensorMode (shapes and dtypes only), saved activations are counted
    per phase, and parameters + gradients + Adam moments + the EMA copy are added (fp32)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ..config import make_config
    from ..losses import r1_penalty
    from ..models import build, count_parameters

    cfg = make_config(preset, [f"batch_size={batch_size}", "device=cpu", *(overrides or [])])
    shape = [cfg.channels or 3, cfg.image_size, cfg.image_size]
    gib = 2.0**30
    with FakeTensorMode():
        G = build("generator", {**cfg.generator, "shape": shape, "z_dim": cfg.z_dim, "checkpointing": checkpointing})
        D = build("discriminator", {**cfg.discriminator, "shape": shape, "checkpointing": checkpointing})
        real = torch.randn(batch_size, *shape)

        def z(n: int = batch_size) -> torch.Tensor:
            return torch.randn(n, cfg.z_dim)

        def g_main() -> torch.Tensor:
            D.requires_grad_(False)
            G.requires_grad_(True)
            return D(G(z())).sum()

        def d_main() -> torch.Tensor:
            G.requires_grad_(False)
            D.requires_grad_(True)
            with torch.no_grad():
                fake = G(z())
            return D(real).sum() + D(fake).sum()

        def d_r1() -> torch.Tensor:
            return r1_penalty(D, real)

        def g_pl() -> torch.Tensor:
            D.requires_grad_(False)
            G.requires_grad_(True)
            ws = G.map(z(max(1, batch_size // 2)))
            img = G.synthesis(ws)
            (grad,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
            return grad.square().sum()

        phases = {"G_main": g_main, "D_main": d_main, "D_r1": d_r1}
        if cfg.pl_weight > 0:
            phases["G_pl"] = g_pl
        activations = {name: _phase_activation_bytes(fn) for name, fn in phases.items()}
        n_g, n_d = count_parameters(G), count_parameters(D)
    # fp32 weights + grads + two Adam moments for G and D, plus the generator EMA copy.
    static = ((n_g + n_d) * 4 * 4 + n_g * 4) / gib
    peak_phase = max(activations, key=activations.get)
    return {
        "activations_bytes": activations,
        "preset": preset, "image_size": cfg.image_size, "batch_size": batch_size, "checkpointing": checkpointing,
        "params": {"generator": n_g, "discriminator": n_d},
        "activations_gib": {k: round(v / gib, 2) for k, v in activations.items()},
        "weights_grads_adam_ema_gib": round(static, 2),
        "estimated_peak_gib": round(activations[peak_phase] / gib + static, 2), "peak_phase": peak_phase,
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure_step(preset: str, batch_size: int, device: str, overrides: list[str]) -> dict:
    """One real training step of ``preset`` (every phase: at step 0 the lazy R1 and path-length
    phases run too), in a fresh process so the high-water mark is this step's alone."""
    import resource

    import numpy as np
    from PIL import Image

    from ..config import make_config
    from ..training.loop import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(preset, [f"batch_size={batch_size}", f"device={device}", "progress=false", "steps=1",
                                   "guard=false", *overrides])
        folder = Path(tmp) / "images"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(batch_size):  # random pixels: memory does not depend on what the images show
            Image.fromarray(rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        cfg.data = f"folder:{folder}"
        before = _rss_bytes()
        trainer = Trainer(cfg, Path(tmp) / "run")
        built = _rss_bytes()
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)
        t0 = time.perf_counter()
        trainer.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        seconds = time.perf_counter() - t0
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        phases = [p.name for p in trainer.task.phases()]  # at step 0 every lazy phase runs too
        result = {"device": str(trainer.device), "phases": phases, "step_seconds": round(seconds, 1),
                  "process_rss_before_gib": round(before / 2**30, 2), "networks_built_rss_gib": round(built / 2**30, 2),
                  "peak_rss_gib": round(peak_rss / 2**30, 2),
                  "training_peak_gib": round((peak_rss - before) / 2**30, 2)}
        if trainer.device.type == "cuda":
            result["cuda_max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated(trainer.device) / 2**30, 2)
        return result


def measure_training_memory(preset: str, batch_size: int, device: str = "cpu", overrides: list[str] | None = None) -> dict:
    """Peak memory of one real training step, measured in a child process: on the CPU its peak RSS
    (the same tensors a GPU would hold, plus the CPU allocator's own overhead), on CUDA also
    ``torch.cuda.max_memory_allocated``."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure_step, (preset, batch_size, device, list(overrides or [])))


@BENCHMARKS.register("stylegan-memory", description="StyleGAN training memory at 256 px, batch 16: one real step's "
                     "peak (CPU RSS / CUDA allocator) beside a per-phase count of saved activations")
def stylegan_memory(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None) -> dict:
    from ..device import resolve_device

    preset, batch = ("stylegan-faces", 4) if quick else ("stylegan-ffhq256", 16)
    runs = [estimate_training_memory(preset, batch, checkpointing=flag) for flag in (False, True)]
    plain = runs[0]
    plain.pop("activations_bytes")
    if log:
        log(f"stylegan-memory: one real {preset} step at batch {batch} (minutes on a CPU)")
    measured = measure_training_memory(preset, batch, str(resolve_device(device)))
    peak = measured.get("cuda_max_memory_allocated_gib", measured["training_peak_gib"])
    return {
        "benchmark": "stylegan-memory", "quick": quick, **plain,
        "estimated_peak_gib_with_checkpointing": runs[1]["estimated_peak_gib"],
        "measured": measured,
        "measured_peak_gib": peak,
        "fits_24gb_without_checkpointing": peak <= 24.0,
        "method": "measured: one real training step (all four phases) in a fresh process; on CUDA "
                  "torch.cuda.max_memory_allocated, on the CPU the rise of the process's peak RSS over its "
                  "size before the networks were built (fp32, no AMP). estimated: saved-for-backward storages "
                  "per phase under FakeTensorMode + weights/grads/Adam/EMA, without transient buffers",
    }
