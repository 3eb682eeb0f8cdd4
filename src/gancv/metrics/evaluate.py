"""``gancv evaluate``: score generated images against a real data set.

The real set is loaded at the evaluated resolution (``image_size``, else the run's, else the
fakes'); fakes of another size or channel count are *resized with a warning* (bilinear with
antialiasing; gray <-> RGB by averaging / repeating), never silently. Real features are cached
(see :func:`real_features`), so scoring a new model costs only its own samples' features.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GancvError
from ..registry import Registry
from .classifier import TrainRecipe, cache_key, cache_root, classifier_for_data, run_classifier, train_classifier
from .features import FeatureExtractor, create_extractor
from .prdc import density_coverage, precision_recall
from .scores import fid, inception_score, kid

METRICS = Registry("metric")
LOWER_IS_BETTER = {"fid", "kid"}
REAL_CAP = 50_000  # the StyleGAN2-ADA protocol's reference size (the full train set, up to 50k)

Log = Callable[[str], None]


@dataclass
class RealSet:
    spec: str
    size: int
    channels: int
    max_items: int | None

    @cached_property
    def bundle(self):  # noqa: ANN201 - DataBundle
        from ..data import load_data

        bundle = load_data(self.spec, image_size=self.size, channels=self.channels, max_items=self.max_items)
        if bundle.kind != "image":
            raise GancvError(f"--real {self.spec} is not an image data set; evaluate compares images")
        if len(bundle) == 0:
            raise GancvError(f"--real {self.spec} has no images")
        return bundle

    @cached_property
    def images_labels(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = self.bundle
        if b.x is not None:
            return b.x, b.y
        xs, ys = [], []
        loader = torch.utils.data.DataLoader(b.dataset, batch_size=500, num_workers=0)
        for x, y in loader:  # lazy (on-disk) sets: read them once, in order
            xs.append(x)
            ys.append(y)
        y = torch.cat(ys)
        return torch.cat(xs), (y if b.num_classes else None)

    def cache_parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"data": self.spec, "size": self.size, "channels": self.channels, "n": self.max_items}
        prefix, _, arg = self.spec.partition(":")
        if prefix in ("folder", "medmnist") and arg and Path(arg).exists():
            parts["mtime"] = Path(arg).stat().st_mtime  # an edited folder must not reuse old statistics
        return parts


@dataclass
class EvalContext:
    real: RealSet
    fake: torch.Tensor  # uint8 (N, C, H, W), already at the real set's size and channels
    fake_labels: torch.Tensor | None
    features: str
    size: int
    channels: int
    seed: int = 0
    weights: str | None = None
    device: str = "cpu"
    use_cache: bool = True
    log: Log = field(default=lambda msg: None)

    @cached_property
    def extractor(self) -> FeatureExtractor:
        return create_extractor(self.features, size=self.size, channels=self.channels, weights=self.weights,
                                device=self.device, log=self.log)

    @cached_property
    def fake_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.extractor(self.fake)

    @cached_property
    def real_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        return real_features(self.real, self.extractor, self.use_cache, self.log)

    def labelled(self, metric: str) -> torch.Tensor:
        if self.fake_labels is None:
            raise GancvError(f"{metric} scores class-conditional samples, but these have no labels: evaluate a "
                             "conditional run (conditional=true) or an npz/ImageFolder with labels")
        return self.fake_labels


def real_features(real: RealSet, extractor: FeatureExtractor, use_cache: bool = True,
                  log: Log | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features + logits of the real set, cached by data + features + resolution (+ count)."""
    parts = {**real.cache_parts(), "extractor": extractor.key, "version": 1}
    path = cache_root() / "refstats" / f"{extractor.name.split(':')[0]}-{cache_key(parts)}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return torch.from_numpy(data["features"]), torch.from_numpy(data["logits"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    images, _ = real.images_labels
    feats, logits = extractor(images)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, features=feats.numpy(), logits=logits.numpy())
        tmp.replace(path)
        if log:
            log(f"cached reference features of {real.spec} ({len(feats)} images) in {path}")
    return feats, logits


# ---- metrics -------------------------------------------------------------------------------------
@METRICS.register("fid", description="Frechet distance between real and fake feature Gaussians (lower is better)")
def _fid(ctx: EvalContext) -> dict[str, float]:
    return {"fid": fid(ctx.real_out[0].numpy(), ctx.fake_out[0].numpy())}


@METRICS.register("kid", description="kernel (cubic polynomial MMD^2) distance, unbiased; mean and std over 100 subsets")
def _kid(ctx: EvalContext) -> dict[str, float]:
    mean, std = kid(ctx.real_out[0], ctx.fake_out[0], seed=ctx.seed)
    return {"kid": mean, "kid_std": std}


@METRICS.register("is", description="Inception Score over 10 splits (higher is better; uses the extractor's class logits)")
def _is(ctx: EvalContext) -> dict[str, float]:
    mean, std = inception_score(ctx.fake_out[1], splits=10, seed=ctx.seed)
    return {"is": mean, "is_std": std}


