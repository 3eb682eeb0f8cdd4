"""Mode-collapse benchmarks (PacGAN protocol): ``mode-coverage`` on the toy 2-D mixtures and
``stacked-digits`` on 1,000-mode stacked digits. Each trains our tuned preset and the plain GAN
baseline (the same networks and step budget, no packing, the classic recipe) in one process,
over several seeds, and scores them with :mod:`gancv.metrics.modes`."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import BENCHMARKS

# The classic recipe (Goodfellow et al. / DCGAN): non-saturating BCE, Adam 2e-4, betas (0.5, 0.999),
# one D step per G step, no packing, no regulariser, augmentation or EMA. Applied on top of a
# preset, it keeps the preset's data, networks, batch and step budget, so the comparison
# isolates the stabilising settings.
BASELINE = {"pack": 1, "loss": "bce", "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999,
            "n_critic": 1, "ema_kimg": 0.0, "ema_rampup": None, "r1_gamma": 0.0, "gp_weight": 0.0,
            "lecam_weight": 0.0, "augment": "", "lr_decay_start": None}

TOY_SAMPLES = 2_500      # PacGAN protocol
STACKED_SAMPLES = 25_600  # stacked-MNIST protocol

# Published figures (PacGAN, Lin et al. 2018, tables 1 and 3) to read ours against.
ANCHORS = {
    "grid": {"PacGAN4": {"modes": 24.8, "high_quality": 0.936, "reverse_kl": 0.04},
             "VEEGAN": {"modes": 24.6, "high_quality": 0.40}},
    "ring": {"PacGAN2": {"modes": 7.9, "high_quality": 0.956, "reverse_kl": 0.07}},
    "stacked-digits": {"PacDCGAN": {"modes": 1000, "reverse_kl": 0.06}, "DCGAN": {"modes": 99, "reverse_kl": 3.40}},
}

Log = Callable[[str], None]


def _train_and_sample(preset: str, overrides: dict[str, Any], n: int, seed: int, device: str) -> tuple[torch.Tensor, dict, dict]:
    """Train ``preset`` with ``overrides`` and seed ``seed``; return n samples, wall/CPU seconds and the config used."""
    model, seconds, settings = _train(preset, overrides, seed, device)
    return model.sample(n, seed=10_000 + seed), seconds, settings


def _train(preset: str, overrides: dict[str, Any], seed: int, device: str) -> tuple[Any, dict, dict]:
    """Train ``preset`` with ``overrides`` and seed ``seed``; return the loaded model, wall/CPU seconds and the config used."""
    from ..api import load, train
    from ..config import make_config, to_dict

    cfg = make_config(preset, {**overrides, "seed": seed, "device": device, "progress": False})
    # Checkpoint and preview only at the end: the benchmark times training, not disk writes.
    cfg.checkpoint_every = cfg.sample_every = cfg.steps
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        train(cfg, out=Path(tmp) / "run")
        # Wall and CPU (user + sys of this process) seconds: on a shared machine wall time
        # includes waiting for a core, CPU time does not.
        seconds = {"train_seconds": round(time.perf_counter() - t0, 1), "train_cpu_seconds": round(time.process_time() - c0, 1)}
        model = load(Path(tmp) / "run", device=device)  # weights are read now: the model outlives the directory
    settings = {k: v for k, v in to_dict(cfg).items() if k not in ("seed", "device", "progress", "data_root")}
    return model, seconds, settings


def _method_summary(runs: list[dict], keys: tuple[str, ...]) -> dict:
    from ..metrics.modes import summarise

    return {k: summarise([r[k] for r in runs]) for k in keys}


# ---- toy 2-D mixtures --------------------------------------------------------------------------
TOY_PRESETS = {"ring": "gan-toy2d-ring", "grid": "gan-toy2d-grid"}


def _method_entry(settings: dict, runs: list[dict], keys: tuple[str, ...]) -> dict:
    """One method's JSON entry: its settings, per-seed runs and mean/sd of ``keys``; with DRS also the
    acceptance and the same models' plain-sampling scores."""
    drs = "without_drs" in runs[0]
    entry = {"settings": _settings(settings), "runs": runs,
             "sampling": "discriminator rejection sampling (Azadi et al. 2019) with the run's calibrated D" if drs else "plain",
             **_method_summary(runs, (*keys, "train_seconds", "train_cpu_seconds"))}
    if drs:
        entry.update(_method_summary(runs, ("drs_acceptance", "drs_sample_cpu_seconds")))
        entry["without_drs"] = {"sampling": "plain, the same trained model and seed",
                                **_method_summary([r["without_drs"] for r in runs], keys)}
    return entry


