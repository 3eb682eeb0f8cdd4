"""StyleGAN training (StyleGAN2's recipe) and the StyleGAN model users hold after training.

Training = the generation task's phases (D main; lazy R1 every ``r1_every``; G main; with its
augmentation/ADA/LeCam options) plus a lazy path-length phase every ``pl_every``. Generated batches mix the styles of two
latents with probability ``style_mixing`` (mixing regularisation). As in the paper, a lazy
phase's loss is scaled by its interval and its optimiser's lr/betas are adjusted by
c = every / (every + 1), so the regulariser has the strength it would have every step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from ..data import DataBundle
from ..errors import GancvError
from ..training.loop import Phase
from ..training.stream import Batch
from . import TASKS
from .generation import GenerationTask
from .inference import GenerativeModel, check_interpolation, slerp


def mix_styles(G: Any, z: torch.Tensor, labels: torch.Tensor | None, prob: float, rng: torch.Generator) -> torch.Tensor:
    """ws for z where, with probability ``prob``, the layers from a random cutoff on come from a second latent."""
    ws = G.map(z, labels)
    if prob > 0:
        n = z.shape[0]
        z2 = torch.randn(z.shape, device=z.device, generator=rng)
        cutoff = int(torch.randint(1, G.num_ws, (), device=z.device, generator=rng))
        if float(torch.rand((), device=z.device, generator=rng)) < prob:
            ws2 = G.map(z2, labels)
            layer = torch.arange(G.num_ws, device=z.device)[None, :, None]
            ws = torch.where(layer < cutoff, ws, ws2.expand(n, -1, -1))
    return ws


@TASKS.register("stylegan", description="StyleGAN2 training: lazy R1, path-length regulariser, style mixing")
class StyleGANTask(GenerationTask):
    def __init__(self, cfg: DictConfig, bundle: DataBundle, device: torch.device, rng: torch.Generator):
        super().__init__(cfg, bundle, device, rng)
        if not hasattr(self.G, "synthesis"):
            raise GancvError(f"task=stylegan needs a generator with a mapping network; set generator.name=stylegan "
                             f"(got {cfg.generator.name!r}) or use task=generation")
        self.pl_mean = torch.zeros((), device=device)
        # The generation task already adjusts D's optimiser for lazy R1; the lazy path-length phase does G's.
        if cfg.pl_weight > 0:
            self.optimizers["generator"] = self.optimizers["generator"].lazy(cfg.pl_every)

    def phases(self) -> list[Phase]:
        # D main, lazy R1 (with augmentation/LeCam/ADA when configured) and G main come from the
        # generation task; only the path-length phase is StyleGAN's own.
        phases = super().phases()
        if self.cfg.pl_weight > 0:
            phases.append(Phase("G_pl", "generator", self.pl_step, every=self.cfg.pl_every))
        return phases

    def fake(self, n: int, labels: torch.Tensor | None, z: torch.Tensor | None = None) -> torch.Tensor:
        ws = mix_styles(self.G, self.noise(n) if z is None else z, labels, self.cfg.style_mixing, self.local_rng())
        return self.G.synthesis(ws)

    def pl_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Path-length regularisation: ||J_w^T y|| for random image-space y should be constant."""
        real, labels = batch
        n = max(1, real.shape[0] // 2)  # half batch, as in the paper: the double backward is costly
        labels = self._labels(labels[:n] if labels is not None else None)
        ws = mix_styles(self.G, self.noise(n), labels, self.cfg.style_mixing, self.local_rng())
        img = self.G.synthesis(ws)
        y = torch.randn(img.shape, device=img.device, generator=self.local_rng()) / np.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        self.pl_mean = self.pl_mean.lerp(lengths.detach().mean(), 0.01)
        penalty = (lengths - self.pl_mean).square().mean()
        return {"loss": penalty * self.cfg.pl_weight * self.cfg.pl_every, "pl": penalty.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].to(self.device)

    def model_info(self, G: torch.nn.Module) -> dict[str, Any]:
        return {**super().model_info(G), "task": "stylegan"}


class StyleGANModel(GenerativeModel):
    """A trained StyleGAN: sampling with truncation in W, style mixing, latent directions,
    inversion (projection) and W-space interpolation. Sampling uses the generator's fixed
    noise, so the same latent always gives the same image (edits change only what they edit)."""

    capabilities = GenerativeModel.capabilities | {"style_mix", "directions", "project"}

    def __init__(self, generator: torch.nn.Module, info: dict[str, Any], device: torch.device, path: Path | None = None):
        super().__init__(generator, info, device, path)
        self.num_ws, self.w_dim = int(generator.num_ws), int(generator.w_dim)

    # ---- W space -------------------------------------------------------------------------------
    def ws(self, n: int, labels: int | Sequence[int] | torch.Tensor | None = None, seed: int | None = None,
           truncation: float | None = None) -> torch.Tensor:
        """Latents in W+ (n, num_ws, w_dim); ``truncation`` psi pulls them towards the mean w."""
        if truncation is not None and not 0 <= truncation <= 2:
            raise GancvError(f"truncation is StyleGAN's psi in W, in [0, 2] (1 = none, 0.7 typical), got {truncation}")
        z = self.noise(n, seed)
        with torch.no_grad():
            return self.generator.map(z, self._labels(n, labels), 1.0 if truncation is None else float(truncation))

    @torch.no_grad()
    def synthesize(self, ws: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """W+ latents (N, num_ws, w_dim) or W (N, w_dim) -> uint8 images (N, C, H, W)."""
        ws = self._as_ws(ws)
        outs = [self.generator.synthesis(ws[i : i + batch_size], "const").float().cpu() for i in range(0, len(ws), batch_size)]
        out = torch.cat(outs) if outs else torch.empty(0, *self.shape)
        return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    def _as_ws(self, ws: torch.Tensor | np.ndarray) -> torch.Tensor:
        ws = torch.as_tensor(np.asarray(ws) if not isinstance(ws, torch.Tensor) else ws, dtype=torch.float32).to(self.device)
        if ws.dim() == 1:
            ws = ws[None]
        if ws.dim() == 2 and ws.shape[-1] == self.w_dim and ws.shape[0] != self.num_ws:
            ws = ws[:, None].repeat(1, self.num_ws, 1)
        elif ws.dim() == 2:
            ws = ws[None]
        if ws.dim() != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise GancvError(f"latent of shape {tuple(ws.shape)} does not fit this model: it takes w ({self.w_dim},) "
                             f"or w+ ({self.num_ws}, {self.w_dim}); was it projected with another model?")
        return ws

    def sample(self, n: int, labels: int | Sequence[int] | torch.Tensor | None = None, seed: int | None = None,
               truncation: float | None = None, direction: int | None = None, strength: float = 0.0) -> torch.Tensor:
        """``n`` images; ``truncation`` is psi in W; ``direction``/``strength`` move along a SeFa direction."""
        if not isinstance(n, int) or n < 1:
            raise GancvError(f"number of samples must be a positive integer, got {n!r}")
        ws = self.ws(n, labels, seed, truncation)
        if direction is not None:
            ws = self.edit(ws, self.direction(direction), strength)
        return self.synthesize(ws)

    # ---- style mixing --------------------------------------------------------------------------
    def style_mix(self, rows: int = 4, cols: int = 4, seed: int | None = None, truncation: float | None = None,
                  cutoff: int | None = None) -> torch.Tensor:
        """The paper's mixing grid, (rows+1)*(cols+1) images row-major: the top row holds the column
        sources, the left column the row sources, and cell (r, c) takes layers < cutoff (coarse styles)
        from row source r and the rest from column source c. The top-left cell is blank."""
        cutoff = self.num_ws // 2 if cutoff is None else cutoff
        if not 1 <= cutoff < self.num_ws:
            raise GancvError(f"--cutoff must be in 1..{self.num_ws - 1} (this model has {self.num_ws} style layers), got {cutoff}")
        if rows < 1 or cols < 1:
            raise GancvError(f"style mixing needs rows >= 1 and cols >= 1, got {rows} and {cols}")
        ws = self.ws(rows + cols, None, seed, truncation)
        row_ws, col_ws = ws[:rows], ws[rows:]
        mixed = col_ws[None].repeat(rows, 1, 1, 1)  # (rows, cols, num_ws, w_dim)
        mixed[:, :, :cutoff] = row_ws[:, None, :cutoff]
        images = self.synthesize(torch.cat([row_ws, col_ws, mixed.flatten(0, 1)]))
        blank = torch.zeros_like(images[:1])
        grid = [blank, images[rows : rows + cols]]
        for r in range(rows):
            grid += [images[r : r + 1], images[rows + cols + r * cols : rows + cols + (r + 1) * cols]]
        return torch.cat(grid)

    # ---- latent directions ---------------------------------------------------------------------
    def directions(self, method: str = "sefa", num: int | None = None, samples_per_class: int = 500,
                   seed: int = 0, data: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit directions in W, (k, w_dim), with their scores (eigenvalues for SeFa, the W-space
        boundary accuracy for labels; see :meth:`label_directions` for which class each row is)."""
        from ..directions import sefa

        if method == "sefa":
            dirs, scores = sefa(self.generator)
        elif method == "labels":
            found = self.label_directions(data=data, samples_per_class=samples_per_class, seed=seed)
            dirs, scores = found.directions, found.boundary_accuracy
        else:
            raise GancvError(f"unknown direction method {method!r}; choose sefa or labels")
        return (dirs[:num], scores[:num]) if num else (dirs, scores)

    def label_directions(self, data: str | None = None, samples_per_class: int = 500, samples: int = 2000,
                         confidence: float = 0.9, seed: int = 0, log: Any = None) -> Any:
        """One W direction per class (a :class:`gancv.directions.LabelDirections`).

        A conditional model (and no ``data``): a linear classifier on w sampled per class. Otherwise
        InterFaceGAN's recipe on ``samples`` generated images labelled by a classifier trained on the
        labelled real data ``data`` (default: the data set the model was trained on)."""
        from ..directions import LabelDirections, check_sampling, classifier_directions, label_directions
        from ..metrics.classifier import heldout_classifier

        if self.conditional and data is None:
            dirs, acc = label_directions(self, samples_per_class, seed)
            return LabelDirections(dirs, list(range(self.num_classes)), list(self.class_names) or
                                   [str(c) for c in range(self.num_classes)], acc, "conditional mapping",
                                   sampled=samples_per_class * self.num_classes,
                                   counts=[samples_per_class] * self.num_classes)
        check_sampling(samples, confidence)
        spec = data or self.info["data"].get("spec")
        if not spec:
            raise GancvError("this model is unconditional and its config names no training data; label directions "
                             "need labelled images: pass --labels DATA (e.g. folder:PATH with class sub-folders)")
        try:
            clf, info = heldout_classifier(spec, self.shape[-1], self.shape[0], log=log)
        except GancvError as exc:
            raise GancvError(f"label directions need a class-conditional model or labelled data, and this model is "
                             f"unconditional: {exc}; or pass --labels DATA, or use --method sefa") from None
        found = classifier_directions(self, clf, info["class_names"], samples=samples, confidence=confidence, seed=seed)
        found.source, found.classifier_accuracy = f"classifier on {spec}", info["heldout_accuracy"]
        return found

    def direction(self, index: int, method: str = "sefa") -> torch.Tensor:
        dirs, _ = self.directions(method)
        if not 0 <= index < len(dirs):
            raise GancvError(f"--direction {index} is out of range; this model has directions 0..{len(dirs) - 1}")
        return dirs[index]

    def edit(self, ws: torch.Tensor, direction: torch.Tensor, strength: float | torch.Tensor,
             layers: slice | None = None) -> torch.Tensor:
        """Move latents along a unit direction: ws + strength * direction (on ``layers``, default all)."""
        ws = self._as_ws(ws).clone()
        ws[:, layers or slice(None)] += torch.as_tensor(strength, dtype=ws.dtype, device=ws.device).reshape(-1, 1, 1) * direction.to(ws)
        return ws

    def direction_grid(self, direction: torch.Tensor, ws: torch.Tensor, strength: float = 3.0, steps: int = 7) -> torch.Tensor:
        """Rows of edits (-strength ... +strength) for each latent in ``ws``: uint8 (rows*steps, C, H, W)."""
        ws = self._as_ws(ws)
        s = torch.linspace(-strength, strength, steps, device=self.device)
        edited = torch.cat([self.edit(w[None].expand(steps, -1, -1), direction, s) for w in ws])
        return self.synthesize(edited)

    # ---- inversion -----------------------------------------------------------------------------
    def project(self, target: torch.Tensor, steps: int = 300, w_plus: bool = True, lr: float = 0.05,
                seed: int = 0, frames: int = 24, loss: str = "auto") -> Any:
        """Invert ``target``; ``loss`` is auto (LPIPS+L2 when its backbone is cached, else L2), l2, lpips
        or lpips+l2 (see gancv.inversion)."""
        from ..inversion import project

        return project(self.generator, target, steps=steps, w_plus=w_plus, lr=lr, seed=seed, frames=frames, loss=loss)

    # ---- interpolation in W --------------------------------------------------------------------
    def interpolate(self, steps: int = 8, rows: int = 4, seed: int | None = None,
                    labels: int | Sequence[int] | None = None, method: str | None = None) -> torch.Tensor:
        """``rows`` walks between random points of W (``lerp``, the default, or ``slerp``), ``steps`` frames each."""
        method = method or "lerp"
        check_interpolation(steps, rows, method)
        if labels is not None and not isinstance(labels, int):
            labels = [int(v) for v in labels for _ in range(2)]  # one label per walk: both ends share it
        lab = self._labels(2 * rows, labels)
        z = self.noise(2 * rows, seed)
        with torch.no_grad():
            w = self.generator.map(z, lab)[:, 0].view(rows, 2, self.w_dim)
        t = torch.linspace(0, 1, steps, device=self.device)
        if method == "lerp":
            path = w[:, :1] + (w[:, 1:] - w[:, :1]) * t[None, :, None]
        else:
            path = torch.stack([slerp(w[r, 0], w[r, 1], t) for r in range(rows)])
        return self.synthesize(path.reshape(rows * steps, self.w_dim))


StyleGANTask.inference = StyleGANModel
