"""Feature extractors by name: ``inception``, ``digits``, ``classifier:RUN``.

An extractor maps uint8 images (N, C, H, W) to ``(features (N, D), logits (N, K))``; the logits
feed IS and GAN-test. ``key`` identifies it for the reference-statistics cache.

* ``inception``: the standard FID network (TF-Inception v3 pool3, 2048-d, as torch-fidelity /
  torchmetrics / StyleGAN2-ADA use), needed for numbers comparable with papers. Weights come
  from ``--inception-weights PATH`` or the torch hub cache; they are downloaded only when the
  machine is online, and offline the error says which file to place where.
* ``digits``: the small classifier trained on the real scikit-learn digits at the evaluated
  resolution, cached (works offline, and on images Inception was never meant for).
* ``classifier:RUN``: the same classifier trained on the data set RUN was trained on, cached
  in ``RUN/classifier``.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import GancvError
from ..registry import Registry
from .classifier import Classifier, classifier_for_data, run_classifier

FEATURES = Registry("feature extractor")

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


@dataclass
class FeatureExtractor:
    name: str
    key: dict[str, Any]
    dim: int
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = field(repr=False)
    classifier: Classifier | None = field(default=None, repr=False)  # set when logits are this data's classes
    class_names: list[str] = field(default_factory=list)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fn(images)


def _from_classifier(name: str, model: Classifier, key: dict[str, Any], class_names: list[str]) -> FeatureExtractor:
    return FeatureExtractor(name, key, model.embed.out_features, lambda x: run_classifier(model, x), model, class_names)


@FEATURES.register("digits", description="small CNN trained on the real scikit-learn digits (offline, cached)")
def digits_features(arg: str, *, size: int, channels: int, log: Any = None, **_: Any) -> FeatureExtractor:
    if arg:
        raise GancvError(f"--features digits:{arg}: 'digits' takes no argument")
    model = classifier_for_data("digits", size, 1, log=log)
    # A digits classifier reads gray images; RGB input is averaged to gray by `prepare`.
    key = {"features": "digits", "size": size, "classifier": model.config}
    return _from_classifier("digits", model, key, [str(d) for d in range(10)])


@FEATURES.register("classifier", description="classifier:RUN - small CNN trained on RUN's (labelled) training data, cached in RUN/classifier")
def run_classifier_features(arg: str, *, size: int, channels: int, log: Any = None, **_: Any) -> FeatureExtractor:
    from ..tasks.inference import read_model_info, resolve_model_dir

    if not arg:
        raise GancvError("--features classifier needs a run: classifier:RUN (a run or model directory)")
    model_dir = resolve_model_dir(arg)
    info = read_model_info(model_dir)
    data = info.get("data", {})
    spec, shape = data.get("spec"), data.get("shape")
    if not spec or not shape or len(shape) != 3:
        raise GancvError(f"{model_dir}/config.json names no image data set; classifier:RUN needs an image generation run")
    run_dir = model_dir.parent if model_dir.name == "model" else model_dir
    model = classifier_for_data(spec, int(shape[-1]), int(shape[0]), directory=run_dir / "classifier", log=log)
    key = {"features": "classifier", "data": spec, "size": model.size, "classifier": model.config}
    names = json.loads((run_dir / "classifier" / "config.json").read_text()).get("class_names", [])
    return _from_classifier(f"classifier:{arg}", model, key, names)


def inception_weights_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def _online(host: str = "github.com", timeout: float = 3.0) -> bool:
    if os.environ.get("GANCV_OFFLINE"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _missing_weights(path: Path) -> GancvError:
    return GancvError(
        f"the FID Inception weights are not at {path} and this machine is offline: download {INCEPTION_URL} "
        f"elsewhere and copy it to {path} (or pass --inception-weights PATH), or use --features digits"
    )


def _load_inception_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # weights_only: a plain state dict of tensors; a pickle with code in it is refused.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or hostile file
        raise GancvError(f"{path} is not a readable Inception state dict ({type(exc).__name__}); "
                         f"replace it with {INCEPTION_FILE} from {INCEPTION_URL}") from None
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise GancvError(f"{path} is not the FID Inception state dict (no fc.weight); use {INCEPTION_FILE}")
    return state


@FEATURES.register("inception", description="the standard FID Inception-v3 (pool3 2048-d; paper-comparable; needs its weights file)")
def inception_features(arg: str, *, size: int, channels: int, weights: str | None = None, device: str = "cpu",
                       log: Any = None, **_: Any) -> FeatureExtractor:
    if arg:
        raise GancvError(f"--features inception:{arg}: 'inception' takes no argument (use --inception-weights PATH)")
    path = inception_weights_path(weights)
    if not path.is_file():
        if weights:
            raise GancvError(f"--inception-weights {path}: no such file; it should be {INCEPTION_FILE} ({INCEPTION_URL})")
        if not _online():
            raise _missing_weights(path)
        if log:
            log(f"downloading the FID Inception weights to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
        except Exception:  # any network failure leaves the user in the offline case
            raise _missing_weights(path) from None
    state = _load_inception_state(path)
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise GancvError("--features inception needs torch-fidelity: pip install 'gancv[inception]'") from None
    # torch-fidelity reads the file with a full unpickler; hand it a copy we wrote ourselves from
    # the tensors already checked above, so a user-supplied file is never unpickled as code.
    with tempfile.TemporaryDirectory() as tmp:
        safe = Path(tmp) / INCEPTION_FILE
        torch.save(state, safe)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                          feature_extractor_weights_path=str(safe))
    dev = torch.device(device)
    net = net.to(dev).eval()

    @torch.no_grad()
    def extract(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, logits = [], []
        for i in range(0, len(images), 100):
            x = images[i : i + 100]
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            f, lg = net(x.to(dev))
            feats.append(f.cpu())
            logits.append(lg.cpu())
        return torch.cat(feats), torch.cat(logits)

    return FeatureExtractor("inception", {"features": "inception", "weights": INCEPTION_FILE}, 2048, extract)


def create_extractor(spec: str, *, size: int, channels: int, weights: str | None = None, device: str = "cpu",
                     log: Any = None) -> FeatureExtractor:
    prefix, _, arg = (spec or "").partition(":")
    factory = FEATURES.get(prefix)
    return factory(arg, size=size, channels=channels, weights=weights, device=device, log=log)
