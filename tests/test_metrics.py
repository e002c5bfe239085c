"""benchmark.metrics: the digits feature CNN, FID/KID through torch-fidelity, caching, Inception weights."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchmark import metrics
from benchmark.data import ImageDataset, Split, load_dataset, to_float
from benchmark.metrics import (
    FeatureExtractorUnavailableError,
    FidelityEvaluator,
    classifier_accuracy,
    forget_loaded_cnns,
    load_or_train_cnn,
)


@pytest.fixture
def digits():
    return load_dataset("digits")


def _noise(n: int, shape=(1, 8, 8), seed: int = 0) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.slow
def test_digits_cnn_reaches_95_percent_trains_deterministically_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path / "first"))
    first = load_or_train_cnn("digits")
    assert first.trained
    assert first.record["test_accuracy"] >= 0.95
    assert classifier_accuracy("digits") == first.record["test_accuracy"]
    weights = tmp_path / "first" / "feature_extractors" / f"digits-cnn-{metrics.EXTRACTOR_VERSION}.pt"
    assert weights.is_file() and weights.with_suffix(".json").is_file()
    written_at = weights.stat().st_mtime_ns

    forget_loaded_cnns()  # as a new process would: only the files are left
    again = load_or_train_cnn("digits")
    assert not again.trained
    assert weights.stat().st_mtime_ns == written_at
    assert again.weights_digest == first.weights_digest
    assert again.record == first.record
    for key, value in first.state_dict.items():
        assert torch.equal(again.state_dict[key], value)

    # Same recipe in another empty cache: the same weights, bit for bit.
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path / "second"))
    retrained = load_or_train_cnn("digits")
    assert retrained.trained and retrained.weights_digest == first.weights_digest


@pytest.mark.slow  # usually the first test to need the session's digits CNN, so it trains it
def test_digits_fid_and_kid_of_held_out_real_images_far_below_noise(digits):
    evaluator = FidelityEvaluator(digits)
    assert evaluator.kind == "cnn"
    real = evaluator.evaluate(to_float(digits.test.images), "train")
    noise = evaluator.evaluate(_noise(1000), "train")
    assert set(real) == {"fid", "kid_mean", "kid_std"}
    assert all(math.isfinite(v) for v in (*real.values(), *noise.values()))
    assert noise["fid"] > 0
    assert real["fid"] < 0.2 * noise["fid"]
    assert real["kid_mean"] < 0.2 * noise["kid_mean"]
    # fixed KID subsets: the same images give the same numbers
    assert FidelityEvaluator(digits).evaluate(to_float(digits.test.images), "train") == real


def test_fid_orders_images_by_how_digit_like_they_are(digits):
    # Real test digits < the same digits with half their pixels scrambled < pure noise.
    evaluator = FidelityEvaluator(digits)
    real = to_float(digits.test.images)
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(real.shape, generator=generator) < 0.5
    scrambled = torch.where(mask, _noise(len(real), seed=1), real)
    fids = [evaluator.evaluate(images, "val")["fid"] for images in (real, scrambled, _noise(len(real)))]
    assert fids[0] < fids[1] < fids[2]


def test_real_statistics_come_from_the_cache_after_the_first_time(digits, monkeypatch):
    fakes = _noise(50)
    first = FidelityEvaluator(digits).evaluate(fakes, "val")
    name = FidelityEvaluator(digits).real_cache_name("val")
    cached = list((metrics.cache_dir() / "fidelity").glob(f"{name}-*"))
    assert any("stat-fid" in path.name for path in cached) and any("features" in path.name for path in cached)

    reads = []
    original = metrics._ImagesForFidelity.__getitem__

    def counting(self, index):
        reads.append(len(self))
        return original(self, index)

    monkeypatch.setattr(metrics._ImagesForFidelity, "__getitem__", counting)
    second = FidelityEvaluator(digits).evaluate(fakes, "val")  # a new evaluator, as each trial makes
    assert second == first
    assert reads and set(reads) == {len(fakes)}  # only the generated images were read


def test_real_cache_name_encodes_split_seed_split_and_extractor():
    seed0 = FidelityEvaluator(load_dataset("digits", split_seed=0))
    seed1 = FidelityEvaluator(load_dataset("digits", split_seed=1))
    name = seed0.real_cache_name("val")
    assert name == FidelityEvaluator(load_dataset("digits", split_seed=0)).real_cache_name("val")
    assert name != seed1.real_cache_name("val")
    assert name != seed0.real_cache_name("test")
    assert "seed0" in name and "seed1" in seed1.real_cache_name("val")
    assert name.startswith("digits-val-") and f"digits-cnn-{metrics.EXTRACTOR_VERSION}" in name
    assert f"-n{len(seed0.dataset.val)}-" in name
    # both split seeds are measured in the one feature space (trained on split seed 0)
    assert seed0.extractor_tag == seed1.extractor_tag


def test_cnn_extractor_reads_grey_images_given_as_rgb(digits):
    info = load_or_train_cnn(digits)
    extractor = metrics._CnnFeatureExtractor(info.extractor_name, ["features", "logits"])
    grey = digits.test.images[:20]
    features, logits = extractor(grey)
    rgb_features, _ = extractor(grey.expand(-1, 3, -1, -1))
    assert features.shape == (20, metrics.FEATURE_DIM)
    assert torch.equal(features, rgb_features)
    assert (logits.argmax(1) == digits.test.labels[:20]).float().mean() >= 0.9


def test_evaluate_rejects_bad_input(digits):
    evaluator = FidelityEvaluator(digits)
    with pytest.raises(ValueError, match="shape"):
        evaluator.evaluate(_noise(10, shape=(1, 28, 28)), "val")
    with pytest.raises(ValueError, match="split"):
        evaluator.evaluate(_noise(10), "validation")
    with pytest.raises(ValueError, match="kid_subset_size"):
        FidelityEvaluator(digits, kid_subset_size=500).evaluate(_noise(100), "val")
    with pytest.raises(ValueError, match="extractor"):
        FidelityEvaluator(digits, extractor="vgg")


def _rgb_dataset(n: int = 8, size: int = 8) -> ImageDataset:
    images = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    split = Split(images, torch.zeros(n, dtype=torch.int64))
    return ImageDataset(name="tiny_rgb", train=split, val=split, test=split, num_classes=1)


def test_inception_offline_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(metrics.INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(FeatureExtractorUnavailableError) as info:
        FidelityEvaluator(_rgb_dataset())
    message = str(info.value)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert str(expected) in message
    assert metrics.INCEPTION_WEIGHTS_ENV in message and "download_weights=True" in message
    assert not expected.exists()  # nothing was downloaded

    missing = tmp_path / "nowhere.pth"
    monkeypatch.setenv(metrics.INCEPTION_WEIGHTS_ENV, str(missing))
    with pytest.raises(FeatureExtractorUnavailableError, match=str(missing)):
        FidelityEvaluator(_rgb_dataset())


@pytest.fixture
def random_inception_weights(tmp_path, monkeypatch) -> Path:
    """A weights file with torch-fidelity's Inception layout and random values (no download):
    enough to exercise the RGB plumbing, not to measure anything."""
    import torch_fidelity.feature_extractor_inceptionv3 as inception

    with monkeypatch.context() as patch:
        patch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        network = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path / "random-inception.pth"
    torch.save(network.state_dict(), path)
    return path


@pytest.mark.slow
def test_inception_path_with_a_weights_file_from_the_environment(random_inception_weights, monkeypatch):
    # Inception runs at 299×299 whatever the input size: keep the image count tiny.
    monkeypatch.setenv(metrics.INCEPTION_WEIGHTS_ENV, str(random_inception_weights))
    rgb = _rgb_dataset(n=4)
    evaluator = FidelityEvaluator(rgb)
    assert evaluator.kind == "inception" and evaluator.weights_path == str(random_inception_weights)
    scores = evaluator.evaluate(_noise(4, shape=(3, 8, 8)), "val")
    assert set(scores) == {"fid", "kid_mean", "kid_std"} and all(math.isfinite(v) for v in scores.values())
    assert list((metrics.cache_dir() / "fidelity").glob(f"{evaluator.real_cache_name('val')}-inception-v3-compat-*"))


def test_grey_images_are_repeated_to_three_channels_for_inception():
    grey = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    for_inception = metrics._ImagesForFidelity(grey, channels=3)
    assert len(for_inception) == 5
    item = for_inception[2]
    assert item.shape == (3, 8, 8) and all(torch.equal(item[c], grey[2, 0]) for c in range(3))
    assert torch.equal(metrics._ImagesForFidelity(grey, channels=1)[2], grey[2])
