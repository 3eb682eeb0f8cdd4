"""The ``gancv`` command: parses, calls the API, prints. Exit 0 ok, 2 bad input, 1 internal error."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import GancvError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="GANs for computer vision: train, sample, translate, restore, evaluate.")
data_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect data sets.")
app.add_typer(data_app, name="data")
console = Console(stderr=True)
out_console = Console()


def _check_out_parent(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir():
        raise GancvError(f"--out {path}: the directory {parent} does not exist; create it first")


def _emit_json(obj: Any) -> None:
    print(json.dumps(obj, default=str))


# ---- training -------------------------------------------------------------------------------
@app.command()
def presets() -> None:
    """List presets with one-line descriptions."""
    from .config import PRESETS

    table = Table("preset", "description", box=None)
    for name, desc in PRESETS.describe().items():
        table.add_row(name, desc)
    out_console.print(table)


@app.command()
def models() -> None:
    """List registered networks, losses, data sets and tasks."""
    from .augment import AUGMENTS
    from .data import DATASETS
    from .losses import LOSSES, REGULARIZERS
    from .models import DISCRIMINATORS, GENERATORS
    from .tasks import TASKS

    for title, reg in [("generators", GENERATORS), ("discriminators", DISCRIMINATORS), ("losses", LOSSES),
                       ("regularizers", REGULARIZERS), ("augments", AUGMENTS),
                       ("datasets", DATASETS), ("tasks", TASKS)]:
        table = Table(title, "description", box=None)
        for name, desc in reg.describe().items():
            table.add_row(name, desc)
        out_console.print(table)


@app.command(context_settings={"allow_extra_args": False})
def train(
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, e.g. steps=500 generator.width=32"),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="preset name (gancv presets)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run directory (default runs/PRESET)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run from its last checkpoint"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda"),
    no_watermark: bool = typer.Option(False, "--no-watermark", help="same as watermark=false (recorded in config.yaml)"),
) -> None:
    """Train a model from a preset plus key=value overrides."""
    from . import api
    from .config import make_config, parse_overrides

    items = parse_overrides(list(overrides or []))
    if device:
        items.append(f"device={device}")
    if no_watermark:
        items.append("watermark=false")
    if resume is not None:
        if preset:
            raise GancvError("--resume continues a run with its saved config; drop --preset (overrides are allowed)")
        from omegaconf import OmegaConf

        extra = OmegaConf.to_container(OmegaConf.from_dotlist(items)) if items else {}
        run = api.train(extra, resume=resume, log=console.print)  # type: ignore[arg-type]
    else:
        if not preset and not items:
            raise GancvError("say what to train: --preset NAME (see `gancv presets`) and/or key=value overrides")
        cfg = make_config(preset, items)
        if out is not None:
            _check_out_parent(out)
        run = api.train(cfg, out=out, log=console.print)
    from .training.distributed import env_dist

    if env_dist().main:  # under torchrun every process gets here; one line is enough
        console.print(f"run written to [bold]{run}[/]  (model: {run / 'model'})")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="where samples.png, losses.png, report.md go"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
) -> None:
    """Train the default model on the builtin digits (offline) and write a report."""
    from .demo import run_demo

    _check_out_parent(out)
    report = run_demo(out, device=device, log=console.print)
    console.print(f"demo done: {report}")


# ---- using a trained model ------------------------------------------------------------------
NO_WATERMARK_HELP = "write images without the invisible watermark (the metadata still says AI-generated, and that it is off)"


def marked_as(model: Any, seed: int | None, no_watermark: bool) -> Any:
    """Provenance for the images a command writes: the model's id, the seed, watermark on/off."""
    from .provenance import using

    return using(model_id=getattr(model, "model_id", None), seed=seed, watermark=not no_watermark,
                 model_name=str(getattr(model, "path", "") or ""))