@METRICS.register("pr", description="improved precision and recall, k=3 (Kynkaanniemi et al. 2019)")
def _pr(ctx: EvalContext) -> dict[str, float]:
    return precision_recall(ctx.real_out[0], ctx.fake_out[0], k=3)


@METRICS.register("dc", description="density and coverage, k=5 (Naeem et al. 2020)")
def _dc(ctx: EvalContext) -> dict[str, float]:
    return density_coverage(ctx.real_out[0], ctx.fake_out[0], k=5)


def _real_classifier(ctx: EvalContext):  # noqa: ANN202 - Classifier
    ext = ctx.extractor
    if ext.classifier is not None and ext.classifier.num_classes == ctx.real.bundle.num_classes:
        return ext.classifier
    if ctx.real.bundle.num_classes == 0:
        raise GancvError(f"--real {ctx.real.spec} has no class labels, so there is no classifier to score samples with")
    return classifier_for_data(ctx.real.spec, ctx.size, ctx.channels, log=ctx.log)


@METRICS.register("gan-test", description="GAN-test: accuracy of a real-data classifier on class-conditional samples")
def _gan_test(ctx: EvalContext) -> dict[str, float]:
    labels = ctx.labelled("gan-test")
    model = _real_classifier(ctx)
    if int(labels.max()) >= model.num_classes:
        raise GancvError(f"fake labels go up to {int(labels.max())} but {ctx.real.spec} has {model.num_classes} classes")
    _, logits = run_classifier(model, ctx.fake)
    return {"gan_test": float((logits.argmax(1) == labels).float().mean())}


@METRICS.register("cas", description="classification accuracy score (GAN-train): train on fakes only, test on the real set")
def _cas(ctx: EvalContext) -> dict[str, float]:
    labels = ctx.labelled("cas")
    real_x, real_y = ctx.real.images_labels
    if real_y is None:
        raise GancvError(f"--real {ctx.real.spec} has no class labels to test the CAS classifier on")
    classes = ctx.real.bundle.num_classes
    if int(labels.max()) >= classes:
        raise GancvError(f"fake labels go up to {int(labels.max())} but {ctx.real.spec} has {classes} classes")
    model = train_classifier(ctx.fake, labels, classes, TrainRecipe(seed=ctx.seed), size=ctx.size, channels=ctx.channels)
    _, logits = run_classifier(model, real_x)
    return {"cas": float((logits.argmax(1) == real_y).float().mean())}


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    if not names:
        raise GancvError(f"--metrics is empty; choose from: {', '.join(METRICS.names())}")
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise GancvError(f"unknown metric {bad[0]!r}; choose from: {', '.join(METRICS.names())}")
    return list(dict.fromkeys(names))


