import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gancv.config import PRESETS, load_config, make_config, save_config
from gancv.errors import GancvError

REQUIRED_PRESETS = ["gan-mnist", "dcgan-mnist", "dcgan-cifar10", "dcgan-celeba64", "dcgan-digits",
                    "gan-toy2d-ring", "gan-toy2d-grid", "dcgan-faces"]


@pytest.mark.parametrize("name", REQUIRED_PRESETS)
def test_required_presets_exist(name):
    assert name in PRESETS


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_resolves(name):
    cfg = make_config(name)
    assert cfg.preset == name
    assert "name" in cfg.generator and "name" in cfg.discriminator


def test_overrides_and_nested_merge():
    cfg = make_config("dcgan-digits", ["steps=7", "generator.width=16", "lr_g=0.001"])
    assert cfg.steps == 7 and cfg.lr_g == 0.001
    assert cfg.generator == {"name": "dcgan", "width": 16}  # preset's name kept


def test_switching_model_drops_old_kwargs():
    cfg = make_config("dcgan-digits", ["generator.name=mlp"])
    assert cfg.generator == {"name": "mlp"}


def test_unknown_key_suggests():
    with pytest.raises(GancvError, match="unknown config key 'stepz'.*did you mean 'steps'"):
        make_config("dcgan-digits", ["stepz=5"])


def test_bad_type_names_key():
    with pytest.raises(GancvError, match="steps"):
        make_config("dcgan-digits", ["steps=many"])


@pytest.mark.parametrize("item", ["steps=0", "batch_size=-1", "lr_d=0", "channels=2", "image_size=2"])
def test_bad_values(item):
    with pytest.raises(GancvError):
        make_config("dcgan-digits", [item])


def test_unknown_preset_lists_valid():
    with pytest.raises(GancvError, match="choose one of: .*dcgan-digits"):
        make_config("nope")


def test_not_key_value():
    with pytest.raises(GancvError, match="key=value"):
        make_config(None, ["steps"])


def test_yaml_round_trip(tmp_path):
    cfg = make_config("gan-toy2d-ring", ["seed=3"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_corrupt_yaml(tmp_path):
    (tmp_path / "config.yaml").write_text("steps: [unclosed\n")
    with pytest.raises(GancvError, match="not a valid config"):
        load_config(tmp_path / "config.yaml")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=20), max_size=3))
def test_random_overrides_only_raise_user_errors(items):
    try:
        make_config("dcgan-digits", items)
    except GancvError:
        pass
