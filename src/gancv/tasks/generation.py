"""Unconditional and class-conditional image (or 2-D point) generation."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from .. import __version__
from ..data import DataBundle
from ..errors import GancvError
from ..losses import LOSSES
from ..models import build
from ..training.checkpoint import atomic_write_json, save_weights
from ..training.loop import OptimizerSpec, Phase
from ..training.stream import Batch
from . import TASKS
from .inference import GenerativeModel

PREVIEW_COUNT = 64


@TASKS.register("generation", description="GAN image generation (unconditional or class-conditional)")
class GenerationTask:
    inference = GenerativeModel

    def __init__(self, cfg: DictConfig, bundle: DataBundle, device: torch.device, rng: torch.Generator):
        self.cfg, self.bundle, self.device, self.rng = cfg, bundle, device, rng
        self.num_classes = bundle.num_classes if cfg.conditional else 0
        if cfg.conditional and bundle.num_classes == 0:
            raise GancvError(f"conditional=true needs labelled data, but {cfg.data} has no classes; set conditional=false")
        shape = list(bundle.shape)
        self.G = build("generator", {**cfg.generator, "shape": shape, "z_dim": cfg.z_dim, "num_classes": self.num_classes})
        self.D = build("discriminator", {**cfg.discriminator, "shape": shape, "num_classes": self.num_classes})
        self.loss = LOSSES.get(cfg.loss)
        self.networks: dict[str, nn.Module] = {"generator": self.G, "discriminator": self.D}
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "discriminator": OptimizerSpec(("discriminator",), cfg.lr_d, betas),
            "generator": OptimizerSpec(("generator",), cfg.lr_g, betas),
        }
        self.ema_network = "generator"
        # Fixed noise (and labels) so preview grids over training show the same samples evolving.
        g = torch.Generator().manual_seed(cfg.seed + 12345)
        self.fixed_z = torch.randn(PREVIEW_COUNT, cfg.z_dim, generator=g).to(device)
        self.fixed_labels = (
            (torch.arange(PREVIEW_COUNT) % self.num_classes).to(device) if self.num_classes else None
        )

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.z_dim, device=self.device, generator=self.rng)

    def phases(self) -> list[Phase]:
        return [
            Phase("D", "discriminator", self.d_step, repeats=self.cfg.n_critic),
            Phase("G", "generator", self.g_step),
        ]

    def _labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        return labels if self.num_classes else None

    def d_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        real, labels = batch
        labels = self._labels(labels)
        with torch.no_grad():
            fake = self.G(self.noise(real.shape[0]), labels)
        d_real, d_fake = self.D(real, labels), self.D(fake, labels)
        loss = self.loss.d_loss(d_real, d_fake)
        return {"loss": loss, "d_loss": loss.detach(), "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}

    def g_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        real, labels = batch
        labels = self._labels(labels)
        fake = self.G(self.noise(real.shape[0]), labels)
        loss = self.loss.g_loss(self.D(fake, labels))
        return {"loss": loss, "g_loss": loss.detach()}

    # ---- outputs -----------------------------------------------------------------------------
    @torch.no_grad()
    def preview(self, nets: dict[str, nn.Module], path: Path) -> None:
        from ..visual import save_grid, save_scatter

        G = nets["generator"]
        was_training = G.training
        G.eval()
        if self.bundle.kind == "points":
            z = torch.randn(2000, self.cfg.z_dim, generator=torch.Generator().manual_seed(self.cfg.seed + 1)).to(self.device)
            save_scatter(G(z, None), path, reference=self.bundle.x, title=f"{self.cfg.data}")
        else:
            images = G(self.fixed_z, self.fixed_labels)
            save_grid(images, path, nrow=8 if not self.num_classes else self.num_classes,
                      scale=max(1, 64 // images.shape[-1]))
        G.train(was_training)

    def export(self, model_dir: Path, nets: dict[str, nn.Module]) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_weights(nets["generator"], model_dir / "generator.safetensors")
        atomic_write_json(model_dir / "config.json", self.model_info(nets["generator"]))

    def model_info(self, G: nn.Module) -> dict[str, Any]:
        return {
            "task": "generation",
            "gancv_version": __version__,
            "preset": self.cfg.preset,
            "data": {
                "spec": self.cfg.data,
                "kind": self.bundle.kind,
                "shape": list(self.bundle.shape),
                "num_classes": self.num_classes,
                "class_names": list(self.bundle.class_names) if self.num_classes else [],
            },
            "z_dim": self.cfg.z_dim,
            "generator": G.config,
        }
