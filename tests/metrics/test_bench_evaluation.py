"""The --quick variants of the evaluation benchmarks run end to end and report their figures."""
import dataclasses
import json

import pytest
import torch

from gancv.bench import evaluation
from gancv.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fid-floor", "augmentation"])
def test_quick_benchmark(name, capsys, monkeypatch):
    import gancv.api

    calls = []
    real_synthesize = gancv.api.synthesize

    def counting_synthesize(*args, **kwargs):
        calls.append(args)
        return real_synthesize(*args, **kwargs)

    monkeypatch.setattr(gancv.api, "synthesize", counting_synthesize)
    code = main(["benchmark", name, "--quick", "--json", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out.strip().splitlines()[-1])
    assert result["benchmark"] == name and result["quick"] is True
    if name == "fid-floor":
        assert result["fid_real_half_vs_half"] < result["fid_real_vs_noise"]
        assert result["timed_samples"] == 2000 and result["fid_seconds"] > 0
    else:
        # The whole path ran: a cGAN, `gancv augment` (synthesize) writing the set, three classifiers.
        assert len(calls) == 2 and calls[0][1] == 20 * evaluation.QUICK_AUGMENT.oversample
        assert 0 <= result["acc_real_only_mean"] <= 1 and len(result["per_seed"]) == 1
        row = result["per_seed"][0]
        # A 60-step GAN draws mostly unreadable digits, so the filter keeps few of its 600 samples.
        assert 0 < row["synthetic_images"] <= 200 and row["test_images"] == 1797 - 100 == result["test_images"]
        assert 0 <= row["acc_synthetic_only_cas"] <= 1 and 0 <= row["filter_agreement"] <= 1
        assert result["gain_points_mean"] == pytest.approx(
            100 * (result["acc_real_plus_synthetic_mean"] - result["acc_real_only_mean"]), abs=0.05)
        assert result["gain_points_ci95"] is None  # one seed: no interval, rather than a made-up one
        # The ceiling (k new real digits per class instead of the synthetic set) is scored beside it.
        assert row["ceiling_gain_points"] == pytest.approx(
            100 * (row["ceiling_acc_real_plus_new_real"] - row["ceiling_acc_real_only"]), abs=0.01)
        assert result["ceiling_gain_points_mean"] == pytest.approx(row["ceiling_gain_points"], abs=0.01)
        assert result["cpu_seconds"] > 0 and result["wall_seconds"] > 0
        # The smaller k runs the same stages, on fewer real digits, with its own summary.
        [more] = result["more_k"]
        assert more["k_per_class"] == 3 and more["test_images"] == 1797 - 30 and len(more["per_seed"]) == 1
        assert more["gain_points_mean"] == pytest.approx(
            100 * (more["acc_real_plus_synthetic_mean"] - more["acc_real_only_mean"]), abs=0.05)


def test_quick_augmentation_only_shrinks_sizes():
    full, quick = evaluation.AUGMENT, evaluation.QUICK_AUGMENT
    sizes = {"seeds", "gan_steps", "gan_width", "per_class", "classifier_steps"}
    for f in dataclasses.fields(full):
        if f.name not in sizes:
            assert getattr(quick, f.name) == getattr(full, f.name), f.name
    assert len(full.seeds) >= 5


def test_seed_interval_is_the_student_t_interval():
    mean, lo, hi = evaluation._mean_ci([1.0, 2.0, 3.0])
    # t(0.975, df=2) = 4.302653; sample sd = 1; half width = 4.302653 / sqrt(3)
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-6) and mean - lo == hi - mean
    assert evaluation._mean_ci([0.5]) == (0.5, None, None)


def _tiny_digits(n=40):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=g), torch.arange(n) % 10


def _params(model):
    return torch.cat([p.flatten() for p in model.parameters()])


def test_neutral_soft_options_give_the_plain_classifier():
    from gancv.metrics.classifier import TrainRecipe, train_classifier

    x, y = _tiny_digits()
    recipe = TrainRecipe(steps=5, seed=3)
    plain = train_classifier(x, y, 10, recipe)
    neutral = train_classifier(x, y, 10, recipe, loss_weights=torch.ones(len(x)), smoothing=torch.zeros(len(x)))
    assert torch.allclose(_params(plain), _params(neutral), atol=1e-5)
    for kwargs in ({"mixup": 0.4}, {"smoothing": torch.full((len(x),), 0.3)}):
        again = train_classifier(x, y, 10, recipe, **kwargs)
        assert not torch.allclose(_params(plain), _params(again), atol=1e-4), kwargs
        assert torch.equal(_params(again), _params(train_classifier(x, y, 10, recipe, **kwargs))), kwargs  # seeded


def test_zero_loss_weight_ignores_those_images_labels():
    from gancv.metrics.classifier import TrainRecipe, train_classifier

    x, y = _tiny_digits()
    recipe = TrainRecipe(steps=5, seed=3)
    second = torch.arange(len(x)) >= 20
    wrong = torch.where(second, (y + 1) % 10, y)
    w = (~second).float()
    assert torch.allclose(_params(train_classifier(x, y, 10, recipe, loss_weights=w)),
                          _params(train_classifier(x, wrong, 10, recipe, loss_weights=w)), atol=1e-6)
    half = 1 - 0.5 * second.float()
    assert not torch.allclose(_params(train_classifier(x, y, 10, recipe, loss_weights=half)),
                              _params(train_classifier(x, wrong, 10, recipe, loss_weights=half)), atol=1e-4)


