"""The Gradio app: one tab per capability the loaded models have, plus a training monitor.

Handlers are plain functions of (catalog, outputs, inputs) so tests call them without a
browser; ``build_app`` only wires them to widgets. A user mistake inside a handler becomes a
``gr.Error`` (a message in the page); the server keeps running.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from ..errors import GancvError
from .models import IMAGE_TO_IMAGE, Catalog, OutputDir, read_upload, to_tensor, write_output
from .monitor import run_status

MAX_COUNT = 64
ALL_CLASSES = "all (spread)"
DEFAULT_DIRECTION = "model default"
DEFAULT_COUNT = 16  # the Generate tab's count; the start-up warm request asks for exactly this batch


# ---- handlers ---------------------------------------------------------------------------------
def generate(catalog: Catalog, out: OutputDir, name: str, seed: float | None, class_name: str | None,
             truncation: float | None, count: float, watermark: bool = True) -> tuple[list[str], str]:
    """-> (one PNG per sample, a grid PNG to download)."""
    from ..visual import grid_image

    served = catalog.get(name)
    if not served.generates_images:
        raise GancvError(f"{name} is not an image generation model")
    model = served.model
    count = int(count or 1)
    if not 1 <= count <= MAX_COUNT:
        raise GancvError(f"count must be 1..{MAX_COUNT}, got {count}")
    seed_i = int(seed) if seed is not None else 0
    labels = None
    if class_name and class_name != ALL_CLASSES:
        names = model.class_names or [str(i) for i in range(model.num_classes)]
        if class_name not in names:
            raise GancvError(f"class {class_name!r} is not one of this model's classes")
        labels = names.index(class_name)
    images = model.sample(count, labels=labels, seed=seed_i, truncation=float(truncation) if truncation else None)
    from ..visual import tensor_to_pil

    files = [write_output(tensor_to_pil(img), out, f"{name}-s{seed_i}-{i}", served, seed_i, watermark)
             for i, img in enumerate(images)]
    grid = write_output(grid_image(images), out, f"{name}-s{seed_i}-grid", served, seed_i, watermark)
    return files, grid


def interpolate(catalog: Catalog, out: OutputDir, name: str, seed: float | None, steps: float,
                watermark: bool = True) -> tuple[list[str], str]:
    """-> (frames along one spherical path, an animated GIF of them)."""
    from ..provenance import using
    from ..visual import tensor_to_pil, write_animation
    from .models import enlarge

    served = catalog.get(name)
    if not served.generates_images:
        raise GancvError(f"{name} is not an image generation model")
    steps = int(steps or 8)
    if not 2 <= steps <= 32:
        raise GancvError(f"steps must be 2..32, got {steps}")
    seed_i = int(seed) if seed is not None else 0
    frames = served.model.interpolate(steps=steps, rows=1, seed=seed_i)
    files = [write_output(tensor_to_pil(f), out, f"{name}-i{seed_i}-{i}", served, seed_i, watermark)
             for i, f in enumerate(frames)]
    pics = [enlarge(tensor_to_pil(f)) for f in frames]
    gif = out.new(f"{name}-i{seed_i}", ".gif")
    with using(model_id=served.model_id, seed=seed_i, watermark=watermark):
        write_animation(pics + pics[::-1][1:-1], gif)
    return files, str(gif)


def image_to_image(catalog: Catalog, out: OutputDir, method: str, name: str, upload: str | None,
                   watermark: bool = True, **options: Any) -> str:
    """Translate / Upscale: one uploaded image through the model's ``method``; -> the result PNG."""
    served = catalog.get(name)
    if not served.can(method):
        raise GancvError(f"{name} cannot {method}")
    options = {k: v for k, v in options.items() if v not in (None, "", DEFAULT_DIRECTION)}
    if "direction" in options and options["direction"] not in getattr(served.model, "directions", []):
        raise GancvError(f"{name} translates {' and '.join(served.model.directions)} only, not {options['direction']!r}")
    img = read_upload(upload)
    shape = getattr(served.model, "shape", None)
    channels = int(getattr(served.model, "channels", 0) or (shape[0] if shape else 3))
    result = getattr(served.model, method)(to_tensor(img, channels), **options)
    from ..visual import tensor_to_pil

    return write_output(tensor_to_pil(result[0]), out, f"{name}-{method}", served, None, watermark)


