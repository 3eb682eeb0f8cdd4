import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# A model small enough that a few training steps take well under a second on 2 CPU cores.
TINY = [
    "data=digits", "image_size=16", "channels=1", "batch_size=16", "steps=6",
    "generator.name=dcgan", "generator.width=8", "discriminator.name=dcgan", "discriminator.width=8",
    "log_every=2", "sample_every=3", "checkpoint_every=3", "progress=false", "device=cpu",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


@pytest.fixture
def tiny_config(tiny_overrides):
    from gancv.config import make_config

    return make_config(None, tiny_overrides)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny trained run shared by read-only tests."""
    from gancv import train
    from gancv.config import make_config

    out = tmp_path_factory.mktemp("run") / "tiny"
    train(make_config(None, TINY), out=out)
    return out
