"""The web app: handlers without a server, a plain HTTP smoke test, and headless Chromium.

Servers bind to 127.0.0.1 only and are always closed; request loops are bounded.
"""
import json
import os
import re
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gancv.errors import GancvError

gr = pytest.importorskip("gradio")

from gancv.serve import free_port, start  # noqa: E402
from gancv.serve.app import detect_upload, generate, interpolate, monitor  # noqa: E402
from gancv.serve.models import OutputDir, load_catalog, read_upload  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def served_run(trained_run, tmp_path_factory):
    # A copy named "digits", so the delete-while-served test cannot hurt the shared run.
    run = tmp_path_factory.mktemp("serve") / "digits"
    shutil.copytree(trained_run, run)
    return run


@pytest.fixture(scope="module")
def catalog(served_run):
    return load_catalog([served_run], device="cpu")


@pytest.fixture
def outputs():
    out = OutputDir()
    yield out
    out.cleanup()


def test_catalog_names_and_duplicates(served_run, tmp_path, catalog):
    assert catalog.generators() == ["digits"] and catalog.runs() == ["digits"]
    # A DCGAN has no W space: no Projection/Directions tabs (capabilities, not stub methods).
    assert catalog.with_capability("project") == [] and catalog.with_capability("directions") == []
    assert catalog.get("digits").model.capabilities == {"sample", "interpolate"}
    other = tmp_path / "x" / "digits"
    shutil.copytree(served_run / "model", other)
    with pytest.raises(GancvError, match="two models are named 'digits'"):
        load_catalog([served_run, other])
    with pytest.raises(GancvError, match="neither an exported model"):
        load_catalog([tmp_path])


def test_generate_and_interpolate_are_watermarked(catalog, outputs):
    from gancv.provenance import inspect

    files, grid = generate(catalog, outputs, "digits", 5, None, 0.7, 3)
    assert len(files) == 3 and Path(grid).is_file()
    report = inspect(files[0])
    # 16 px samples are enlarged to 256 px for the browser, which is enough to carry the watermark.
    assert Image.open(files[0]).size == (256, 256)
    assert report["watermark"] == "present" and report["model_id"] == catalog.get("digits").model_id
    assert report["metadata"]["gancv:seed"] == "5"
    again, _ = generate(catalog, outputs, "digits", 5, None, 0.7, 3)
    assert np.array_equal(np.asarray(Image.open(files[1])), np.asarray(Image.open(again[1])))
    frames, gif = interpolate(catalog, outputs, "digits", 1, 4)
    assert len(frames) == 4 and Image.open(gif).n_frames == 6
    with pytest.raises(GancvError, match="count"):
        generate(catalog, outputs, "digits", 0, None, 0, 500)
    with pytest.raises(GancvError, match="no model named"):
        generate(catalog, outputs, "nope", 0, None, 0, 1)
    assert "present" in detect_upload(files[0])


