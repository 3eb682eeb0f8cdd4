import io
import json

import numpy as np
import pytest
from PIL import Image

import gancv
from gancv import provenance as P
from gancv.cli import main
from gancv.errors import GancvError
from gancv.visual import save_grid, write_image


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def photo():
    """A 256 px photo-like image (smooth shapes, edges, texture) made here: loading the shipped
    photographs costs seconds on a loaded CI machine; the benchmark uses the real ones."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    base = np.stack([np.sin(6 * xx + 2 * yy), np.cos(5 * yy - 3 * xx), np.sin(9 * xx * yy)], axis=-1)
    base += (((xx - 0.5) ** 2 + (yy - 0.4) ** 2) < 0.06)[..., None] * 0.8  # a disc: a hard edge
    smooth = np.asarray(Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).resize((256, 256)), float)
    img = 110 + 60 * base + 0.3 * (smooth - 128) + rng.normal(0, 4, base.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def test_payload_round_trip_and_id_check():
    bits = P.payload_bits("a1b2c3d4")
    assert bits.shape == (64,) and set(np.unique(bits)) <= {0, 1}
    found = P._parse(bits, 1.0)
    assert found.present and found.model_id == "a1b2c3d4" and found.id_verified and found.tag_errors == 0
    flipped = bits.copy()
    flipped[30] ^= 1  # one id bit wrong: still present (the tag is intact) but the checksum says unverified
    assert P._parse(flipped, 1.0).present and not P._parse(flipped, 1.0).id_verified
    with pytest.raises(GancvError, match="8 hex digits"):
        P.payload_bits("xyz")


@pytest.mark.slow
def test_block_coder_matches_invisible_watermark():
    # The vectorised coder must do exactly what the library's (slow) per-block loop does.
    lib = pytest.importorskip("imwatermark.dwtDctSvd")
    rng = np.random.default_rng(3)
    ca = rng.uniform(0, 510, (34, 37))  # not a multiple of 4: the remainder must be left alone
    ca[:8, :8] = 0  # flat blocks: singular vectors are not unique, the result must still match
    bits = P.payload_bits("c0ffee00")
    ours = P.encode_frame(ca, bits, 36)
    theirs = ca.copy()
    lib.EmbedDwtDctSvd(bits.tolist(), wmLen=64, scales=[36, 0, 0], block=4).encode_frame(theirs, 36)
    assert np.allclose(ours, theirs, atol=1e-6)
    scores = lib.EmbedDwtDctSvd([], wmLen=64, block=4).decode_frame(theirs, 36, [[] for _ in range(64)])
    lib_bits = (np.array([np.mean(x) for x in scores]) * 255 > 127).astype(np.uint8)
    assert (P.decode_frame(ours, 64, 36) == lib_bits).all() and (lib_bits == bits).all()


def test_embed_decode_png_and_jpeg(photo):
    marked = P.embed(photo, "0badcafe")
    diff = np.abs(np.asarray(marked, dtype=float) - np.asarray(photo, dtype=float))
    assert 0 < diff.mean() < 2  # invisible: on average well under 2 grey levels
    want = P.payload_bits("0badcafe")
    assert (P.decode_bits(marked) == want).mean() == 1.0
    buf = io.BytesIO()
    marked.save(buf, format="JPEG", quality=75)
    jpeg = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    found = P.detect(jpeg)
    assert found.present and found.model_id == "0badcafe"
    half = marked.resize((128, 128), Image.Resampling.BICUBIC)
    found = P.detect(half)
    # After halving the tag must be found; the id may carry a bit error (the benchmark measures how often).
    assert found.present and found.scale == 2.0
    assert (found.bits[24:56] == want[24:56]).mean() >= 0.9
    assert not P.detect(photo).present


def test_grayscale_stays_grayscale(photo):
    gray = photo.convert("L")
    marked = P.embed(gray, "12345678")
    assert marked.mode == "L" and P.detect(marked).model_id == "12345678"


def test_write_image_marks_large_and_tags_small(tmp_path, photo):
    with P.using(model_id="feedf00d", seed=7):
        write_image(photo, tmp_path / "big.png")
        write_image(photo.resize((32, 32)), tmp_path / "small.png")
        write_image(photo, tmp_path / "big.jpg")
    big = P.inspect(tmp_path / "big.png")
    assert big["watermark"] == "present" and big["model_id"] == "feedf00d" and big["id_verified"]
    meta = big["metadata"]
    assert meta["gancv:ai_generated"] == "true" and meta["gancv:seed"] == "7" and meta["gancv:model_id"] == "feedf00d"
    assert meta["gancv:watermark"].startswith("dwtDctSvd")
    small = P.inspect(tmp_path / "small.png")
    # Honest about the limit: too small to carry a watermark, but the metadata still says generated.
    assert small["watermark"] == "too small to carry one"
    assert small["metadata"]["gancv:watermark"].startswith("skipped: 32x32")
    jpg = P.inspect(tmp_path / "big.jpg")
    assert jpg["watermark"] == "present" and jpg["metadata"]["gancv:model_id"] == "feedf00d"


def test_no_watermark_is_recorded(tmp_path, photo):
    write_image(photo, tmp_path / "off.png", model_id="feedf00d", watermark=False)
    report = P.inspect(tmp_path / "off.png")
    assert report["watermark"] == "absent" and report["metadata"]["gancv:watermark"].startswith("off")


@pytest.mark.slow
def test_grid_above_minimum_is_watermarked(tmp_path):
    import torch

    images = torch.zeros(64, 1, 32, 32, dtype=torch.uint8)
    images[:, :, 8:24, 8:24] = 200
    save_grid(images, tmp_path / "grid.png", model_id="abcdef01")
    assert P.inspect(tmp_path / "grid.png")["model_id"] == "abcdef01"


def test_trained_run_has_model_card_and_id(trained_run):
    model_dir = trained_run / "model"
    info = json.loads((model_dir / "config.json").read_text())
    assert len(info["model_id"]) == 8 and info["watermark"] is True
    card = (model_dir / "MODEL_CARD.md").read_text()
    for needle in ("# Model card", info["model_id"], "digits", "## Metrics", "d_loss", "## Intended use",
                   "## Limitations", "## Watermark", "gancv detect"):
        assert needle in card
    assert gancv.load(trained_run, device="cpu").model_id == info["model_id"]
    meta = P.inspect(trained_run / "samples.png")["metadata"]
    assert meta["gancv:model_id"] == info["model_id"]


def test_cli_sample_and_detect(trained_run, tmp_path, capsys):
    model_id = json.loads((trained_run / "model" / "config.json").read_text())["model_id"]
    # 64 samples of 16 px -> a 146 px grid: below the minimum, so metadata only; --no-watermark recorded.
    assert run_cli(capsys, "sample", trained_run, "-n", 4, "--out", tmp_path / "s.png", "--seed", 3)[0] == 0
    assert run_cli(capsys, "sample", trained_run, "-n", 4, "--out", tmp_path / "n.png", "--no-watermark")[0] == 0
    assert run_cli(capsys, "interpolate", trained_run, "--out", tmp_path / "i.gif", "--steps", 2, "--rows", 1)[0] == 0
    (tmp_path / "junk.png").write_text("not an image")
    code, out, _ = run_cli(capsys, "detect", tmp_path / "s.png", tmp_path / "n.png", tmp_path / "i.gif",
                           tmp_path / "junk.png", "--json")
    assert code == 0
    results = {r["path"].rsplit("/", 1)[1]: r for r in json.loads(out.strip().splitlines()[-1])["results"]}
    assert results["s.png"]["metadata"]["gancv:model_id"] == model_id
    assert results["s.png"]["metadata"]["gancv:seed"] == "3"
    assert results["n.png"]["metadata"]["gancv:watermark"].startswith("off")
    assert results["i.gif"]["metadata"]["gancv:ai_generated"] == "true"
    assert "not a readable image" in results["junk.png"]["error"]
    code, _, err = run_cli(capsys, "detect", tmp_path / "junk.png")
    assert code == 2 and "not a readable image" in err and "Traceback" not in err
    code, out, _ = run_cli(capsys, "detect", tmp_path / "s.png")
    assert code == 0 and "AI-generated by gancv" in out


@pytest.mark.slow
def test_training_without_watermark_is_recorded(tmp_path, tiny_overrides):
    from gancv.config import load_config, make_config

    run = gancv.train(make_config(None, tiny_overrides + ["steps=1", "watermark=false"]), out=tmp_path / "r")
    assert load_config(run / "config.yaml").watermark is False
    assert "watermark=false" in (run / "model" / "MODEL_CARD.md").read_text()
    assert P.inspect(run / "samples.png")["metadata"]["gancv:watermark"].startswith("off")


@pytest.mark.slow
def test_tensorboard_logger(tmp_path, tiny_overrides):
    pytest.importorskip("tensorboard")
    from gancv.config import make_config

    run = gancv.train(make_config(None, tiny_overrides + ["steps=2", "logger=tensorboard"]), out=tmp_path / "tb")
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert "d_loss" in acc.Tags()["scalars"] and "samples" in acc.Tags()["images"]


def test_bad_logger_name():
    from gancv.config import make_config

    with pytest.raises(GancvError, match="logger"):
        make_config(None, ["logger=wandb"])


@pytest.mark.slow
def test_watermark_benchmark_quick():
    from gancv.bench import BENCHMARKS

    result = BENCHMARKS.get("watermark")(quick=True, device="cpu")
    assert result["png_bit_accuracy"] >= 0.99 and result["false_positive_rate"] <= 0.5
    assert set(result["carriers"]) == {"photos", "digit_grids"}
