"""gancv: generative adversarial networks for computer vision.

Python API (mirrors the CLI)::

    import gancv
    run = gancv.train(gancv.make_config("dcgan-digits", ["steps=500"]), out="runs/digits")
    model = gancv.load("runs/digits")
    images = model.sample(16, seed=0)        # uint8 (16, C, H, W)
"""
__version__ = "0.1.0"

from .api import evaluate, load, make_config, synthesize, train  # noqa: E402

__all__ = ["__version__", "train", "load", "make_config", "evaluate", "synthesize"]