def _save(tmp_path, name, img, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return str(path)


def test_bad_uploads_have_clear_messages(tmp_path):
    (tmp_path / "notes.png").write_text("not an image at all")
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    cases = {
        str(tmp_path / "notes.png"): "not an image",
        str(tmp_path / "anim.gif"): "animated",
        _save(tmp_path, "cmyk.jpg", Image.new("CMYK", (8, 8))): "CMYK",
        _save(tmp_path, "deep.png", Image.new("I;16", (8, 8))): "16-bit",
        _save(tmp_path, "huge.png", Image.new("1", (4200, 4200))): "too large|limit",
    }
    for path, message in cases.items():
        with pytest.raises(GancvError, match=message):
            read_upload(path)
    with pytest.raises(GancvError, match="upload an image"):
        read_upload(None)
    rgba = read_upload(_save(tmp_path, "alpha.png", Image.new("RGBA", (8, 8), (255, 0, 0, 128))))
    assert rgba.mode == "RGB"
    with pytest.raises(GancvError, match="not an image"):
        detect_upload(str(tmp_path / "notes.png"))


def test_monitor_live_and_deleted(catalog, served_run, tmp_path):
    summary, frame, samples = monitor(catalog, "digits")
    assert "step **6**" in summary and "img/s" in summary
    assert set(frame["series"]) >= {"d_loss", "g_loss"} and samples is not None
    with open(served_run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 7, "d_lo')  # a line cut short by a live writer
    assert "step **6**" in monitor(catalog, "digits")[0]
    moved = tmp_path / "moved"
    shutil.move(str(served_run), moved)
    try:
        summary, frame, samples = monitor(catalog, "digits")
        assert "no longer exists" in summary and samples is None and frame.empty
    finally:
        shutil.move(str(moved), served_run)


# Tiny runs of the real presets for the image-to-image tabs (2 steps each, a few seconds in all).
TASK_COMMON = ["steps=2", "log_every=1", "sample_every=2", "checkpoint_every=2", "progress=false", "device=cpu",
               "max_items=16"]
TASK_RUNS = {
    "gray": ("cyclegan-photos-gray", ["image_size=16", "batch_size=2", "generator.num_downs=3", "generator.width=4",
                                      "discriminator.n_layers=1", "discriminator.width=4"]),
    "x4": ("srresnet-x4", ["image_size=32", "batch_size=4", "generator.width=8", "generator.blocks=1",
                           "discriminator.width=8", "restoration.pretrain_steps=1"]),
    "fill": ("inpaint-photos", ["image_size=32", "batch_size=4", "generator.width=8", "discriminator.width=8",
                                "restoration.pretrain_steps=1"]),
}


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory):
    import warnings

    import gancv
    from gancv.config import make_config

    root = tmp_path_factory.mktemp("tasks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # srresnet-x4 offline: "no VGG19 weights" (its perceptual term is off anyway)
        for name, (preset, extra) in TASK_RUNS.items():
            gancv.train(make_config(preset, extra + TASK_COMMON), out=root / name)
    return {name: root / name for name in TASK_RUNS}


@pytest.fixture(scope="module")
def server(served_run, task_runs):
    """One app serving every kind of model the tests need: one server start, one Chromium launch."""
    srv = start([served_run, *task_runs.values()], host="127.0.0.1", port=0, device="cpu", refresh_s=1.0)
    yield srv
    srv.close()


def _crop(size):
    """A noisy RGB image: every pixel different, so any change to a known pixel shows."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


@pytest.mark.slow
def test_real_task_models_handlers(task_runs, tmp_path, outputs):
    """Translate / Upscale / Inpaint handlers on models trained by the real presets, not stand-ins."""
    from gancv.provenance import inspect
    from gancv.serve.app import build_app, image_to_image, inpaint

    catalog = load_catalog(list(task_runs.values()), device="cpu")
    assert (catalog.with_capability("translate"), catalog.with_capability("upscale"),
            catalog.with_capability("inpaint"), catalog.generators()) == (["gray"], ["x4"], ["fill"], [])
    original = _crop((40, 32))
    upload = _save(tmp_path, "in.png", Image.fromarray(original))
    for direction in ("a2b", "b2a", "model default"):
        out = image_to_image(catalog, outputs, "translate", "gray", upload, direction=direction)
        # 40x32 translated keeps its size, then is enlarged (x8, nearest) for the page and the watermark.
        assert Image.open(out).size == (320, 256) and inspect(out)["watermark"] == "present"
    with pytest.raises(GancvError, match="not 'sideways'"):
        image_to_image(catalog, outputs, "translate", "gray", upload, direction="sideways")
    out = image_to_image(catalog, outputs, "upscale", "x4", upload)
    assert Image.open(out).size == (320, 256)  # x4 = 160x128, enlarged x2 for display
    with pytest.raises(GancvError, match="cannot upscale"):
        image_to_image(catalog, outputs, "upscale", "gray", upload)

    layer = np.zeros((32, 40, 4), np.uint8)
    layer[8:20, 10:30] = (255, 255, 255, 255)  # what the editor's white brush leaves in its layer
    layer_path = _save(tmp_path, "layer.png", Image.fromarray(layer, "RGBA"))
    result, mask = inpaint(catalog, outputs, "fill", {"background": upload, "layers": [layer_path]})
    filled, hole = np.asarray(Image.open(result).convert("RGB")), np.asarray(Image.open(mask)) > 127
    assert filled.shape == original.shape and hole.sum() == 12 * 20
    assert np.array_equal(filled[~hole], original[~hole])  # every unpainted pixel comes back exactly
    assert inspect(result)["metadata"]["gancv:ai_generated"] == "true"
    with pytest.raises(GancvError, match="paint over"):
        inpaint(catalog, outputs, "fill", {"background": upload, "layers": []})
    with pytest.raises(GancvError, match="upload an image first"):
        inpaint(catalog, outputs, "fill", {"background": None, "layers": [layer_path]})
    small = _save(tmp_path, "small.png", Image.fromarray(layer[:16, :16], "RGBA"))
    with pytest.raises(GancvError, match="16x16 but the image is 40x32"):
        inpaint(catalog, outputs, "fill", {"background": upload, "layers": [small]})
    with pytest.raises(GancvError, match="cannot inpaint"):
        inpaint(catalog, outputs, "x4", {"background": upload, "layers": [layer_path]})
    app = build_app(catalog, outputs)
    titles = {getattr(b, "label", None) for b in app.blocks.values()}
    assert {"Translate", "Upscale", "Inpaint"} <= titles and "Generate" not in titles


@pytest.mark.slow
def test_http_smoke(server):
    from gancv.bench.serve import http_generate

    assert server.url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(server.url, timeout=30) as resp:
        assert resp.status == 200 and "gancv" in resp.read().decode()
    reply = http_generate(server.url, "digits", 3, 2)
    assert reply["event"] == "complete" and len(reply["data"][0]) == 2
    url = reply["data"][0][0]["image"]["url"]
    with urllib.request.urlopen(url, timeout=30) as resp:
        served = resp.read()
    from gancv.provenance import read_metadata

    import io

    # What the browser downloads is the marked PNG, metadata intact (not a re-encoded WebP).
    assert read_metadata(Image.open(io.BytesIO(served)))["gancv:ai_generated"] == "true"
    bad = http_generate(server.url, "nope", 3, 2)
    assert bad["event"] == "error"
    # ... and the server is still answering afterwards.
    assert http_generate(server.url, "digits", 4, 1)["event"] == "complete"


def _need_chromium():
    from gancv.serve.browser import chromium_path

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium from the system packages (.ci/run does apt-get install chromium)")
        pytest.skip("no system Chromium (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def page():
    """One headless Chromium for every browser test in this module."""
    pytest.importorskip("playwright")
    _need_chromium()
    from gancv.serve.browser import Browser

    with Browser() as pg:
        yield pg


def _show(page, url, tab):
    """Open ``tab`` of the app, loading the page only if this browser is not on it already."""
    if not page.url.startswith(url):
        page.goto(url)
    page.get_by_role("tab", name=tab).click()


def _fetch(url):
    import io

    with urllib.request.urlopen(url, timeout=30) as resp:
        data = resp.read()
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.slow
def test_browser_generate(server, page, served_run):
    from gancv.serve.browser import generate_in_browser

    timing = generate_in_browser(page, server.url, ARTIFACTS / "serve-generate.png")
    srcs = page.eval_on_selector_all("#generate-gallery img", "els => els.map(e => [e.naturalWidth, e.src])")
    assert len(srcs) == 16 and all(w >= 256 for w, _ in srcs)
    assert page.get_by_role("tab", name="Projection").count() == 0  # a DCGAN cannot project
    page.get_by_role("tab", name="Training monitor").click()
    page.get_by_text("img/s").first.wait_for()
    page.locator("#monitor-samples img").first.wait_for()
    page.locator("#monitor-losses canvas, #monitor-losses svg").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "serve-monitor.png"))
    with open(served_run / "metrics.jsonl", "a") as fh:  # the run logs another step: the open tab refreshes
        fh.write('\n{"step": 99, "time": 0, "d_loss": 1.0, "g_loss": 1.0}\n')
    page.get_by_text(re.compile(r"step 99\b")).first.wait_for()
    (ARTIFACTS / "serve-timing.json").write_text(json.dumps(timing))
    assert timing["first_generation_s"] < 60


@pytest.mark.slow
def test_browser_translate_and_upscale(server, page, tmp_path):
    """Upload a photo to the Translate and Upscale tabs of really trained (tiny) models."""
    from gancv.provenance import inspect

    upload = _save(tmp_path, "photo.png", Image.fromarray(_crop((40, 32))))
    for tab, method in (("Translate", "translate"), ("Upscale", "upscale")):
        _show(page, server.url, tab)
        page.locator(f"#{method}-input input[type=file]").set_input_files(upload)
        page.locator(f"#{method}-input img").first.wait_for()  # the upload is shown before we click
        page.locator(f"#{method}-button").click()
        result = page.locator(f"#{method}-output img").first
        result.wait_for()
        img = _fetch(result.get_attribute("src"))
        assert img.size == (320, 256), tab
        path = tmp_path / f"{method}.png"
        img.save(path, pnginfo=None)
        assert inspect(path)["watermark"] == "present", tab
    page.screenshot(path=str(ARTIFACTS / "serve-upscale.png"))


@pytest.mark.slow
def test_browser_inpaint_paints_a_mask(server, page, tmp_path):
    """Upload into the Inpaint editor, paint a stroke with the mouse, and check the returned image
    keeps every unpainted pixel (a real drawn mask, not the API path)."""
    original = _crop((64, 48))
    upload = _save(tmp_path, "photo.png", Image.fromarray(original))
    _show(page, server.url, "Inpaint")
    editor = page.locator("#inpaint-editor")
    with page.expect_file_chooser() as chooser:
        editor.get_by_role("button", name="Upload", exact=True).click()
    chooser.value.set_files(upload)
    editor.get_by_role("button", name="Brush", exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 30, y)
    page.mouse.down()
    page.mouse.move(x + 30, y, steps=2)
    page.mouse.up()
    page.locator("#inpaint-button").click()
    result = page.locator("#inpaint-output img").first
    result.wait_for()
    filled = np.asarray(_fetch(result.get_attribute("src")).convert("RGB"))
    mask_src = page.locator("img[src*='-mask-']").first
    mask_src.wait_for()
    hole = np.asarray(_fetch(mask_src.get_attribute("src")).convert("L")) > 127
    page.screenshot(path=str(ARTIFACTS / "serve-inpaint.png"))
    assert filled.shape == original.shape and hole.any() and not hole.all()
    assert np.array_equal(filled[~hole], original[~hole])


STYLEGAN_RUN = [
    "task=stylegan", "data=digits", "image_size=16", "channels=1", "batch_size=8", "steps=2", "z_dim=8",
    "generator.name=stylegan", "generator.channel_base=64", "generator.channel_max=16", "generator.w_dim=16",
    "generator.mapping_layers=2", "discriminator.name=stylegan", "discriminator.channel_base=64",
    "discriminator.channel_max=16", "log_every=1", "sample_every=2", "checkpoint_every=2", "progress=false",
    "device=cpu",
]


@pytest.mark.slow
def test_stylegan_tabs(tmp_path, outputs):
    """Directions and Projection tabs exist only for models that have them, and work."""
    import gancv
    from gancv.config import make_config
    from gancv.serve.app import directions, project

    run = gancv.train(make_config(None, STYLEGAN_RUN), out=tmp_path / "sg")
    catalog = load_catalog([run], device="cpu")
    assert catalog.with_capability("directions") == ["sg"] and catalog.with_capability("project") == ["sg"]
    grid = directions(catalog, outputs, "sg", 0, 3.0, 1, rows=2)
    assert Image.open(grid).width >= 256
    upload = _save(tmp_path, "digit.png", Image.new("L", (16, 16), 40))
    image, report = project(catalog, outputs, "sg", upload, 3)
    assert "PSNR" in report and Path(image).is_file()
    with pytest.raises(GancvError, match="out of range"):
        directions(catalog, outputs, "sg", 999, 3.0, 1)


def test_wait_ready_times_out_with_a_clear_message():
    from gancv.serve import wait_ready

    with pytest.raises(GancvError, match="did not answer within 1 s"):
        wait_ready(f"http://127.0.0.1:{free_port()}/", timeout_s=0.6)  # nothing listens there


def test_host_warning():
    from gancv.serve import host_warning

    assert host_warning("127.0.0.1") is None
    assert "anyone who can reach" in host_warning("0.0.0.0")


class _Mirror:
    """A stand-in image-to-image model: the app dispatches on methods, not on classes."""

    task, shape, model_id = "translation", (3, 16, 16), "0a0b0c0d"
    capabilities = frozenset({"translate"})

    def translate(self, images):
        return images.flip(-1)


def test_image_to_image_dispatch(tmp_path, outputs):
    from gancv.serve.app import build_app, image_to_image
    from gancv.serve.models import Catalog, Served

    catalog = Catalog({"mirror": Served("mirror", tmp_path, _Mirror(), None)})
    assert catalog.with_capability("translate") == ["mirror"] and catalog.with_capability("upscale") == []
    upload = _save(tmp_path, "in.png", Image.new("RGB", (16, 16), (10, 200, 30)))
    out = image_to_image(catalog, outputs, "translate", "mirror", upload)
    assert Image.open(out).size == (256, 256)
    with pytest.raises(GancvError, match="cannot upscale"):
        image_to_image(catalog, outputs, "upscale", "mirror", upload)
    app = build_app(catalog, outputs)
    titles = {getattr(b, "label", None) for b in app.blocks.values()}
    assert "Translate" in titles and "Upscale" not in titles and "Generate" not in titles



class _Upscaler:
    """A stand-in x2 model whose self-ensemble is visibly different: black plain, white ensembled."""

    task, shape, model_id = "restoration", (3, 16, 16), "0a0b0c0e"
    capabilities = frozenset({"upscale"})

    def upscale(self, images, ensemble=False):
        n, c, h, w = images.shape
        return images.new_full((n, c, 2 * h, 2 * w), 255 if ensemble else 0)  # uint8 in, uint8 out


@pytest.mark.parametrize("ticked", [False, True])
def test_upscale_tab_self_ensemble_box(tmp_path, outputs, ticked):
    """The Upscale tab's checkbox reaches the model as ``ensemble=``, as ``gancv upscale --ensemble`` does."""
    from gancv.serve.app import build_app
    from gancv.serve.models import Catalog, Served

    app = build_app(Catalog({"x2": Served("x2", tmp_path, _Upscaler(), None)}), outputs)
    (fn,) = [f for f in app.fns.values() if f.api_name == "upscale"]
    assert [type(i).__name__ for i in fn.inputs] == ["Dropdown", "Checkbox", "Image"]
    upload = _save(tmp_path, "in.png", Image.new("RGB", (16, 16), (10, 200, 30)))
    shown = np.asarray(Image.open(fn.fn("x2", ticked, upload)).convert("L"), dtype=float)
    assert shown.mean() > 200 if ticked else shown.mean() < 55  # white = ensembled (the watermark moves a few levels)