def directions(catalog: Catalog, out: OutputDir, name: str, index: float, strength: float, seed: float | None,
               rows: float = 3, watermark: bool = True) -> str:
    """StyleGAN latent directions (SeFa): a grid, rows = samples, columns = -strength ... +strength."""
    from ..visual import grid_image

    served = catalog.get(name)
    if not served.can("directions"):
        raise GancvError(f"{name} has no latent directions (a StyleGAN model has)")
    model = served.model
    seed_i = int(seed) if seed is not None else 0
    steps = 7
    ws = model.ws(max(1, min(8, int(rows or 3))), seed=seed_i)
    grid = model.direction_grid(model.direction(int(index or 0)), ws, strength=float(strength), steps=steps)
    return write_output(grid_image(grid, nrow=steps), out, f"{name}-dir{int(index or 0)}", served, seed_i, watermark)


def project(catalog: Catalog, out: OutputDir, name: str, upload: str | None, steps: float,
            watermark: bool = True) -> tuple[str, str]:
    """StyleGAN inversion: (target | reconstruction image, a one-line report)."""
    import torch

    from ..inversion import load_target
    from ..visual import grid_image

    served = catalog.get(name)
    if not served.can("project"):
        raise GancvError(f"{name} cannot project images (a StyleGAN model can)")
    steps = int(steps or 100)
    if not 1 <= steps <= 1000:
        raise GancvError(f"steps must be 1..1000, got {steps}")
    read_upload(upload)  # the upload checks and messages every tab shares
    target, notes = load_target(upload, served.model.shape)
    result = served.model.project(target, steps=steps, seed=0)
    path = write_output(grid_image(torch.stack([result.target, result.image]), nrow=2), out, f"{name}-projection",
                        served, 0, watermark)
    return path, (f"PSNR {result.psnr:.2f} dB after {steps} steps, {result.loss} loss"
                  + (f" ({'; '.join(notes)})" if notes else ""))


def editor_mask(layers: list[Any], size: tuple[int, int]) -> Image.Image:
    """The holes the user painted: every editor layer's opaque (alpha >= 128) pixels, as a white-on-black
    mask of ``size``. The brush colour does not matter; what is painted is filled."""
    import numpy as np

    mask = np.zeros((size[1], size[0]), dtype=bool)
    for layer in layers or []:
        if not isinstance(layer, Image.Image):  # a path: what the editor hands over with type="filepath"
            with Image.open(layer) as im:
                layer = im.convert("RGBA")
        if layer.size != size:  # the editor's canvas follows the background; anything else is not a mask for it
            raise GancvError(f"the painted mask is {layer.width}x{layer.height} but the image is {size[0]}x{size[1]}; "
                             "upload the image again and paint on it")
        mask |= np.asarray(layer.convert("RGBA").getchannel("A")) >= 128
    if not mask.any():
        raise GancvError("paint over the part to fill first (the brush marks the hole; nothing is painted yet)")
    return Image.fromarray(mask.astype(np.uint8) * 255, mode="L")


def inpaint(catalog: Catalog, out: OutputDir, name: str, editor: dict[str, Any] | None) -> tuple[str, str]:
    """Fill what was painted on the uploaded image: -> (result PNG, the mask that was used).

    The result keeps the upload's size and every unpainted pixel exactly, so it is written with
    metadata only: an invisible watermark would change every pixel slightly (as ``gancv inpaint``).
    """
    from ..visual import tensor_to_pil, write_image

    served = catalog.get(name)
    if not served.can("inpaint"):
        raise GancvError(f"{name} cannot inpaint")
    if not editor or editor.get("background") is None:
        raise GancvError("upload an image first, then paint over the part to fill")
    img = read_upload(editor["background"])
    mask = editor_mask(editor.get("layers") or [], img.size)
    result = served.model.inpaint(img, mask)
    path = out.new(f"{name}-inpaint")
    write_image(tensor_to_pil(result), path, model_id=served.model_id, watermark=False)
    mask_path = out.new(f"{name}-mask")
    mask.save(mask_path)
    return str(path), str(mask_path)


def detect_upload(upload: str | None) -> str:
    from ..provenance import inspect

    if upload is None:
        raise GancvError("upload an image to check")
    read_upload(upload)  # same checks and messages as every other upload
    r = inspect(upload)
    meta = r["metadata"]
    lines = [f"**Watermark**: {r['watermark']}" + (f" — model id `{r['model_id']}`" + ("" if r["id_verified"] else " (unverified)")
                                                   if r["model_id"] else "")]
    lines.append("**Metadata**: " + (", ".join(f"{k.split(':', 1)[1]}={v}" for k, v in meta.items()) if meta else "none"))
    return "  \n".join(lines)


