"""Image-to-image translation: pix2pix (paired, Isola et al. 2017) and CycleGAN (unpaired, Zhu et al. 2017).

pix2pix: a conditional GAN whose D judges (input, output) pairs, plus lambda_l1 * ||G(x) - y||_1.
CycleGAN: G_ab, G_ba and D_a, D_b with the least-squares GAN loss, cycle consistency
lambda_A * ||G_ba(G_ab(a)) - a||_1 + lambda_B * ||G_ab(G_ba(b)) - b||_1 (both lambda_cycle unless
set apart), identity loss lambda_identity * (lambda_B * ||G_ab(b) - b||_1 + lambda_A * ||G_ba(a) - a||_1),
a 50-image history pool of fakes for the discriminators, and LRs that decay linearly to 0 over the
second half.
Both halve D's objective (the papers' "divide by 2 to slow D down").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from ..data import DataBundle
from ..errors import GancvError
from ..losses import LOSSES, palette_l1
from ..models import build
from ..models.base import eval_mode
from ..training.checkpoint import export_model
from ..training.distributed import env_dist
from ..training.loop import OptimizerSpec, Phase, linear_decay
from ..training.stream import Batch, BatchStream
from . import TASKS
from .inference import TranslationModel

PREVIEW_COUNT = 8


class ImagePool:
    """History of generated images (Shrivastava et al. 2017): with probability 1/2 D sees an older
    fake instead of the newest one, which damps oscillation between G and D."""

    def __init__(self, size: int, rng: torch.Generator):
        self.size, self.rng = size, rng
        self.images: torch.Tensor | None = None  # (count, C, H, W), filled up to ``size``

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        images = images.detach()
        n = images.shape[0]
        # one draw per batch (a single host sync), not one per image
        coin = torch.rand(n, generator=self.rng, device=self.rng.device).tolist()
        slot = torch.randint(0, self.size, (n,), generator=self.rng, device=self.rng.device).tolist()
        out = []
        for i in range(n):
            img = images[i : i + 1]
            count = 0 if self.images is None else self.images.shape[0]
            if count < self.size:  # fill the pool first; the new image is returned as is
                self.images = img.clone() if self.images is None else torch.cat([self.images, img])
                out.append(img)
            elif coin[i] < 0.5:  # hand out a stored fake and keep the new one in its place
                assert self.images is not None
                out.append(self.images[slot[i] : slot[i] + 1].clone())
                self.images[slot[i]] = img[0]
            else:
                out.append(img)
        return torch.cat(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"images": self.images.cpu() if self.images is not None else torch.empty(0)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        images = state.get("images")
        self.images = images.to(self.rng.device) if images is not None and images.numel() else None


def _check_multiple(G: nn.Module, bundle: DataBundle, cfg: DictConfig, which: str) -> None:
    size = bundle.image_shape[-1]
    if size % G.multiple:  # type: ignore[operator]
        raise GancvError(f"{which} {cfg.generator['name']!r} needs images whose side is a multiple of {G.multiple}, "
                         f"got image_size={size}; set image_size={max(G.multiple, size - size % G.multiple)} "  # type: ignore[operator]
                         "or a shallower generator (e.g. generator.num_downs)")


def _random_flip(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=rng, device=rng.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _fixed_items(bundle: DataBundle, n: int) -> torch.Tensor:
    from ..data import to_float

    return torch.stack([to_float(bundle.dataset[i][0]) for i in range(min(n, len(bundle)))])


def _info(task: str, cfg: DictConfig, bundle: DataBundle, generators: dict[str, nn.Module]) -> dict[str, Any]:
    c, h, _ = bundle.image_shape
    return {
        "task": task,
        "preset": cfg.preset,
        "data": {"spec": cfg.data, "image_size": h, "channels": c},
        "generators": {d: G.config for d, G in generators.items()},
    }


def _export(model_dir: Path, info: dict[str, Any], generators: dict[str, nn.Module]) -> None:
    # why its own function: the translation benchmark exports a model it builds without a task
    export_model(model_dir, {f"generator_{d}": G for d, G in generators.items()}, info)


@TASKS.register("pix2pix", description="paired image-to-image translation: conditional GAN + lambda * L1 (Isola et al.)")
class Pix2PixTask:
    inference = TranslationModel
    # why not CUDA-graph safe: the per-step LR schedule would be frozen into a captured graph
    graph_capturable = False

    def __init__(self, cfg: DictConfig, bundle: DataBundle, device: torch.device, rng: torch.Generator):
        self.cfg, self.bundle, self.device, self.rng = cfg, bundle, device, rng
        if "pair_channels" not in bundle.extra:
            raise GancvError(f"pix2pix needs paired data (paired:PATH or photo-pairs:STYLE), but {cfg.data} is not paired; "
                             "use task=cyclegan for unpaired data")
        c = self.c = int(bundle.extra["pair_channels"])
        self.G = build("generator", {**cfg.generator, "in_channels": c, "out_channels": c})
        _check_multiple(self.G, bundle, cfg, "generator")
        # why 2c: D judges the (input, output) pair, so it learns whether the output fits the input
        self.D = build("discriminator", {**cfg.discriminator, "in_channels": 2 * c})
        self.loss = LOSSES.get(cfg.loss)
        self.networks: dict[str, nn.Module] = {"generator": self.G, "discriminator": self.D}
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "discriminator": OptimizerSpec(("discriminator",), cfg.lr_d, betas),
            "generator": OptimizerSpec(("generator",), cfg.lr_g, betas),
        }
        self.ema_network = "generator"
        self.fixed = _fixed_items(bundle, PREVIEW_COUNT).to(device)

    def lr_factor(self, step: int) -> float:
        return linear_decay(step, self.cfg.steps, self.cfg.lr_decay_start)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A stacked pair batch -> (input, target) in the configured direction."""
        a, b = x[:, : self.c], x[:, self.c :]
        return (a, b) if self.cfg.direction == "a2b" else (b, a)

    def _batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch[0]
        return self.split(_random_flip(x, self.rng) if self.cfg.flip else x)

    def phases(self) -> list[Phase]:
        g = Phase("G", "generator", self.g_step)
        if self.cfg.lambda_gan == 0:  # the L1-only ablation: D would be trained for nothing
            return [g]
        return [Phase("D", "discriminator", self.d_step, repeats=self.cfg.n_critic), g]

    def d_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        src, tgt = self._batch(batch)
        with torch.no_grad():
            fake = self.G(src)
        d_real = self.D(torch.cat([src, tgt], 1))
        d_fake = self.D(torch.cat([src, fake], 1))
        loss = 0.5 * self.loss.d_loss(d_real, d_fake)
        return {"loss": loss, "d_loss": loss.detach(), "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}

    def g_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        src, tgt = self._batch(batch)
        fake = self.G(src)
        l1 = F.l1_loss(fake, tgt)
        loss = self.cfg.lambda_l1 * l1
        out = {"l1_loss": l1.detach()}
        if self.cfg.lambda_gan > 0:
            gan = self.loss.g_loss(self.D(torch.cat([src, fake], 1)))
            loss = loss + self.cfg.lambda_gan * gan
            out["g_loss"] = gan.detach()
        return {"loss": loss, **out}

    @torch.no_grad()
    def preview(self, nets: dict[str, nn.Module], path: Path) -> None:
        from ..visual import save_grid

        src, tgt = self.split(self.fixed)
        with eval_mode(nets["generator"]):
            rows = torch.cat([src, nets["generator"](src), tgt])  # rows: input, output, target
        save_grid(rows, path, nrow=len(src), scale=max(1, 64 // src.shape[-1]))

    def export(self, model_dir: Path, nets: dict[str, nn.Module]) -> None:
        generators = {self.cfg.direction: nets["generator"]}
        _export(model_dir, _info("pix2pix", self.cfg, self.bundle, generators), generators)


@TASKS.register("cyclegan", description="unpaired image-to-image translation: two GANs tied by cycle consistency (Zhu et al.)")
class CycleGANTask:
    inference = TranslationModel
    # why not CUDA-graph safe: domain B's stream and the image pools run host code inside the step
    graph_capturable = False

    def __init__(self, cfg: DictConfig, bundle: DataBundle, device: torch.device, rng: torch.Generator):
        self.cfg, self.bundle, self.device, self.rng = cfg, bundle, device, rng
        other = bundle.extra.get("B")
        if other is None:
            raise GancvError(f"cyclegan needs two unpaired domains (unpaired:PATH with trainA/ and trainB/, or "
                             f"photo-unpaired:STYLE), but {cfg.data} is one set; use task=pix2pix for paired data")
        self.bundle_b: DataBundle = other
        ca, cb = bundle.shape[0], other.shape[0]
        if cfg.lambda_identity > 0 and ca != cb:
            raise GancvError(f"the identity loss needs both domains to have the same channels ({ca} vs {cb}); "
                             "set lambda_identity=0 or channels=3")
        g = dict(cfg.generator)
        self.G_ab = build("generator", {**g, "in_channels": ca, "out_channels": cb})
        self.G_ba = build("generator", {**g, "in_channels": cb, "out_channels": ca})
        _check_multiple(self.G_ab, bundle, cfg, "generator")
        self.D_a = build("discriminator", {**cfg.discriminator, "in_channels": ca})
        self.D_b = build("discriminator", {**cfg.discriminator, "in_channels": cb})
        self.loss = LOSSES.get(cfg.loss)
        # why per domain: when one direction loses information (colour -> gray, photo -> posterised),
        # its cycle back can only be met by hiding the lost detail in the translation (a faint
        # pattern, Chu et al. 2017); weighting that cycle less removes the incentive
        self.lambda_a, self.lambda_b = (cfg.lambda_cycle if w is None else w for w in (cfg.lambda_cycle_a, cfg.lambda_cycle_b))
        self.networks: dict[str, nn.Module] = {"generator_ab": self.G_ab, "generator_ba": self.G_ba,
                                               "discriminator_a": self.D_a, "discriminator_b": self.D_b}
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "generator": OptimizerSpec(("generator_ab", "generator_ba"), cfg.lr_g, betas),
            "discriminator": OptimizerSpec(("discriminator_a", "discriminator_b"), cfg.lr_d, betas),
        }
        # with ema_kimg > 0 the loop averages both generators; export and previews use the averages
        self.ema_network = ("generator_ab", "generator_ba")
        # why a second stream: domain B has its own size and its own shuffling; its position is
        # part of the task state, so a resumed run draws exactly the batches it would have.
        dist = env_dist()
        self.stream_b = BatchStream(other, cfg.batch_size, device, cfg.seed + 1, cfg.num_workers,
                                    rank=dist.rank, world=dist.world, accum=cfg.grad_accum)
        self.pool_a, self.pool_b = ImagePool(cfg.pool_size, rng), ImagePool(cfg.pool_size, rng)
        self._fakes: tuple[torch.Tensor, torch.Tensor] | None = None
        self.fixed_a = _fixed_items(bundle, PREVIEW_COUNT).to(device)
        self.fixed_b = _fixed_items(other, PREVIEW_COUNT).to(device)

    def lr_factor(self, step: int) -> float:
        return linear_decay(step, self.cfg.steps, self.cfg.lr_decay_start)

    def state_dict(self) -> dict[str, Any]:
        return {"stream_b": self.stream_b.state(), "pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "stream_b" in state:
            self.stream_b.load_state(state["stream_b"])
            self.pool_a.load_state_dict(state["pool_a"])
            self.pool_b.load_state_dict(state["pool_b"])

    def _reals(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = batch[0], self.stream_b.next()[0]
        if self.cfg.flip:
            a, b = _random_flip(a, self.rng), _random_flip(b, self.rng)
        return a, b

    def phases(self) -> list[Phase]:
        # G first: its fakes (through the pools) are what D learns from next, as in the reference.
        return [Phase("G", "generator", self.g_step), Phase("D", "discriminator", self.d_step, repeats=self.cfg.n_critic)]

    def g_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        real_a, real_b = self._reals(batch)
        fake_b, fake_a = self.G_ab(real_a), self.G_ba(real_b)
        rec_a, rec_b = self.G_ba(self._jitter(fake_b)), self.G_ab(self._jitter(fake_a))
        lam_a, lam_b = self.lambda_a, self.lambda_b
        gan = self.loss.g_loss(self.D_b(fake_b)) + self.loss.g_loss(self.D_a(fake_a))
        cycle_a, cycle_b = F.l1_loss(rec_a, real_a), F.l1_loss(rec_b, real_b)
        loss = cfg.lambda_gan * gan + lam_a * cycle_a + lam_b * cycle_b
        out = {"g_loss": gan.detach(), "cycle_loss": (cycle_a + cycle_b).detach()}
        if cfg.lambda_identity > 0:
            # as in the reference: G_ba(a) ~ a is weighted with A's lambda, G_ab(b) ~ b with B's
            idt_a, idt_b = F.l1_loss(self.G_ba(real_a), real_a), F.l1_loss(self.G_ab(real_b), real_b)
            loss = loss + cfg.lambda_identity * (lam_a * idt_a + lam_b * idt_b)
            out["identity_loss"] = (idt_a + idt_b).detach()
        if cfg.lambda_palette > 0:
            palette = palette_l1(fake_b, real_b) + palette_l1(fake_a, real_a)
            loss = loss + cfg.lambda_palette * palette
            out["palette_loss"] = palette.detach()
        # why kept on the task: the D phase that follows learns from exactly these fakes (via the pools)
        self._fakes = (fake_a.detach(), fake_b.detach())
        return {"loss": loss, **out}

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` plus a random offset per image and channel (std cycle_jitter): a translation can then
        carry its input's colour back through the cycle only in a tint stronger than the jitter."""
        if self.cfg.cycle_jitter == 0:
            return x
        offset = torch.randn(x.shape[0], x.shape[1], 1, 1, generator=self.rng, device=self.rng.device)
        return x + self.cfg.cycle_jitter * offset.to(x.device, x.dtype)

    def d_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        real_a, real_b = self._reals(batch)
        if self._fakes is None:  # D before any G step (n_critic repeats reuse the pooled history)
            with torch.no_grad():
                self._fakes = (self.G_ba(real_b), self.G_ab(real_a))
        fake_a, fake_b = self.pool_a.query(self._fakes[0]), self.pool_b.query(self._fakes[1])
        loss_a = self.loss.d_loss(self.D_a(real_a), self.D_a(fake_a))
        loss_b = self.loss.d_loss(self.D_b(real_b), self.D_b(fake_b))
        loss = 0.5 * (loss_a + loss_b)
        return {"loss": loss, "d_loss": loss.detach(), "d_a": loss_a.detach(), "d_b": loss_b.detach()}

    @torch.no_grad()
    def preview(self, nets: dict[str, nn.Module], path: Path) -> None:
        from ..visual import save_grid

        G_ab, G_ba = nets["generator_ab"], nets["generator_ba"]
        a, b = self.fixed_a, self.fixed_b
        n = min(len(a), len(b))
        with eval_mode(G_ab, G_ba):
            fb, fa = G_ab(a), G_ba(b)
            # rows: A, G_ab(A), G_ba(G_ab(A)), B, G_ba(B), G_ab(G_ba(B))
            if a.shape[1] == b.shape[1]:
                rows = torch.cat([a[:n], fb[:n], G_ba(fb)[:n], b[:n], fa[:n], G_ab(fa)[:n]])
            else:  # different channel counts cannot share a grid; show the A -> B direction
                rows = fb
        save_grid(rows, path, nrow=n, scale=max(1, 64 // a.shape[-1]))

    def export(self, model_dir: Path, nets: dict[str, nn.Module]) -> None:
        generators = {"a2b": nets["generator_ab"], "b2a": nets["generator_ba"]}
        _export(model_dir, _info("cyclegan", self.cfg, self.bundle, generators), generators)