# ---- inputs --------------------------------------------------------------------------------------
def match_images(images: torch.Tensor, size: int, channels: int, log: Log) -> torch.Tensor:
    """Resize / convert fakes to the real set's format, with a warning that says so."""
    c, h, w = images.shape[1:]
    if (c, h, w) == (channels, size, size):
        return images
    log(f"warning: fake images are {h}x{w}x{c} but the real set is evaluated at {size}x{size}x{channels}: "
        "resizing the fakes (bilinear, antialiased; gray<->RGB by averaging/repeating). Scores across "
        "resolutions are not comparable; pass --image-size to choose the resolution")
    x = images.float()
    if c != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1)
    if (h, w) != (size, size):
        out = [F.interpolate(x[i : i + 1000], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
               for i in range(0, len(x), 1000)]
        x = torch.cat(out)
    return x.round().clamp(0, 255).to(torch.uint8)


def read_fake(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 (N, C, H, W) images (+ int labels) from an npz (``samples`` NHWC) or an image folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise GancvError(f"--fake {p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise GancvError(f"--fake {p}: pass a folder of images or an .npz with 'samples' (uint8 N,H,W,C)")
        try:
            with np.load(p, allow_pickle=False) as data:
                if "samples" not in data:
                    raise GancvError(f"--fake {p} has no 'samples' array (keys: {', '.join(data.files)})")
                samples = data["samples"]
                labels = data["labels"] if "labels" in data else None
        except GancvError:
            raise
        except Exception as exc:  # zip/npy errors come in many types; none unpickles (allow_pickle=False)
            raise GancvError(f"--fake {p} is not a readable npz ({type(exc).__name__})") from None
        if samples.dtype != np.uint8 or samples.ndim != 4 or samples.shape[-1] not in (1, 3):
            raise GancvError(f"--fake {p}: 'samples' must be uint8 (N, H, W, C) with C 1 or 3, got "
                             f"{samples.dtype} {samples.shape}")
        if len(samples) == 0:
            raise GancvError(f"--fake {p}: 'samples' is empty")
        x = torch.from_numpy(np.ascontiguousarray(samples.transpose(0, 3, 1, 2)))
        y = None
        if labels is not None:
            if labels.shape != (len(samples),) or not np.issubdtype(labels.dtype, np.integer):
                raise GancvError(f"--fake {p}: 'labels' must be integers, one per sample")
            y = torch.from_numpy(labels.astype(np.int64))
        return x, y
    from ..data import load_data

    bundle = load_data(f"folder:{p}")
    if bundle.x is None:
        loader = torch.utils.data.DataLoader(bundle.dataset, batch_size=500)
        xs, ys = zip(*loader)
        x, y = torch.cat(xs), torch.cat(ys)
    else:
        x, y = bundle.x, bundle.y
    labels = None
    if bundle.num_classes and y is not None:
        # Class folders named 0, 1, ... (gancv augment's layout) map to those indices, not to sort order.
        names = bundle.class_names
        idx = [int(n) if n.isdigit() else i for i, n in enumerate(names)]
        labels = torch.as_tensor(idx, dtype=torch.int64)[y]
    return x, labels


def _sample_run(run: str | Path, n: int, seed: int, device: str) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    from ..tasks.inference import load

    model = load(run, device=device)
    from ..tasks.inference import GenerativeModel

    if not isinstance(model, GenerativeModel) or model.kind != "image":
        raise GancvError(f"{run} is not an image generation model; evaluate scores generated images")
    labels = (torch.arange(n) % model.num_classes) if model.conditional else None
    return model, model.sample(n, labels=labels, seed=seed), labels


def evaluate_images(fake: torch.Tensor, fake_labels: torch.Tensor | None, real: str, metrics: str | Sequence[str],
                    features: str = "digits", image_size: int | None = None, channels: int | None = None,
                    real_n: int | None = None, seed: int = 0, inception_weights: str | None = None,
                    device: str = "cpu", use_cache: bool = True, log: Log | None = None) -> dict[str, Any]:
    """Score uint8 fakes (N, C, H, W) against the real data spec ``real``; returns a flat dict."""
    log = log or (lambda msg: None)
    names = parse_metrics(metrics)
    if fake.dtype != torch.uint8 or fake.dim() != 4:
        raise GancvError(f"fake images must be uint8 (N, C, H, W), got {fake.dtype} {tuple(fake.shape)}")
    if len(fake) == 0:
        raise GancvError("no fake images to evaluate")
    size = int(image_size or fake.shape[-1])
    chans = int(channels or fake.shape[1])
    fake = match_images(fake, size, chans, log)
    realset = RealSet(real, size, chans, real_n or REAL_CAP)
    ctx = EvalContext(realset, fake, fake_labels, features, size, chans, seed, inception_weights, device, use_cache, log)
    t0 = time.perf_counter()
    scores: dict[str, float] = {}
    for name in names:
        scores.update(METRICS.get(name)(ctx))
    n_real = len(ctx.real_out[0]) if any(m in names for m in ("fid", "kid", "pr", "dc")) else None
    return {"metrics": {k: (round(v, 6) if math.isfinite(v) else v) for k, v in scores.items()},
            "features": features, "real": real, "n_fake": len(fake), "n_real": n_real, "image_size": size,
            "channels": chans, "seed": seed, "seconds": round(time.perf_counter() - t0, 2)}


def evaluate(run: str | Path | None = None, *, fake: str | Path | None = None, real: str | None = None,
             metrics: str | Sequence[str] = "fid", features: str = "digits", n: int = 10_000, seed: int = 0,
             image_size: int | None = None, real_n: int | None = None, inception_weights: str | None = None,
             device: str = "auto", use_cache: bool = True, log: Log | None = None) -> dict[str, Any]:
    """Evaluate a run (``n`` samples from its EMA generator) or a folder/npz of fakes against ``real``."""
    from ..device import resolve_device

    log = log or (lambda msg: None)
    parse_metrics(metrics)  # fail on a typo before sampling anything
    if (run is None) == (fake is None):
        raise GancvError("evaluate needs exactly one of RUN (a run or model directory) or --fake PATH")
    dev = resolve_device(device)
    if run is not None:
        if not isinstance(n, int) or n < 1:
            raise GancvError(f"-n must be a positive integer, got {n!r}")
        model, images, labels = _sample_run(run, n, seed, str(dev))
        real = real or model.info["data"]["spec"]
        image_size = image_size or model.shape[-1]
        source = {"run": str(run)}
    else:
        images, labels = read_fake(fake)  # type: ignore[arg-type]
        source = {"fake": str(fake)}
        if not real:
            raise GancvError("--fake needs --real DATA (e.g. --real digits or --real folder:PATH)")
    result = evaluate_images(images, labels, real, metrics, features, image_size, None, real_n, seed,
                             inception_weights, str(dev), use_cache, log)
    return {**source, **result}
