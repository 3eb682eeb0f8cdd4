import pytest


@pytest.fixture(scope="session", autouse=True)
def _metrics_env(tmp_path_factory):
    """A private cache, no network, and a short classifier recipe: every test here trains the
    digits classifier at most once per resolution, in seconds."""
    import gancv.metrics.classifier as classifier

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("gancv-cache")
    mp.setenv("GANCV_CACHE", str(root / "cache"))
    mp.setenv("GANCV_OFFLINE", "1")
    mp.setenv("TORCH_HOME", str(root / "torch"))  # no Inception weights here
    mp.setattr(classifier, "DEFAULT_STEPS", 40)
    yield
    mp.undo()