def test_filter_keeps_agreeing_samples_first_or_least_confident():
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    prob = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3], [0.45, 0.55], [0.1, 0.9]])
    prob = torch.nn.functional.pad(prob, (0, 8))  # ten classes, none of them for 2..9
    setup = dataclasses.replace(evaluation.AUGMENT, per_class=2)
    assert evaluation._keep_synthetic(setup, labels, prob).tolist() == [0, 1, 4, 5]
    hard = dataclasses.replace(setup, keep="least_confident")
    assert evaluation._keep_synthetic(hard, labels, prob).tolist() == [1, 3, 4, 5]  # sample 2 disagrees
    assert evaluation._keep_synthetic(setup, labels, None).tolist() == [0, 1, 4, 5]
    with pytest.raises(ValueError, match="keep="):
        evaluation._keep_synthetic(dataclasses.replace(setup, keep="hardest"), labels, prob)


def test_init_fine_tunes_on_the_batches_of_a_run_from_scratch():
    from gancv.metrics.classifier import Classifier, TrainRecipe, train_classifier

    x, y = _tiny_digits()
    recipe = TrainRecipe(steps=5, seed=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        fresh = Classifier(channels=1, size=16, num_classes=10)  # the weights a run from scratch starts from
    plain = train_classifier(x, y, 10, recipe)
    assert torch.equal(_params(plain), _params(train_classifier(x, y, 10, recipe, init=fresh)))
    start = _params(plain).clone()
    tuned = train_classifier(x, (y + 1) % 10, 10, recipe, init=plain)
    assert torch.equal(_params(plain), start)  # init is copied, not trained in place
    assert not torch.allclose(_params(tuned), _params(train_classifier(x, (y + 1) % 10, 10, recipe)), atol=1e-4)


def test_synthetic_pretrain_fine_tunes_the_cas_classifier_on_real_only(monkeypatch):
    import gancv.metrics.classifier as classifier

    calls, real_train = [], classifier.train_classifier

    def recording(images, labels, *args, **kwargs):
        model = real_train(images, labels, *args, **kwargs)
        calls.append((len(images), kwargs.get("init"), model))
        return model

    monkeypatch.setattr(classifier, "train_classifier", recording)
    x, y = _tiny_digits(60)
    sets = {"real_x": x[:20], "real_y": y[:20], "synth_x": x[20:], "synth_y": y[20:], "test_x": x, "test_y": y,
            "gan_seconds": 0.0}
    setup = dataclasses.replace(evaluation.AUGMENT, classifier_steps=3, per_class=4, filter=False, ceiling=False)
    evaluation.augmentation_scores(setup, 0, sets)
    assert [(n, init) for n, init, _ in calls] == [(20, None), (40, None), (60, None)]  # real, CAS, mixed
    calls.clear()
    evaluation.augmentation_scores(dataclasses.replace(setup, synthetic_pretrain=True), 0, sets)
    (real_n, _, _), (cas_n, _, cas), (tuned_n, init, _) = calls
    assert (real_n, cas_n, tuned_n) == (20, 40, 20) and init is cas


def test_ceiling_sets_are_the_next_real_digits_of_the_draw_outside_every_other_set():
    from gancv.data import load_data

    digits = load_data("digits", image_size=8, channels=1)
    x, y = digits.x, digits.y
    setup = dataclasses.replace(evaluation.AUGMENT, k=4)
    real = evaluation._digit_subset(x, y, 4, seed=2)
    test = torch.ones(len(x), dtype=torch.bool)
    test[real] = False
    sets = evaluation.ceiling_sets(setup, 2, x, y)
    assert torch.bincount(sets["ceiling_y"], minlength=10).tolist() == [4] * 10
    # The new digits are neither the real set nor among the test digits the ceiling is scored on.
    flat = x.flatten(1)
    extra = torch.cat([torch.nonzero((flat == img.flatten()).all(1)).flatten() for img in sets["ceiling_x"]])
    assert not set(extra.tolist()) & set(real.tolist())
    keep = sets["ceiling_test_keep"]
    assert keep.shape == (int(test.sum()),) and int((~keep).sum()) == 40
    assert not set(torch.nonzero(test).flatten()[keep].tolist()) & set(extra.tolist())
    with pytest.raises(RuntimeError, match="needs 400 digits of every class"):
        evaluation.ceiling_sets(dataclasses.replace(setup, k=200), 2, x, y)


def test_reacquire_gives_back_a_real_digit_and_moves_a_generated_one_onto_its_grid():
    from gancv.data import load_data

    real = load_data("digits", image_size=16, channels=1).x[:200]
    again = evaluation._reacquire(real, 8)
    assert again.dtype == torch.uint8 and again.shape == real.shape
    # A real digit is an enlarged 8x8 scan of 17 ink levels: it comes back within a level (~16/255).
    assert (again.int() - real.int()).abs().float().mean() < 2 and (again.int() - real.int()).abs().max() <= 16
    noise = torch.randint(0, 256, (20, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    moved = evaluation._reacquire(noise, 8)
    assert torch.equal(evaluation._reacquire(moved, 8), moved)  # on the grid, it stays
    assert (moved.int() - noise.int()).abs().float().mean() > 20
