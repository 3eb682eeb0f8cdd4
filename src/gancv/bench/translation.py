"""``gancv benchmark translation``: pix2pix vs CycleGAN with ground truth, offline.

Domain A = crops of the bundled photographs, domain B = the same crops under a fixed style
(:mod:`gancv.data.styles`: cartoon, gray, colorize). For each style we train pix2pix on pairs
(``pix2pix-photos-STYLE``), its L1-only ablation (``lambda_gan=0``), and CycleGAN on unpaired
shuffles (``cyclegan-photos-STYLE``: A and B are independent crop draws), then translate held-out
crops (an independent draw, ``train=False``) and score them against their true styled versions
with PSNR, SSIM and LPIPS. The identity (output = input) is the baseline every method must beat.

It also times ``gancv translate`` of a 1024x768 photograph with a ResNet-9-blocks generator of
the CycleGAN paper's 256 px configuration (timing does not depend on the weights' values).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import BENCHMARKS

# why steps None: each preset carries its own training length (CycleGAN trains two G/D pairs and
# may need more steps than pix2pix; config.py says why); the JSON reports each method's steps
FULL = {"steps": None, "test_items": 256, "styles": ("cartoon", "gray", "colorize")}
QUICK = {"steps": 4, "test_items": 16, "styles": ("cartoon",)}
# quick: a structurally identical, tiny run for CI (16 px, 8-wide networks, a few steps)
QUICK_OVERRIDES = ["image_size=16", "max_items=32", "batch_size=4", "generator.num_downs=4", "generator.width=8",
                   "discriminator.width=8", "log_every=2", "sample_every=100", "checkpoint_every=100"]


def _train_and_score(preset: str, overrides: list[str], run: Path, test_a: torch.Tensor, test_b: torch.Tensor,
                     device: str) -> dict:
    from ..api import load, train
    from ..config import make_config
    from ..metrics.reference import score

    cfg = make_config(preset, overrides)
    t0, c0 = time.perf_counter(), time.process_time()
    train(cfg, out=run)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = load(run, device=device)
    pred = model.translate(test_a, direction="a2b", precision="fp32")  # scores independent of the CPU
    # why CPU seconds too: wall time on a shared machine measures the other jobs as much as this one
    return {**score(pred, test_b), "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1),
            "steps": cfg.steps}


def translate_speed(device: str, quick: bool, work: Path) -> dict:
    """Wall time of ``gancv translate`` (CLI in its default precision: load + translate + watermark +
    write) and of ``translate`` alone in fp32 and bf16."""
    from PIL import Image

    from ..api import load
    from ..cli import main
    from ..data import load_photos
    from ..models import build
    from .. import __version__
    from ..tasks.inference import DEFAULT_TILE
    from ..tasks.translation import _export
    from ..training.precision import inference_dtype

    gen = {"name": "resnet-6blocks", "width": 8} if quick else {"name": "resnet-9blocks", "width": 64}
    size = (128, 96) if quick else (1024, 768)
    torch.manual_seed(0)
    G = build("generator", gen)
    info = {"task": "cyclegan", "gancv_version": __version__, "preset": "", "generators": {"a2b": G.config},
            "data": {"spec": "photo-unpaired:cartoon", "image_size": 256, "channels": 3}}
    _export(work / "model", info, {"a2b": G})
    photo = Image.fromarray(load_photos()[2]).resize(size, Image.Resampling.BICUBIC)  # astronaut, 1024x768
    photo.save(work / "photo.png")
    t0 = time.perf_counter()
    code = main(["translate", str(work / "model"), str(work / "photo.png"), "--out", str(work / "out.png"), "--device", device])
    cli_seconds = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"gancv translate exited {code}")
    model = load(work / "model", device=device)
    x = torch.from_numpy(np.array(photo)).permute(2, 0, 1)
    reference = np.array(Image.open(work / "out.png"))  # what the CLI wrote, in its default precision
    seconds, outputs = {}, {}
    for precision in ("fp32", "bf16"):
        model.translate(x[:, :64, :64], precision=precision)  # warm-up (allocator, oneDNN kernels, bf16 copy)
        t0 = time.perf_counter()
        outputs[precision] = model.translate(x, precision=precision)
        seconds[precision] = round(time.perf_counter() - t0, 2)
        assert outputs[precision].shape == x.shape
    auto = "bf16" if inference_dtype("auto", model.device) == torch.bfloat16 else "fp32"
    cli_diff = np.abs(outputs[auto].permute(1, 2, 0).numpy().astype(np.int16) - reference.astype(np.int16)).mean()
    bf16_diff = float((outputs["bf16"].float() - outputs["fp32"].float()).abs().mean())
    return {"image": f"{size[0]}x{size[1]}", "generator": G.config["name"], "width": gen["width"],
            "device": str(model.device), "threads": torch.get_num_threads(), "tile": DEFAULT_TILE,
            "cli_precision": auto, "cli_seconds": round(cli_seconds, 2),
            "cli_vs_api_mean_abs_diff": round(float(cli_diff), 2),  # the CLI's output also carries the watermark
            "translate_seconds": seconds,
            "bf16_mean_abs_diff_grey_levels": round(bf16_diff, 2), "goal_seconds": 5.0,
            "meets_goal_cli": None if quick else bool(cli_seconds < 5.0)}


@BENCHMARKS.register("translation", description="pix2pix (+L1-only ablation) vs CycleGAN vs identity on photo->style pairs: PSNR/SSIM/LPIPS")
def translation(quick: bool = False, device: str = "auto", log: Callable[[str], None] | None = None) -> dict:
    from ..data import load_data
    from ..metrics.reference import lpips_status, score

    log = log or (lambda msg: None)
    plan = QUICK if quick else FULL
    base = [f"device={device}", "progress=false"] + ([f"steps={plan['steps']}"] if plan["steps"] else [])
    base += QUICK_OVERRIDES if quick else []
    size = 16 if quick else 32
    results: dict[str, dict] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        for style in plan["styles"]:
            held = load_data(f"photo-pairs:{style}", image_size=size, max_items=plan["test_items"], seed=0, train=False)
            assert held.x is not None
            test_a, test_b = held.x[:, :3], held.x[:, 3:]
            row: dict[str, dict] = {"identity": score(test_a, test_b)}
            methods = [("pix2pix", f"pix2pix-photos-{style}", []),
                       ("pix2pix_l1_only", f"pix2pix-photos-{style}", ["lambda_gan=0"]),
                       ("cyclegan", f"cyclegan-photos-{style}", [])]
            for name, preset, extra in methods:
                log(f"translation benchmark: {style} / {name}")
                row[name] = _train_and_score(preset, base + extra, Path(tmp) / f"{style}-{name}", test_a, test_b, device)
                row[name]["preset"] = preset
            p2p, l1, cyc, ident = row["pix2pix"]["psnr"], row["pix2pix_l1_only"]["psnr"], row["cyclegan"]["psnr"], row["identity"]["psnr"]
            row["goals"] = {
                # "clearly" (the goal): by at least 1 dB
                "pix2pix_beats_identity_psnr_by_1dB": p2p >= ident + 1.0,
                "cyclegan_beats_identity_psnr_by_1dB": cyc >= ident + 1.0,
                "pix2pix_within_1.5dB_of_l1_only": p2p >= l1 - 1.5,
                "cyclegan_within_3dB_of_pix2pix": cyc >= p2p - 3.0,
                "unpaired_cost_db": round(p2p - cyc, 2),
            }
            if row["identity"]["lpips"] is not None:  # lower is closer; None without a backbone file
                for name in ("pix2pix", "cyclegan"):
                    row["goals"][f"{name}_beats_identity_lpips"] = row[name]["lpips"] < row["identity"]["lpips"]
            results[style] = row
            log(json.dumps({style: {k: v.get("psnr") if isinstance(v, dict) and "psnr" in v else v for k, v in row.items()}}))
        quality_seconds, quality_cpu = time.perf_counter() - t0, time.process_time() - c0
        speed = translate_speed("cpu", quick, Path(tmp))
    available, reason = lpips_status()
    return {
        "benchmark": "translation", "quick": quick, "device": device,
        "settings": {"image_size": size, "train_steps": plan["steps"] or "per preset (results.STYLE.METHOD.steps)", "held_out_items": plan["test_items"],
                     "train_crops": 32 if quick else 2000, "overrides": base,
                     "test_split": "independent crop draw of the same photographs (train=False)",
                     "styles": "gancv.data.styles: cartoon = 4-level posterise + black Canny(100,200) edges; "
                               "gray = ITU-R 601 luma; colorize = luma -> colour"},
        "lpips_available": available, "lpips_note": None if available else reason,
        "results": results,
        "quality_wall_seconds": round(quality_seconds, 1), "quality_cpu_seconds": round(quality_cpu, 1),
        "torch_threads": torch.get_num_threads(),
        "translate_speed": speed,
    }
