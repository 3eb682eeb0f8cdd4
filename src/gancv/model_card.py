"""MODEL_CARD.md for every exported model: what it was trained on, how, how well, what for.

Written by the training loop after each task export, from the resolved config, the exported
``config.json`` and ``metrics.jsonl``, so every task gets one without writing its own.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from .training.checkpoint import atomic_write_json, atomic_write_text
from .visual import read_metrics

SETTINGS = ["task", "preset", "data", "image_size", "channels", "conditional", "loss", "batch_size", "steps",
            "lr_g", "lr_d", "beta1", "beta2", "n_critic", "ema_kimg", "seed", "watermark"]

INTENDED_USE = (
    "Research, teaching and experimentation with generative adversarial networks: sampling, "
    "interpolation and the other operations its task supports, on data like the training data below."
)
LIMITATIONS = [
    "It reproduces the training data's distribution, including its biases and gaps; outputs for "
    "inputs unlike the training data are unreliable.",
    "GANs can drop modes (parts of the data never generated) and memorise training images; check "
    "the evaluation metrics below before relying on coverage or novelty.",
    "Outputs are synthetic. Do not present them as real photographs or use them to impersonate people.",
    "Image quality metrics from a small run or a small evaluation set are noisy estimates.",
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _metrics_section(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["No training metrics were logged (metrics.jsonl is empty)."]
    last = rows[-1]
    lines = [f"Last logged step {last.get('step')} of {len(rows)} log rows (from `metrics.jsonl`):", "",
             "| metric | last value |", "| --- | --- |"]
    for key, value in last.items():
        if key in ("step", "time") or not isinstance(value, (int, float)):
            continue
        lines.append(f"| {key} | {_fmt(value)} |")
    # Evaluation metrics (FID, coverage...) are logged on fewer steps than losses: show the latest of each.
    evals: dict[str, tuple[int, Any]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith(("eval_", "fid", "kid", "is_", "psnr", "ssim", "lpips", "coverage")):
                evals[key] = (row.get("step"), value)
    if evals:
        lines += ["", "Evaluation metrics (latest):", "", "| metric | value | step |", "| --- | --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} | {s} |" for k, (s, v) in sorted(evals.items())]
    return lines


def render(info: dict[str, Any], cfg: dict[str, Any], rows: list[dict[str, Any]], model_id: str) -> str:
    data = info.get("data", {}) if isinstance(info.get("data"), dict) else {}
    name = cfg.get("preset") or info.get("task", "model")
    watermark = cfg.get("watermark", True)
    lines = [
        f"# Model card: {name}",
        "",
        f"- **Model id**: `{model_id}` (embedded in the watermark of every image it writes)",
        f"- **Task**: {info.get('task', cfg.get('task'))}",
        f"- **gancv version**: {info.get('gancv_version', '?')}",
        f"- **Generator**: {_fmt(info.get('generator', {}))}" if info.get("generator") else "",
        "",
        "## Training data",
        "",
        f"- **Data spec**: `{data.get('spec', cfg.get('data'))}`",
        f"- **Kind / shape**: {data.get('kind', '?')} {data.get('shape', '?')}",
        f"- **Classes**: {data.get('num_classes', 0)}"
        + (f" ({', '.join(map(str, data.get('class_names', [])[:20]))}"
           f"{', ...' if len(data.get('class_names', [])) > 20 else ''})" if data.get("class_names") else ""),
        "",
        "## Training settings",
        "",
        "| setting | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {_fmt(cfg[k])} |" for k in SETTINGS if k in cfg]
    for section in ("generator", "discriminator"):
        if section in cfg:
            lines.append(f"| {section} | {_fmt(cfg[section])} |")
    lines += ["", "## Metrics", ""] + _metrics_section(rows)
    lines += ["", "## Intended use", "", INTENDED_USE, "", "## Limitations", ""]
    lines += [f"- {item}" for item in LIMITATIONS]
    lines += ["", "## Watermark and provenance", ""]
    if watermark:
        lines.append(
            f"Images gancv writes with this model carry an invisible watermark (DWT-DCT-SVD, "
            f"invisible-watermark) with gancv's tag and the model id `{model_id}`, when they are at least "
            "256x256 px; every image also carries PNG/EXIF metadata marking it AI-generated. "
            "Check an image with `gancv detect IMAGE`. Do not remove these marks.")
    else:
        lines.append(
            "This run was trained with `watermark=false`: its preview images carry no invisible watermark "
            "(their metadata still says AI-generated). Images sampled later with `gancv sample` are "
            "watermarked unless `--no-watermark` is passed.")
    return "\n".join(line for line in lines if line is not None) + "\n"


def finish_export(model_dir: Path, cfg: DictConfig | dict[str, Any], run_dir: Path, model_id: str) -> None:
    """Record the model id (and watermark setting) in config.json and write MODEL_CARD.md beside it."""
    from .config import to_dict

    plain = to_dict(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    config_path = Path(model_dir) / "config.json"
    info = json.loads(config_path.read_text())
    info["model_id"] = model_id
    info["watermark"] = bool(plain.get("watermark", True))
    atomic_write_json(config_path, info)
    rows = read_metrics(Path(run_dir) / "metrics.jsonl")
    atomic_write_text(Path(model_dir) / "MODEL_CARD.md", render(info, plain, rows, model_id))