def monitor(catalog: Catalog, name: str | None) -> tuple[str, Any, Any]:
    import pandas as pd

    if not name:
        return "No run to monitor: start `gancv serve` with a run directory.", None, None
    served = catalog.get(name)
    status = run_status(served.run_dir or served.path)
    frame = pd.DataFrame(status.curves, columns=["step", "value", "series"])
    samples = None
    if status.samples:
        try:
            with Image.open(status.samples) as im:
                samples = im.copy()
        except OSError:  # replaced mid-read by the training loop; the next refresh shows it
            samples = None
    return status.summary, frame, samples


# ---- wiring -------------------------------------------------------------------------------------
def _ui(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User mistakes -> a message in the page (gr.Error), never a dead server or a traceback."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GancvError as exc:
            raise gr.Error(str(exc)) from None

    return wrapper


def build_app(catalog: Catalog, out: OutputDir, refresh_s: float = 2.0) -> Any:
    import gradio as gr

    gens = catalog.generators()
    runs = catalog.runs()
    with gr.Blocks(analytics_enabled=False, title="gancv") as app:
        gr.Markdown("# gancv\nModels: " + ", ".join(
            f"**{n}** ({s.task or 'training run'}{', id ' + s.model_id if s.model_id else ''})"
            for n, s in catalog.models.items()) + "  \nImages are watermarked and tagged as AI-generated.")
        with gr.Tabs():
            if gens:
                first = catalog.get(gens[0]).model
                classes = [ALL_CLASSES] + (list(first.class_names or map(str, range(first.num_classes)))
                                           if first.conditional else [])
                with gr.Tab("Generate", id="generate"):
                    with gr.Row():
                        g_model = gr.Dropdown(gens, value=gens[0], label="model")
                        g_seed = gr.Number(0, label="seed", precision=0, elem_id="generate-seed")
                        g_class = gr.Dropdown(classes, value=ALL_CLASSES, label="class")
                        g_trunc = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="truncation (0 = off)")
                        g_count = gr.Slider(1, MAX_COUNT, value=DEFAULT_COUNT, step=1, label="count")
                    g_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                    g_gallery = gr.Gallery(label="samples", columns=8, elem_id="generate-gallery", format="png")
                    g_file = gr.File(label="download grid (PNG, watermarked)")

                    def classes_for(name: str) -> Any:
                        m = catalog.get(name).model
                        choices = [ALL_CLASSES] + (list(m.class_names or map(str, range(m.num_classes))) if m.conditional else [])
                        return gr.update(choices=choices, value=ALL_CLASSES)

                    g_model.change(classes_for, g_model, g_class)
                    g_button.click(_ui(functools.partial(generate, catalog, out)),
                                   [g_model, g_seed, g_class, g_trunc, g_count], [g_gallery, g_file], api_name="generate")
                with gr.Tab("Interpolate", id="interpolate"):
                    with gr.Row():
                        i_model = gr.Dropdown(gens, value=gens[0], label="model")
                        i_seed = gr.Number(0, label="seed", precision=0)
                        i_steps = gr.Slider(2, 32, value=8, step=1, label="steps")
                    i_button = gr.Button("Interpolate", variant="primary")
                    i_gallery = gr.Gallery(label="path", columns=8, format="png")
                    i_file = gr.File(label="animation (GIF)")
                    i_button.click(_ui(functools.partial(interpolate, catalog, out)), [i_model, i_seed, i_steps],
                                   [i_gallery, i_file], api_name="interpolate")
            for title, method in IMAGE_TO_IMAGE.items():
                names = catalog.with_capability(method)
                if not names:
                    continue
                with gr.Tab(title, id=method):
                    with gr.Row():
                        m_model = gr.Dropdown(names, value=names[0], label="model")
                        inputs = [m_model]
                        if method == "translate":  # CycleGAN models go both ways
                            ways = sorted({d for n in names for d in getattr(catalog.get(n).model, "directions", [])})
                            inputs.append(gr.Dropdown([DEFAULT_DIRECTION, *ways], value=DEFAULT_DIRECTION,
                                                      label="direction", elem_id="translate-direction"))
                        else:  # upscale: the 8-flip self-ensemble, as `gancv upscale --ensemble`
                            inputs.append(gr.Checkbox(False, label="self-ensemble (8 flips/rotations, 8x slower)",
                                                      elem_id="upscale-ensemble"))
                    m_input = gr.Image(type="filepath", label="upload", sources=["upload"], elem_id=f"{method}-input")
                    m_button = gr.Button(title, variant="primary", elem_id=f"{method}-button")
                    m_output = gr.Image(type="filepath", label="result", format="png", elem_id=f"{method}-output")
                    handler = _ui(functools.partial(image_to_image, catalog, out, method))
                    if method == "translate":
                        m_button.click(lambda n, d, u, h=handler: h(n, u, direction=d), [*inputs, m_input], m_output,
                                       api_name=method)
                    else:
                        m_button.click(lambda n, e, u, h=handler: h(n, u, ensemble=bool(e)), [*inputs, m_input], m_output,
                                       api_name=method)
            fill_models = catalog.with_capability("inpaint")
            if fill_models:
                with gr.Tab("Inpaint", id="inpaint"):
                    f_model = gr.Dropdown(fill_models, value=fill_models[0], label="model")
                    gr.Markdown("Upload an image, then paint over what should be filled (white brush = hole). "
                                "Unpainted pixels come back unchanged.")
                    with gr.Row():
                        # RGBA so the painted layer keeps its alpha: that alpha is the mask.
                        f_editor = gr.ImageEditor(type="filepath", image_mode="RGBA", sources=["upload"], label="image + mask",
                                                  brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed"),
                                                  layers=False, transforms=(), elem_id="inpaint-editor")
                        f_output = gr.Image(type="filepath", label="result", format="png", elem_id="inpaint-output")
                    f_button = gr.Button("Inpaint", variant="primary", elem_id="inpaint-button")
                    f_mask = gr.Image(type="filepath", label="mask used (white = filled)", format="png", height=160)
                    f_button.click(_ui(functools.partial(inpaint, catalog, out)), [f_model, f_editor], [f_output, f_mask],
                                   api_name="inpaint")
            dir_models = catalog.with_capability("directions")
            if dir_models:
                with gr.Tab("Directions", id="directions"):
                    with gr.Row():
                        v_model = gr.Dropdown(dir_models, value=dir_models[0], label="model")
                        v_index = gr.Number(0, label="direction (0 = strongest)", precision=0)
                        v_strength = gr.Slider(0.5, 10, value=3, step=0.5, label="strength")
                        v_seed = gr.Number(0, label="seed", precision=0)
                    v_button = gr.Button("Show direction", variant="primary")
                    v_output = gr.Image(type="filepath", label="rows: samples; columns: -strength ... +strength", format="png")
                    v_button.click(_ui(functools.partial(directions, catalog, out)), [v_model, v_index, v_strength, v_seed],
                                   v_output, api_name="directions")
            proj_models = catalog.with_capability("project")
            if proj_models:
                with gr.Tab("Projection", id="projection"):
                    p_model = gr.Dropdown(proj_models, value=proj_models[0], label="model")
                    p_input = gr.Image(type="filepath", label="image to reconstruct", sources=["upload"])
                    p_steps = gr.Slider(10, 1000, value=100, step=10, label="optimisation steps")
                    p_button = gr.Button("Project", variant="primary")
                    p_output = gr.Image(type="filepath", label="target | reconstruction", format="png")
                    p_report = gr.Markdown()
                    p_button.click(_ui(functools.partial(project, catalog, out)), [p_model, p_input, p_steps],
                                   [p_output, p_report], api_name="project")
            with gr.Tab("Detect", id="detect"):
                d_input = gr.File(label="image to check", file_types=["image"])
                d_button = gr.Button("Check provenance")
                d_result = gr.Markdown()
                d_button.click(_ui(detect_upload), d_input, d_result, api_name="detect")
            if runs:
                with gr.Tab("Training monitor", id="monitor") as monitor_tab:
                    r_run = gr.Dropdown(runs, value=runs[0], label="run")
                    r_summary = gr.Markdown()
                    with gr.Row():
                        r_plot = gr.LinePlot(x="step", y="value", color="series", title="losses", height=280,
                                             elem_id="monitor-losses")
                        r_samples = gr.Image(label="latest samples", type="pil", format="png", height=300,
                                             elem_id="monitor-samples")
                    update = _ui(functools.partial(monitor, catalog))
                    # Refresh only while the tab is open: a timer ticking behind the Generate tab
                    # would compete with the user's click for the CPU (and re-reads metrics.jsonl).
                    timer = gr.Timer(refresh_s, active=False)
                    timer.tick(update, r_run, [r_summary, r_plot, r_samples], show_progress="hidden")
                    r_run.change(update, r_run, [r_summary, r_plot, r_samples])
                    monitor_tab.select(update, r_run, [r_summary, r_plot, r_samples])
                    for tab in (b for b in app.blocks.values() if isinstance(b, gr.Tab)):
                        tab.select(lambda on=tab is monitor_tab: gr.Timer(active=on), None, timer, show_progress="hidden")
    return app