def _write_samples(images: Any, labels: Any, out: Path, model: Any, nrow: int | None = None) -> str:
    import numpy as np

    from .visual import save_grid, save_image

    suffix = out.suffix.lower()
    if model.kind == "points":
        if suffix not in (".npz", ".png"):
            raise GancvError(f"--out {out}: 2-D point models write .npz arrays or a .png scatter plot")
        if suffix == ".png":
            from .visual import save_scatter

            save_scatter(images, out)
            return str(out)
    if suffix == ".npz":
        arrays = {"samples": images.permute(0, 2, 3, 1).numpy() if model.kind != "points" else images.numpy()}
        if labels is not None:
            arrays["labels"] = np.asarray(labels, dtype=np.int64)
        tmp = out.with_name(f".{out.name}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(out)
        return str(out)
    if suffix in (".png", ".jpg", ".jpeg"):
        save_grid(images, out, nrow=nrow)
        return str(out)
    if suffix and not out.is_dir():
        raise GancvError(f"--out {out}: use .png (one grid), .npz (arrays) or a directory (one PNG per sample)")
    out.mkdir(exist_ok=True)
    for i, img in enumerate(images):
        save_image(img, out / f"sample_{i:05d}.png")
    return f"{out}/ ({len(images)} files)"


@app.command()
def sample(
    run: Path = typer.Argument(..., help="run directory or exported model directory"),
    n: int = typer.Option(64, "-n", min=1, help="number of samples"),
    out: Path = typer.Option(..., "--out", "-o", help="*.png grid, *.npz arrays, or a directory"),
    class_: Optional[int] = typer.Option(None, "--class", help="class index (conditional models)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed (same seed, same samples)"),
    truncation: Optional[float] = typer.Option(None, "--truncation",
                                               help="truncation: threshold on z, or psi in W for StyleGAN, e.g. 0.7"),
    mix: bool = typer.Option(False, "--mix", help="StyleGAN style-mixing grid (PNG): coarse styles from the left column"),
    cutoff: Optional[int] = typer.Option(None, "--cutoff", help="with --mix: layers taken from the row source"),
    direction: Optional[int] = typer.Option(None, "--direction", help="StyleGAN: move along SeFa direction i"),
    strength: float = typer.Option(3.0, "--strength", help="with --direction: distance along it (negative = opposite)"),
    drs: Optional[bool] = typer.Option(None, "--drs/--no-drs",
                                       help="discriminator rejection sampling with the run's calibrated D "
                                            "(default: on for runs trained with drs.enabled=true)"),
    device: str = typer.Option("auto", "--device"),
    no_watermark: bool = typer.Option(False, "--no-watermark", help=NO_WATERMARK_HELP),
) -> None:
    """Draw N samples from a trained generator (or a StyleGAN mixing grid / direction edit)."""
    from . import api

    _check_out_parent(out)
    model = api.load(run, device=device)
    if getattr(model, "task", None) != "generation":
        raise GancvError(f"{run} is a {model.task} model; `gancv sample` needs a generation model")
    if drs and not getattr(model, "has_drs", False):
        raise GancvError(f"{run} has no discriminator for rejection sampling (--drs): train it with "
                         "drs.enabled=true, or drop --drs")
    # Only a model with a calibrated D takes the flag (StyleGAN's sampler has no DRS path).
    drs_kw = {"drs": drs} if drs is not None and getattr(model, "has_drs", False) else {}
    if mix:
        if out.suffix.lower() != ".png":
            raise GancvError(f"--out {out}: a style-mixing grid is written as one .png")
        side = max(1, round(n**0.5))
        model.require("style_mix")
        grid = model.style_mix(rows=side, cols=side, seed=seed, truncation=truncation, cutoff=cutoff)
        from .visual import save_grid

        with marked_as(model, seed, no_watermark):
            save_grid(grid, out, nrow=side + 1, scale=max(1, 64 // grid.shape[-1]))
        console.print(f"wrote a {side}x{side} style-mixing grid to {out}")
        return
    if direction is not None:
        model.require("directions")  # a generator without modulation layers stops here with its reason
        images = model.sample(n, labels=class_, seed=seed, truncation=truncation, direction=direction, strength=strength)
    else:
        images = model.sample(n, labels=class_, seed=seed, truncation=truncation, **drs_kw)
    labels = None
    if model.conditional:
        labels = [class_] * n if class_ is not None else [i % model.num_classes for i in range(n)]
    with marked_as(model, seed, no_watermark):
        where = _write_samples(images, labels, out, model)
    console.print(f"wrote {n} samples to {where}")


@app.command()
def interpolate(
    run: Path = typer.Argument(..., help="run directory or exported model directory"),
    out: Path = typer.Option(..., "--out", "-o", help="*.png (grid, one row per path) or *.gif (animation)"),
    steps: int = typer.Option(8, "--steps", min=2),
    rows: int = typer.Option(4, "--rows", min=1),
    seed: Optional[int] = typer.Option(None, "--seed"),
    class_: Optional[int] = typer.Option(None, "--class"),
    method: Optional[str] = typer.Option(None, "--method", help="slerp or lerp (default: slerp in z, lerp in StyleGAN's W)"),
    device: str = typer.Option("auto", "--device"),
    no_watermark: bool = typer.Option(False, "--no-watermark", help=NO_WATERMARK_HELP),
) -> None:
    """Walk the latent space between random points (z, or W for StyleGAN models)."""
    from . import api

    _check_out_parent(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".gif"):
        raise GancvError(f"--out {out}: interpolate writes a .png grid or a .gif animation")
    model = api.load(run, device=device)
    if getattr(model, "task", None) != "generation" or model.kind != "image":
        raise GancvError(f"{run} is not an image generation model; interpolate needs one")
    frames = model.interpolate(steps=steps, rows=rows, seed=seed, labels=class_, method=method)
    with marked_as(model, seed, no_watermark):
        _write_interpolation(frames, out, steps, rows)
    console.print(f"wrote {out}")


def _write_interpolation(frames: Any, out: Path, steps: int, rows: int) -> None:
    from .visual import grid_image, save_grid, write_animation

    if out.suffix.lower() == ".png":
        save_grid(frames, out, nrow=steps, scale=max(1, 64 // frames.shape[-1]))
    else:
        per_step = frames.view(rows, steps, *frames.shape[1:]).transpose(0, 1)
        scale = max(1, 64 // frames.shape[-1])
        pics = [grid_image(f, nrow=rows) for f in per_step]
        pics = [p.resize((p.width * scale, p.height * scale)) for p in pics]
        pics = pics + pics[::-1][1:-1]  # ping-pong so the loop has no jump
        write_animation(pics, out, duration_ms=120)


@app.command()
def serve(
    runs: List[Path] = typer.Argument(..., help="run directories (live or finished) and/or exported model directories"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to bind; 0.0.0.0 exposes the app to the network"),
    port: int = typer.Option(7860, "--port", min=1, max=65535),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Web app: a tab per capability of the loaded models, plus a live training monitor."""
    from .serve import start

    server = start(list(runs), host=host, port=port, device=device, warn=lambda msg: console.print(f"[yellow]{msg}"))
    console.print(f"gancv serve: {server.url}  (models: {', '.join(server.catalog.models)}; Ctrl+C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        server.close()


@app.command()
def detect(
    images: List[Path] = typer.Argument(..., help="image files to check for gancv's watermark and metadata"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (a list of per-file reports)"),
) -> None:
    """Say whether images carry gancv's invisible watermark (and which model id) and its metadata."""
    from .provenance import inspect

    reports, bad = [], []
    for path in images:
        try:
            reports.append(inspect(path))
        except GancvError as exc:  # one bad file must not hide the verdicts on the others
            reports.append({"path": str(path), "error": str(exc)})
            bad.append(str(exc))
    if as_json:
        _emit_json({"results": reports})
    else:
        for r in reports:
            if "error" in r:
                print(f"{r['path']}: error: {r['error']}")
                continue
            mid = f" model id {r['model_id']}" + ("" if r["id_verified"] else " (unverified)") if r["model_id"] else ""
            meta = r["metadata"]
            meta_txt = (f"metadata: AI-generated by gancv, model id {meta.get('gancv:model_id', '?')}"
                        if meta.get("gancv:ai_generated") else "metadata: none")
            print(f"{r['path']}: watermark {r['watermark']}{mid}; {meta_txt}")
    if bad and len(bad) == len(images):
        raise GancvError(bad[0] if len(bad) == 1 else f"none of the {len(bad)} files could be read as images")


def _save_gif(frames: list[Any], path: Path, duration: int = 120, scale: int = 1) -> None:
    from .visual import tensor_to_pil, write_animation

    pics = [tensor_to_pil(f) for f in frames]
    if scale > 1:
        pics = [p.resize((p.width * scale, p.height * scale)) for p in pics]
    write_animation(pics, path, duration_ms=duration)


@app.command()
def project(
    run: Path = typer.Argument(..., help="StyleGAN run directory or exported model directory"),
    image: Path = typer.Argument(..., help="the image to reconstruct (resized/converted to the model's format)"),
    out: Path = typer.Option(..., "--out", "-o", help="directory for reconstruction.png, latent.npy, progress.gif"),
    steps: int = typer.Option(300, "--steps", min=1, help="optimisation steps"),
    w_plus: bool = typer.Option(True, "--w-plus/--w", help="one w per layer (W+, default) or one shared w"),
    lr: float = typer.Option(0.05, "--lr"),
    loss: str = typer.Option("auto", "--loss", help="auto (lpips+l2 when the LPIPS AlexNet weights are cached, "
                             "else l2), l2, lpips or lpips+l2"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """GAN inversion: optimise a latent in W/W+ so the generator reproduces IMAGE."""
    import numpy as np
    import torch

    from . import api
    from .inversion import load_target, resolve_loss
    from .training.checkpoint import atomic_write_json
    from .visual import save_grid, save_image

    if not image.is_file():
        raise GancvError(f"{image}: no such image file")
    _check_out_parent(out)
    loss = resolve_loss(loss)  # a missing LPIPS backbone stops here, before the model loads
    model = api.load(run, device=device)
    if getattr(model, "task", None) != "generation" or model.kind != "image":
        raise GancvError(f"{run} is not an image generation model; project needs a StyleGAN model")
    target, notes = load_target(image, model.shape)
    for note in notes:
        console.print(f"note: {image}: {note}")
    model.require("project")
    result = model.project(target, steps=steps, w_plus=w_plus, lr=lr, seed=seed, loss=loss)
    out.mkdir(exist_ok=True)
    scale = max(1, 128 // result.image.shape[-1])
    with marked_as(model, seed, no_watermark=False):
        save_image(result.image, out / "reconstruction.png")
        save_grid(torch.stack([result.target, result.image]), out / "comparison.png", nrow=2, scale=scale)
        _save_gif(result.frames, out / "progress.gif", scale=scale)
    tmp = out / ".latent.tmp.npy"
    np.save(tmp, result.ws.numpy())
    tmp.replace(out / "latent.npy")
    report = {"image": str(image), "psnr_db": round(result.psnr, 2), "steps": steps, "space": "w+" if w_plus else "w",
              "loss": result.loss, "final_l2": round(result.l2, 6),
              "final_lpips": None if result.lpips is None else round(result.lpips, 4),
              "notes": notes, "latent": str(out / "latent.npy")}
    if result.loss == "l2":
        from .metrics.reference import lpips_status

        available, why = lpips_status()
        if not available:
            report["lpips_note"] = why  # which file would enable the perceptual loss
    atomic_write_json(out / "report.json", report)
    if as_json:
        _emit_json(report)
    else:
        console.print(f"PSNR {result.psnr:.2f} dB ({result.loss} loss); wrote {out}/reconstruction.png, "
                      "comparison.png, latent.npy, progress.gif")


@app.command()
def directions(
    run: Path = typer.Argument(..., help="StyleGAN run directory or exported model directory"),
    out: Path = typer.Option(..., "--out", "-o", help="directory: one grid per direction + directions.npy"),
    method: str = typer.Option("sefa", "--method", help="sefa (closed form) or labels (one per class: conditional "
                               "models, or unconditional ones trained on labelled data)"),
    num: Optional[int] = typer.Option(None, "--num", min=1, help="how many directions (sefa: strongest first, "
                                      "default 5; labels: default every class)"),
    labels: Optional[str] = typer.Option(None, "--labels", help="labels: labelled real data to train the labelling "
                                         "classifier on (default: the model's training data)"),
    samples: int = typer.Option(2000, "--samples", min=8, help="labels, unconditional model: generated images to label"),
    confidence: float = typer.Option(0.9, "--confidence", help="labels: keep images the classifier labels this surely"),
    strength: float = typer.Option(3.0, "--strength", help="grids span -strength ... +strength"),
    steps: int = typer.Option(7, "--steps", min=2, help="columns per grid"),
    rows: int = typer.Option(4, "--rows", min=1, help="random samples per grid (ignored with --latent)"),
    latent: Optional[Path] = typer.Option(None, "--latent", help="edit this projected latent.npy instead of samples"),
    seed: int = typer.Option(0, "--seed"),
    truncation: Optional[float] = typer.Option(None, "--truncation", help="psi in W for the random samples"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Find latent directions and write a grid per direction (rows: samples, columns: -k ... +k)."""
    import numpy as np

    from . import api
    from .visual import save_grid

    _check_out_parent(out)
    model = api.load(run, device=device)
    if getattr(model, "task", None) != "generation" or model.kind != "image":
        raise GancvError(f"{run} is not an image generation model; directions need a StyleGAN model")
    model.require("directions")
    if method != "labels" and labels is not None:
        raise GancvError("--labels is for --method labels; drop it or add --method labels")
    found = None
    if method == "labels":
        found = model.label_directions(data=labels, samples=samples, confidence=confidence, seed=seed, log=_note)
        dirs, scores = found.directions[:num], found.boundary_accuracy[:num]
    else:
        dirs, scores = model.directions(method=method, num=num or 5)
    if latent is not None:
        if not latent.is_file():
            raise GancvError(f"--latent {latent}: no such file; `gancv project` writes DIR/latent.npy")
        try:
            ws = np.load(latent, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise GancvError(f"--latent {latent}: not a .npy array ({exc})") from None
    else:
        ws = model.ws(rows, seed=seed, truncation=truncation)
    out.mkdir(exist_ok=True)
    tmp = out / ".directions.tmp.npy"
    np.save(tmp, dirs.cpu().numpy())
    tmp.replace(out / "directions.npy")
    with marked_as(model, seed, no_watermark=False):
        for i, d in enumerate(dirs):
            grid = model.direction_grid(d, ws, strength=strength, steps=steps)
            save_grid(grid, out / f"direction_{i:02d}.png", nrow=steps, scale=max(1, 64 // grid.shape[-1]))
    if found is not None:
        from .training.checkpoint import atomic_write_json

        summary = found.summary()
        atomic_write_json(out / "report.json", {"method": "labels", **summary,
                                                "grids": [f"direction_{i:02d}.png" for i in range(len(dirs))]})
        names = ", ".join(f"{i}: {n} ({float(a):.2f})" for i, (n, a) in enumerate(zip(summary["class_names"], scores)))
        clf = ("" if found.classifier_accuracy is None else
               f"; labelling classifier {found.classifier_accuracy:.1%} on held-out real images")
        console.print(f"wrote {len(dirs)} label direction grids to {out} ({found.source}{clf}); "
                      f"direction: class (W boundary accuracy): {names}")
        if found.skipped:
            console.print(f"note: classes {found.skipped} had too few confidently labelled samples for a direction "
                          f"(confident per class: {found.counts})")
    else:
        console.print(f"wrote {len(dirs)} direction grids ({method}; scores {', '.join(f'{float(s):.3g}' for s in scores)}) to {out}")
def _translate_inputs(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(file, name relative to its input) for every image among the inputs (folders recursively)."""
    from .data.images import is_image_name

    found: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and is_image_name(p.name)
                           and not any(part.startswith(".") for part in p.relative_to(item).parts))
            if not files:
                raise GancvError(f"{item} contains no images to translate")
            found += [(f, f.relative_to(item)) for f in files]
        elif item.is_file():
            found.append((item, Path(item.name)))
        else:
            raise GancvError(f"{item} does not exist; give image files or folders of images")
    return found


PRECISION_HELP = ("auto (bf16 where the CPU/GPU has bf16 matrix units, about 3x faster on CPU and within about "
                  "one grey level of fp32; fp32 elsewhere), fp32 or bf16")


@app.command()
def translate(
    run: Path = typer.Argument(..., help="pix2pix or cyclegan run directory (or exported model directory)"),
    inputs: List[Path] = typer.Argument(..., help="image files and/or folders of images, any size"),
    out: Path = typer.Option(..., "--out", "-o", help="an image file (one input) or a directory"),
    direction: Optional[str] = typer.Option(None, "--direction", help="a2b or b2a (default: a2b when the model has it)"),
    tile: int = typer.Option(512, "--tile", min=80, help="tile size in pixels; memory is bounded by it"),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    no_watermark: bool = typer.Option(False, "--no-watermark", help=NO_WATERMARK_HELP),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Translate images into the other domain; outputs keep each input's size."""
    from . import api

    if direction not in (None, "a2b", "b2a"):
        raise GancvError(f"--direction {direction}: use a2b or b2a")
    _check_out_parent(out)
    model = api.load(run, device=device)
    if not hasattr(model, "translate"):
        raise GancvError(f"{run} is a {model.task} model; `gancv translate` needs a pix2pix or cyclegan model")
    files = _translate_inputs(list(inputs))
    single = len(files) == 1 and out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") and not out.is_dir()
    if not single:
        if out.exists() and not out.is_dir():
            raise GancvError(f"--out {out}: several images need a directory, and {out} is a file")
        out.mkdir(exist_ok=True)
    with marked_as(model, None, no_watermark):
        done, bad = _translate_files(model, files, out, single, direction, tile, precision)
    if bad:
        console.print(f"skipped {len(bad)} unreadable file(s), e.g. {bad[0]}")
    if not done:
        raise GancvError(f"none of the {len(files)} inputs could be translated (e.g. {bad[0]})")
    console.print(f"translated {done} image(s) to {out}")


def _translate_files(model: Any, files: list[tuple[Path, Path]], out: Path, single: bool, direction: str | None,
                     tile: int, precision: str) -> tuple[int, list[str]]:
    from .visual import save_image

    done, bad = 0, []
    for path, rel in files:
        try:
            image = model.translate(path, direction=direction, tile=tile, precision=precision)
        except GancvError as exc:
            if single or len(files) == 1:
                raise
            bad.append(str(exc))  # one unreadable file in a folder does not stop the batch
            continue
        target = out if single else (out / rel).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(image, target)
        done += 1
    return done, bad


# ---- restoration ------------------------------------------------------------------------------
def _read_input(path: Path) -> Any:
    from .data.images import BadImage, decode_image

    if not path.is_file():
        raise GancvError(f"{path}: no such image file")
    try:
        img, notes = decode_image(path)
    except BadImage as exc:
        raise GancvError(f"{path}: {exc}; give a PNG/JPEG/... image") from None
    for line in notes:
        console.print(f"note: {path}: {line}")
    return img


def _load_task_model(run: Path, task: str, device: str, command: str) -> Any:
    from . import api

    model = api.load(run, device=device)
    if getattr(model, "task", None) != task:
        raise GancvError(f"{run} is a {getattr(model, 'task', '?')} model; `gancv {command}` needs a model trained for {task}")
    return model


def _note(msg: str) -> None:
    console.print(f"note: {msg}")


@app.command()
def upscale(
    run: Path = typer.Argument(..., help="super-resolution run or model directory"),
    inputs: List[Path] = typer.Argument(..., help="image files to enlarge"),
    out: Path = typer.Option(..., "--out", "-o", help="output image (one input) or directory (one file per input)"),
    scale: Optional[int] = typer.Option(None, "--scale", help="check the model's factor (2, 4, 8)"),
    tile: int = typer.Option(320, "--tile", help="tile size in input pixels (bounds memory)"),
    overlap: int = typer.Option(16, "--overlap", help="tile overlap in input pixels (blended, no seams)"),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    ensemble: bool = typer.Option(False, "--ensemble", help="average the 8 flips/rotations (self-ensemble): 8x slower, a little sharper"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Enlarge images with a trained super-resolution model (tiled, bounded memory)."""
    from .visual import save_image

    model = _load_task_model(run, "super-resolution", device, "upscale")
    model.check_scale(scale)
    one_file = len(inputs) == 1 and out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
    if one_file:
        _check_out_parent(out)
    else:
        if out.suffix and not out.is_dir():
            raise GancvError(f"--out {out}: several inputs need an output directory, not a file name")
        _check_out_parent(out)
        out.mkdir(exist_ok=True)
    images = [_read_input(p) for p in inputs]  # all inputs are checked before any work
    for path, img in zip(inputs, images):
        t0 = time.perf_counter()
        result = model.upscale(img, tile=tile, overlap=overlap, precision=precision, ensemble=ensemble, note=_note)
        target = out if one_file else out / f"{path.stem}_x{model.scale}.png"
        with marked_as(model, None, no_watermark=False):
            save_image(result, target)
        console.print(f"{path} ({img.width}x{img.height}) -> {target} ({result.shape[-1]}x{result.shape[-2]}) "
                      f"in {time.perf_counter() - t0:.1f} s")


@app.command()
def inpaint(
    run: Path = typer.Argument(..., help="inpainting run or model directory"),
    input: Path = typer.Argument(..., help="image file with a hole to fill"),
    mask: Path = typer.Option(..., "--mask", "-m", help="mask image of the same size: white = fill, black = keep"),
    out: Path = typer.Option(..., "--out", "-o", help="output image (.png recommended: JPEG would alter known pixels)"),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Fill the white part of MASK in INPUT; every other pixel is kept exactly."""
    from .visual import save_image

    _check_out_parent(out)
    model = _load_task_model(run, "inpainting", device, "inpaint")
    image, mask_img = _read_input(input), _read_input(mask)
    result = model.inpaint(image, mask_img, precision=precision, note=_note)
    # Metadata only: an invisible watermark changes every pixel a little, and inpainting promises
    # that the known pixels come back exactly as they were.
    with marked_as(model, None, no_watermark=True):
        save_image(result, out)
    console.print(f"wrote {out}")


# ---- evaluation and synthetic data --------------------------------------------------------------
@app.command()
def evaluate(
    run: Optional[Path] = typer.Argument(None, help="run or model directory to sample from (or use --fake)"),
    fake: Optional[Path] = typer.Option(None, "--fake", help="generated images: a folder or an .npz with 'samples' (uint8 N,H,W,C)"),
    real: Optional[str] = typer.Option(None, "--real", help="real data spec (default for a run: its training data)"),
    metrics: str = typer.Option("fid", "--metrics", "-m", help="comma list: fid,kid,is,pr,dc,gan-test,cas"),
    features: str = typer.Option("digits", "--features", help="digits | inception | classifier:RUN"),
    n: int = typer.Option(10000, "-n", help="samples drawn from RUN"),
    seed: int = typer.Option(0, "--seed"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="evaluate at this size (fakes of another size are resized, with a warning)"),
    real_n: Optional[int] = typer.Option(None, "--real-n", help="use at most this many real images (default: all, up to 50,000)"),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="the FID Inception .pth file"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recompute the real set's features"),
    device: str = typer.Option("auto", "--device"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON line"),
) -> None:
    """Score generated images against a real data set (FID, KID, IS, precision/recall, ...)."""
    from .metrics import evaluate as run_eval

    result = run_eval(run, fake=fake, real=real, metrics=metrics, features=features, n=n, seed=seed,
                      image_size=image_size, real_n=real_n,
                      inception_weights=str(inception_weights) if inception_weights else None,
                      device=device, use_cache=not no_cache, log=console.print)
    if as_json:
        _emit_json(result)
        return
    table = Table("metric", "value", box=None)
    for key, value in result["metrics"].items():
        table.add_row(key, f"{value:.4f}")
    out_console.print(table)
    console.print(f"{result['n_fake']} fakes vs real {result['real']} ({result['n_real'] or '-'} images) at "
                  f"{result['image_size']} px, {result['features']} features")


@app.command()
def augment(
    run: Path = typer.Argument(..., help="class-conditional run or model directory"),
    per_class: int = typer.Option(..., "--per-class", help="images per class"),
    out: Path = typer.Option(..., "--out", "-o", help="new directory: ImageFolder layout + manifest.csv"),
    seed: int = typer.Option(0, "--seed", help="image i uses seed + i"),
    truncation: Optional[float] = typer.Option(None, "--truncation"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Write a labelled synthetic data set from a conditional generator."""
    from .synthetic import augment as write_set

    manifest = write_set(run, per_class, out, seed=seed, truncation=truncation, device=device)
    console.print(f"wrote {manifest.parent} (manifest: {manifest})")


# ---- data -------------------------------------------------------------------------------------
@data_app.command("check")
def data_check(
    data: str = typer.Argument(..., help="data spec, e.g. folder:PATH, digits, mnist"),
    data_root: str = typer.Option("data", "--data-root"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List unusable files (and conversions) in a data set; training would skip the former."""
    from .data import check_data

    report = check_data(data, data_root=data_root)
    if as_json:
        _emit_json(report.to_dict())
    else:
        for line in report.lines():
            print(line)
    if not report.ok:
        raise GancvError(f"{data}: no usable images ({report.total} looked at); fix or replace the files listed above")


# ---- benchmarks -------------------------------------------------------------------------------
@app.command()
def benchmark(
    name: str = typer.Argument(..., help="benchmark name (see `gancv benchmark list`)"),
    quick: bool = typer.Option(False, "--quick", help="the small variant CI runs"),
    device: str = typer.Option("auto", "--device"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON line"),
    model: Optional[str] = typer.Option(None, "--model", help="throughput: benchmark this generator only"),
    batch: Optional[int] = typer.Option(None, "--batch", help="throughput: batch size"),
    settings: Optional[List[str]] = typer.Option(None, "--set", help="throughput: config override key=value (repeatable)"),
) -> None:
    """Run a benchmark; prints its figures and the settings that produced them."""
    import inspect

    from .bench import BENCHMARKS

    if name == "list":
        for bname, desc in BENCHMARKS.describe().items():
            print(f"{bname:20s} {desc}")
        return
    fn = BENCHMARKS.get(name)
    extra = {k: v for k, v in {"model": model, "batch": batch, "overrides": settings}.items() if v}
    accepted = inspect.signature(fn).parameters
    for key in extra:
        if key not in accepted:
            flag = "--set" if key == "overrides" else f"--{key}"
            raise GancvError(f"benchmark {name!r} does not take {flag}; drop it (see `gancv benchmark list`)")
    t0 = time.perf_counter()
    result = fn(quick=quick, device=device, log=console.print, **extra)
    result.setdefault("seconds", round(time.perf_counter() - t0, 1))
    if as_json:
        _emit_json(result)
    else:
        out_console.print_json(json.dumps(result, default=str))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad usage or input, 1 internal error)."""
    try:
        app(args=argv, prog_name="gancv")  # standalone mode: usage errors exit 2 by themselves
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except GancvError as exc:
        print(f"gancv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gancv: interrupted; the last complete checkpoint is kept (gancv train --resume RUN)", file=sys.stderr)
        return 130
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