def toy_methods(quick: bool) -> dict[str, dict[str, Any]]:
    steps = {"steps": 50} if quick else {}
    # The baseline's G is the preset's MLP (widths, activation) without the discrete latent codes,
    # and it samples plainly (no discriminator rejection sampling).
    return {"ours": dict(steps), "baseline": {**BASELINE, "generator": {"latent_codes": 0}, "drs": {"enabled": False},
                                              **steps}}


def _drs_scored(model: Any, n: int, seed: int, score: Callable[[torch.Tensor], dict[str, Any]]) -> dict[str, Any]:
    """``score`` of n samples drawn as ``gancv sample`` draws them (through DRS when the model was
    trained with it), and then the same model's plain samples, same seed, beside them (``without_drs``)."""
    if not model.has_drs:
        return score(model.sample(n, seed=10_000 + seed))
    c0 = time.process_time()
    samples, stats = model.rejection_sample(n, None, seed=10_000 + seed)  # what model.sample(n, seed) returns
    return {**score(samples), "drs_acceptance": stats["acceptance"],
            "drs_sample_cpu_seconds": round(time.process_time() - c0, 2),
            "without_drs": score(model.sample(n, seed=10_000 + seed, drs=False))}


def _toy_scores(model: Any, n: int, seed: int, centres: torch.Tensor, std: float) -> dict[str, Any]:
    """Score n samples drawn the way ``gancv sample`` draws them: a model trained with drs.enabled
    (gan-toy2d-grid) samples through discriminator rejection sampling. The same model's plain
    samples, same seed, are scored beside them (``without_drs``), so what rejection adds is shown."""
    from ..metrics.modes import score_modes

    def score(points: torch.Tensor) -> dict[str, Any]:
        s = score_modes(points, centres, std).as_dict()
        s.pop("counts")
        return s

    return _drs_scored(model, n, seed, score)


@BENCHMARKS.register("mode-coverage", description="toy2d ring/grid, PacGAN protocol: modes, % high quality, reverse KL; tuned preset vs plain GAN")
def mode_coverage(quick: bool = False, device: str = "auto", log: Log | None = None) -> dict:
    from ..data import toy2d_modes

    log = log or (lambda msg: None)
    seeds = [0] if quick else [0, 1, 2]
    result: dict[str, Any] = {"benchmark": "mode-coverage", "quick": quick, "samples": TOY_SAMPLES, "seeds": seeds,
                              "protocol": "high quality = within 3 std of the nearest mode; covered = >= 1 high-quality "
                                          "sample; reverse KL of the high-quality mode histogram vs uniform",
                              "anchors": {k: ANCHORS[k] for k in TOY_PRESETS}}
    for mixture, preset in TOY_PRESETS.items():
        centres, std = toy2d_modes(mixture)
        entry: dict[str, Any] = {"preset": preset, "modes": int(centres.shape[0]), "std": std}
        for method, overrides in toy_methods(quick).items():
            runs, settings = [], {}
            for seed in seeds:
                model, seconds, settings = _train(preset, overrides, seed, device)
                score = _toy_scores(model, TOY_SAMPLES, seed, centres, std)
                runs.append({"seed": seed, **score, **seconds})
                plain = score.get("without_drs")
                log(f"{mixture} {method} seed {seed}: {score['covered']}/{score['modes']} modes, "
                    f"{score['high_quality']:.1%} high quality, reverse KL {score['reverse_kl']}"
                    + (f" with DRS (acceptance {score['drs_acceptance']:.0%}; without: {plain['covered']} modes, "
                       f"{plain['high_quality']:.1%}, KL {plain['reverse_kl']})" if plain else "")
                    + f", {seconds['train_seconds']:.0f} s wall / {seconds['train_cpu_seconds']:.0f} s CPU")
            entry[method] = _method_entry(settings, runs, ("covered", "high_quality", "reverse_kl"))
        result[mixture] = entry
    return result


def _settings(settings: dict) -> dict:
    keep = ("steps", "batch_size", "pack", "loss", "lr_g", "lr_d", "beta1", "beta2", "n_critic", "ema_kimg",
            "ema_rampup", "lr_decay_start",
            "r1_gamma", "r1_every", "gp_weight", "lecam_weight", "augment", "z_dim", "generator", "discriminator",
            "image_size", "drs")
    return {k: settings[k] for k in keep if k in settings}


