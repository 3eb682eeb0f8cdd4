"""Unconditional and class-conditional image (or 2-D point) generation."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..data import DataBundle
from ..errors import GancvError
from ..augment import AdaptiveP, augment, parse_policy
from ..losses import LOSSES, acgan_class_loss, gradient_penalty, lecam_penalty, mode_seeking_loss, r1_penalty
from ..models import build
from ..models.base import eval_mode
from ..training.checkpoint import export_model
from ..training.loop import OptimizerSpec, Phase, linear_decay
from ..training.stream import Batch
from . import TASKS
from .drs import calibrate, settings_of
from .inference import GenerativeModel

PREVIEW_COUNT = 64


def packed_shape(shape: list[int], pack: int) -> list[int]:
    """D's input shape under PacGAN packing: ``pack`` samples stacked along the first (channel,
    or coordinate) axis, e.g. (3, 32, 32) -> (3m, 32, 32), (2,) -> (2m,)."""
    return [shape[0] * pack, *shape[1:]]


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """(B, C, ...) -> (B/pack, pack*C, ...): each group of ``pack`` consecutive samples becomes one
    D input (channel concatenation for conv D; for an MLP D it equals concatenating the flattened
    samples). Real and fake batches go through the same function, so both are packed alike."""
    if pack == 1:
        return x
    if x.shape[0] % pack:
        raise GancvError(f"a batch of {x.shape[0]} samples cannot be split into packs of {pack}; "
                         "choose batch_size (and a data set at least that large) divisible by pack")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


def per_sample(D: nn.Module) -> bool:
    """True when D's output for a sample depends on that sample alone and a forward changes no
    state, so that D(cat(real, fake)) is exactly (D(real), D(fake)): the architecture says so
    (``per_sample = True``; not StyleGAN's minibatch-stddev D), and this instance has no
    BatchNorm (batch statistics) and no spectral norm (a power iteration per forward)."""
    return (getattr(D, "per_sample", False)
            and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) or hasattr(m, "parametrizations")
                        for m in D.modules()))


@TASKS.register("generation", description="GAN image generation (unconditional or class-conditional)")
class GenerationTask:
    inference = GenerativeModel

    def __init__(self, cfg: DictConfig, bundle: DataBundle, device: torch.device, rng: torch.Generator):
        self.cfg, self.bundle, self.device, self.rng = cfg, bundle, device, rng
        self.num_classes = bundle.num_classes if cfg.conditional else 0
        if cfg.conditional and bundle.num_classes == 0:
            raise GancvError(f"conditional=true needs labelled data, but {cfg.data} has no classes; set conditional=false")
        conditioning = cfg.discriminator.get("conditioning")
        if conditioning in ("projection", "acgan") and not self.num_classes:
            raise GancvError(f"discriminator.conditioning={conditioning} needs class labels: set conditional=true "
                             "with labelled data, or drop discriminator.conditioning")
        if cfg.share_fakes and cfg.n_critic > 1:
            raise GancvError(f"share_fakes=true gives D one fake batch per step, but n_critic={cfg.n_critic} "
                             "D updates need one each; set n_critic=1 or share_fakes=false")
        if cfg.share_fakes and self.num_classes and cfg.gp_weight > 0:
            raise GancvError("share_fakes=true hands D fakes drawn for the G step's labels, so WGAN-GP's "
                             "real/fake interpolates would mix classes; set share_fakes=false or gp_weight=0")
        # share_fakes: the G step's fakes (and their labels), detached, waiting for the D step.
        self._shared: tuple[torch.Tensor, torch.Tensor | None] | None = None
        # The settings read on every step, as plain values: an OmegaConf attribute read costs
        # ~20 us, and ~25 of them per step were ~10 % of a toy2d MLP step on one CPU core.
        self.share_fakes, self.gp_weight, self.lecam_weight = bool(cfg.share_fakes), cfg.gp_weight, cfg.lecam_weight
        self.mode_seeking = cfg.mode_seeking
        self.z_dim, self._decay = cfg.z_dim, (cfg.steps, cfg.lr_decay_start)
        self._phases: list[Phase] | None = None
        if cfg.pack > 1 and self.num_classes:
            raise GancvError(f"pack={cfg.pack} packs samples of different classes into one D input, which a "
                             "conditional D cannot judge; set pack=1 or conditional=false")
        shape = list(bundle.shape)
        self.pack = cfg.pack
        # Plain containers, not OmegaConf nodes: the model records its keywords as JSON (config.json).
        g_cfg, d_cfg = OmegaConf.to_container(cfg.generator), OmegaConf.to_container(cfg.discriminator)
        self.G = build("generator", {**g_cfg, "shape": shape, "z_dim": cfg.z_dim, "num_classes": self.num_classes})
        self.D = build("discriminator", {**d_cfg, "shape": packed_shape(shape, cfg.pack),
                                         "num_classes": self.num_classes})
        if cfg.gp_weight > 0 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.D.modules()):
            # The gradient penalty is per sample, but BatchNorm makes each logit depend on the whole
            # batch, so the penalised gradient is not D's (Gulrajani et al. drop BatchNorm for this).
            raise GancvError(f"gp_weight={cfg.gp_weight} (WGAN-GP) cannot be used with the BatchNorm in "
                             f"discriminator.name={d_cfg['name']}; set discriminator.spectral_norm=true (which "
                             "drops its BatchNorm), or use a discriminator without BatchNorm (e.g. mlp), or gp_weight=0")
        # One D forward over real and fake together where that is exactly two forwards: half the
        # calls (the MLP GAN's D step ran 25-45 % faster on CPU), and larger matrix products.
        self.joint_d = bool(cfg.joint_d_forward) and per_sample(self.D)
        self.loss = LOSSES.get(cfg.loss)
        # ACGAN: D has an auxiliary class head and no label input; its CE joins both players' losses.
        self.acgan = bool(getattr(self.D, "aux_classifier", False))
        self.policy = parse_policy(cfg.augment) if cfg.augment else []
        if self.policy and bundle.kind != "image":
            raise GancvError(f"augment={cfg.augment} transforms images, but {cfg.data} is {bundle.kind}; set augment=''")
        self.ada = (AdaptiveP(cfg.ada_target, cfg.batch_size, device, cfg.ada_interval, cfg.ada_kimg)
                    if cfg.ada_target > 0 else None)
        # LeCam anchors: EMAs of mean D(real) and D(fake), training state checkpointed with the run.
        self.lecam_anchors = torch.zeros(2, device=device)
        self.networks: dict[str, nn.Module] = {"generator": self.G, "discriminator": self.D}
        betas = (cfg.beta1, cfg.beta2)
        d_spec = OptimizerSpec(("discriminator",), cfg.lr_d, betas)
        self.optimizers = {
            "discriminator": d_spec.lazy(cfg.r1_every) if cfg.r1_gamma > 0 else d_spec,  # lazy R1
            "generator": OptimizerSpec(("generator",), cfg.lr_g, betas),
        }
        self.ema_network = "generator"
        # Fixed noise (and labels) so preview grids over training show the same samples evolving.
        g = torch.Generator().manual_seed(cfg.seed + 12345)
        self.fixed_z = torch.randn(PREVIEW_COUNT, cfg.z_dim, generator=g).to(device)
        self.fixed_labels = (
            (torch.arange(PREVIEW_COUNT) % self.num_classes).to(device) if self.num_classes else None
        )

    shard = (0, 1)  # (rank, world): set by the training loop when several processes train together

    def noise(self, n: int) -> torch.Tensor:
        # Every rank draws the whole global batch's noise from the same generator and keeps its
        # own slice: N processes then see exactly the noise one process would.
        rank, world = self.shard
        z = torch.randn(n * world, self.z_dim, device=self.device, generator=self.rng)
        return z[rank * n: (rank + 1) * n] if world > 1 else z

    _local_rng: torch.Generator | None = None

    def local_rng(self) -> torch.Generator:
        """Randomness that must differ between processes (augmentation, penalty interpolates).

        One process: the task's generator, as always. Several: the shared generator has to stay
        in step on every rank (it draws the noise), and drawing per-sample randomness from it
        would give sample i of every shard the same transform; so each rank gets its own
        generator, seeded once from the shared one (a resume reseeds it from the restored state).
        """
        rank, world = self.shard
        if world == 1:
            return self.rng
        if self._local_rng is None:
            seed = int(torch.randint(0, 2**62, (1,), device=self.device, generator=self.rng))
            self._local_rng = torch.Generator(device=self.device).manual_seed(seed + rank)
        return self._local_rng

    def fake(self, n: int, labels: torch.Tensor | None, z: torch.Tensor | None = None) -> torch.Tensor:
        """A generated batch from ``z`` or fresh noise (subclasses change how, e.g. StyleGAN's style mixing)."""
        return self.G(self.noise(n) if z is None else z, labels)

    def lr_factor(self, step: int) -> float:
        """LR schedule: constant, or linear decay to 0 from ``lr_decay_start * steps`` on. Annealing
        sharpens what G has learnt: at a constant LR, G's samples keep jittering around the modes."""
        return linear_decay(step, *self._decay)

    def phases(self) -> list[Phase]:
        if self._phases is None:  # built once: the loop asks twice per step
            d_phases = [Phase("D", "discriminator", self.d_step, repeats=self.cfg.n_critic)]
            if self.cfg.r1_gamma > 0:
                d_phases.append(Phase("Dreg", "discriminator", self.d_reg_step, every=self.cfg.r1_every))
            g_phase = Phase("G", "generator", self.g_step)
            # share_fakes: G steps first and D then judges the very same fakes, detached (the classic
            # recipe of PyTorch-GAN's gan.py): one G forward per step instead of two, which is ~10 % of
            # an MLP GAN's step. Otherwise D first, and G draws fresh fakes (StyleGAN2-ADA's order).
            self._phases = [g_phase, *d_phases] if self.share_fakes else [*d_phases, g_phase]
        return list(self._phases)  # a copy: subclasses extend it (StyleGAN's path-length phase)

    def _labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        return labels if self.num_classes else None

    def run_D(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D on augmented input (the same pipeline for real and fake): (logits, class logits or None).
        With ``pack > 1`` samples are augmented one by one, then packed PacGAN-style: one logit per pack."""
        if self.policy:
            x = augment(x, self.policy, self.local_rng(), self.ada.p if self.ada is not None else 1.0)
        x = pack_samples(x, self.pack)
        if self.acgan:
            return self.D.forward_with_aux(x)
        return self.D(x, labels), None

    def _d_logits(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.run_D(x, labels)[0]

    def d_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        real, labels = batch
        labels = self._labels(labels)
        if self._shared is not None:
            (fake, fake_labels), self._shared = self._shared, None
        else:
            with torch.no_grad():
                fake, fake_labels = self.fake(real.shape[0], labels), labels
        if self.joint_d:
            both = None if labels is None else torch.cat([labels, fake_labels])
            logits, aux = self.run_D(torch.cat([real, fake]), both)
            n = real.shape[0] // self.pack
            (d_real, d_fake), (c_real, c_fake) = logits.split(n), (aux.split(n) if aux is not None else (None, None))
        else:
            (d_real, c_real), (d_fake, c_fake) = self.run_D(real, labels), self.run_D(fake, fake_labels)
        adv = self.loss.d_loss(d_real, d_fake)
        loss = adv
        logs: dict[str, torch.Tensor] = {}
        if self.gp_weight > 0:
            gp = gradient_penalty(self._d_logits, real, fake, labels, generator=self.local_rng())
            loss = loss + self.gp_weight * gp
            logs["gp"] = gp.detach()
        if self.lecam_weight > 0:
            lc = lecam_penalty(d_real, d_fake, self.lecam_anchors[0], self.lecam_anchors[1])
            loss = loss + self.lecam_weight * lc
            logs["lecam"] = lc.detach()
            with torch.no_grad():
                means = torch.stack([d_real.mean(), d_fake.mean()]).to(self.lecam_anchors.dtype)
                self.lecam_anchors.lerp_(means, 1.0 - self.cfg.lecam_decay)
        if self.acgan:
            ce = acgan_class_loss(c_real, labels) + acgan_class_loss(c_fake, fake_labels)
            loss = loss + self.cfg.acgan_weight * ce
            logs["d_class"] = ce.detach()
        if self.ada is not None:
            self.ada.observe(d_real)
            logs["aug_p"] = self.ada.p.clone()
        return {"loss": loss, "d_loss": adv.detach(), "d_real": d_real.detach().mean(),
                "d_fake": d_fake.detach().mean(), **logs}

    def d_reg_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Lazy R1: run every r1_every steps and scaled by r1_every, so its average strength is gamma/2 (StyleGAN2)."""
        real, labels = batch
        penalty = r1_penalty(self._d_logits, real, self._labels(labels))
        return {"loss": penalty * (self.cfg.r1_gamma / 2 * self.cfg.r1_every), "r1": penalty.detach()}

    def g_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        real, labels = batch
        labels = self._labels(labels)
        n = real.shape[0]
        half = n // 2
        seek = self.mode_seeking > 0 and half > 0
        z = self.noise(n)
        if seek and labels is not None:
            # Mode seeking compares pairs (i, half + i) drawn for the same class.
            labels = torch.cat([labels[:half], labels[:half], labels[2 * half:]])
        fake = self.fake(n, labels, z)
        if self.share_fakes:
            self._shared = (fake.detach(), labels)
        d_fake, c_fake = self.run_D(fake, labels)
        loss = self.loss.g_loss(d_fake)
        logs = {"g_loss": loss.detach()}
        if seek:
            ms = mode_seeking_loss(fake[:half], fake[half:2 * half], z[:half], z[half:2 * half])
            loss = loss + self.mode_seeking * ms
            logs["mode_seeking"] = ms.detach()
        if self.acgan:
            ce = acgan_class_loss(c_fake, labels)
            loss = loss + self.cfg.acgan_weight * ce
            logs["g_class"] = ce.detach()
        return {"loss": loss, **logs}

    # ---- training state the loop checkpoints with the networks ----------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"lecam_anchors": self.lecam_anchors.detach().cpu()}
        if self.ada is not None:
            state["ada"] = self.ada.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "lecam_anchors" in state:
            self.lecam_anchors.copy_(state["lecam_anchors"])
        if self.ada is not None and "ada" in state:
            self.ada.load_state_dict(state["ada"])

    # ---- outputs -----------------------------------------------------------------------------
    @torch.no_grad()
    def preview(self, nets: dict[str, nn.Module], path: Path) -> None:
        from ..visual import save_grid, save_scatter

        G = nets["generator"]
        with eval_mode(G):
            if self.bundle.kind == "points":
                z = torch.randn(2000, self.cfg.z_dim, generator=torch.Generator().manual_seed(self.cfg.seed + 1)).to(self.device)
                save_scatter(G(z, None), path, reference=self.bundle.x, title=f"{self.cfg.data}")
            else:
                images = G(self.fixed_z, self.fixed_labels)
                save_grid(images, path, nrow=8 if not self.num_classes else self.num_classes,
                          scale=max(1, 64 // images.shape[-1]))

    def export(self, model_dir: Path, nets: dict[str, nn.Module]) -> None:
        G = nets["generator"]
        weights, info = {"generator": G}, self.model_info(G)
        if self.cfg.drs.enabled:
            D = self.calibrated_discriminator(G, nets["discriminator"])
            weights["discriminator"] = D
            info["drs"] = {**settings_of(self.cfg, self.pack), "discriminator": D.config}
        export_model(model_dir, weights, info)

    def calibrated_discriminator(self, G: nn.Module, D: nn.Module) -> nn.Module:
        """DRS calibration: D fine-tuned on real data vs the exported G, from a stream and noise
        of their own (seeded by the run's seed and step), so training's randomness is untouched
        and the same checkpoint always exports the same D."""
        from ..training.stream import BatchStream

        seed = self.cfg.seed * 1_000_003 + int(getattr(self, "step", 0)) + 77
        stream = BatchStream(self.bundle, self.cfg.batch_size, self.device, seed)
        g = torch.Generator(device=self.device).manual_seed(seed)

        def fake(n: int, labels: torch.Tensor | None) -> torch.Tensor:
            return G(torch.randn(n, self.z_dim, device=self.device, generator=g), labels)

        with eval_mode(G):
            return calibrate(D, fake, stream.next, self.pack, self.cfg.drs.steps, self.cfg.drs.lr,
                             (self.cfg.beta1, self.cfg.beta2), bool(self.num_classes))

    def model_info(self, G: nn.Module) -> dict[str, Any]:
        return {
            "task": "generation",
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