# ---- stacked digits ----------------------------------------------------------------------------
def classify_stacked(images: torch.Tensor, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 3, H, W) -> per-channel digit classes (N, 3) and their probabilities (N, 3),
    each channel read by the real-digit classifier of :mod:`gancv.metrics.digits`."""
    from ..metrics.digits import predict_proba

    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"stacked digits are (N, 3, H, W), got {tuple(images.shape)}")
    channels = images.transpose(0, 1).reshape(-1, 1, *images.shape[2:])  # channel-major: all R, then G, then B
    probs = np.concatenate([predict_proba(channels[i : i + batch]) for i in range(0, len(channels), batch)])
    probs = probs.reshape(3, images.shape[0], 10)
    return probs.argmax(-1).T, probs.max(-1).T


UNSURE = 0.5  # a channel read with top probability below this is ambiguous (chance is 0.1)


def channel_balance(classes: np.ndarray, conf: np.ndarray) -> dict:
    """Per-channel diagnostics of stacked samples: the reverse KL of each channel's digit histogram
    (R, G, B), each channel's share of every digit, and the share of channels the classifier is
    unsure of. They say whether excess KL over 1,000 modes comes from one channel over-producing
    some digits (balance) or from ambiguous strokes read as whatever digit is nearest (quality)."""
    from ..metrics.modes import reverse_kl

    counts = [np.bincount(classes[:, c], minlength=10) for c in range(3)]
    return {"channel_kl": [round(reverse_kl(c), 4) for c in counts],
            "channel_digit_share": [[round(float(v), 4) for v in c / c.sum()] for c in counts],
            "unsure_share": round(float((conf < UNSURE).mean()), 4)}


def stacked_methods(quick: bool) -> dict[str, dict[str, Any]]:
    steps = {"steps": 50} if quick else {}
    # The plain DCGAN baseline samples plainly, whatever the preset says about DRS.
    return {"ours": dict(steps), "baseline": {**BASELINE, "drs": {"enabled": False}, **steps}}


def _stacked_scores(model: Any, n: int, seed: int) -> dict[str, Any]:
    """Score n stacked samples drawn the way ``gancv sample`` draws them (through DRS when the
    model was trained with drs.enabled); a DRS model's plain samples, same seed, are scored
    beside them (``without_drs``), as the toy mixtures do."""
    from ..metrics.modes import score_stacked

    def score(images: torch.Tensor) -> dict[str, Any]:
        classes, conf = classify_stacked(images)
        return {**score_stacked(classes).as_dict(), "mean_confidence": round(float(conf.mean()), 4),
                **channel_balance(classes, conf)}

    return _drs_scored(model, n, seed, score)


@BENCHMARKS.register("stacked-digits", description="1,000-mode stacked digits: modes covered and reverse KL over 25,600 samples; tuned preset vs plain DCGAN")
def stacked_digits(quick: bool = False, device: str = "auto", log: Log | None = None) -> dict:
    from ..config import make_config
    from ..data import load_data
    from ..metrics.modes import score_stacked, uniform_kl_floor

    log = log or (lambda msg: None)
    preset = "dcgan-stacked-digits"
    seeds = [0]  # one seed: a full run trains two DCGANs and classifies 76,800 digit channels per model on CPU
    n = 500 if quick else STACKED_SAMPLES
    cfg = make_config(preset)
    # Check the judge first: how often does the classifier read a real stacked channel right?
    real = load_data("stacked-digits", image_size=cfg.image_size, channels=3, max_items=n, seed=12_345, train=False)
    classes, real_conf = classify_stacked(real.x)
    truth = np.stack([real.y.numpy() // 100, real.y.numpy() // 10 % 10, real.y.numpy() % 10], axis=1)
    accuracy = float((classes == truth).mean())
    real_score = score_stacked(classes).as_dict()
    log(f"classifier accuracy on real stacked channels: {accuracy:.2%}; real data reads as {real_score['covered']} modes, "
        f"reverse KL {real_score['reverse_kl']}")
    result: dict[str, Any] = {
        "benchmark": "stacked-digits", "quick": quick, "samples": n, "seeds": seeds, "preset": preset,
        "classifier": {"kind": "RBF-SVM on scikit-learn's real digits", "channel_accuracy": round(accuracy, 4),
                       "real_data": {**real_score, **channel_balance(classes, real_conf)}},
        "kl_floor_perfect_sampler": round(uniform_kl_floor(n, 1000), 4),
        "anchors": ANCHORS["stacked-digits"],
    }
    for method, overrides in stacked_methods(quick).items():
        runs, settings = [], {}
        for seed in seeds:
            model, seconds, settings = _train(preset, overrides, seed, device)
            score = _stacked_scores(model, n, seed)
            runs.append({"seed": seed, **score, **seconds})
            plain = score.get("without_drs")
            log(f"stacked {method} seed {seed}: {score['covered']}/1000 modes, reverse KL {score['reverse_kl']} "
                f"(R, G, B digit KL {score['channel_kl']}; {score['unsure_share']:.1%} of channels unsure)"
                + (f" with DRS (acceptance {score['drs_acceptance']:.0%}; without: {plain['covered']} modes, "
                   f"KL {plain['reverse_kl']}, {plain['unsure_share']:.1%} unsure)" if plain else "")
                + f", {seconds['train_seconds']:.0f} s wall / {seconds['train_cpu_seconds']:.0f} s CPU")
        result[method] = _method_entry(settings, runs, ("covered", "reverse_kl"))
    return result
