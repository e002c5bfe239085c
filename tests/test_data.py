"""benchmark.data: the dataset registry, the digits splits and the torchvision path (offline)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark import data
from benchmark.data import (
    DatasetUnavailableError,
    ImageDataset,
    Split,
    available_datasets,
    forget_loaded_datasets,
    load_dataset,
    register_dataset,
    sample_batch,
    split_fingerprint,
    to_float,
    to_uint8,
)


def _rows(split: Split) -> set[bytes]:
    return {image.numpy().tobytes() for image in split.images}


# --- digits ----------------------------------------------------------------

def test_digits_shapes_dtypes_and_split_sizes():
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.num_classes == 10 and ds.image_shape == (1, 8, 8)
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 8, 8)
        assert split.labels.dtype == torch.int64 and len(split.labels) == len(split)
        assert set(split.labels.tolist()) == set(range(10))  # stratified: every class in every split
    sizes = (len(ds.train), len(ds.val), len(ds.test))
    assert sum(sizes) == 1797
    assert np.allclose(np.array(sizes) / 1797, [0.6, 0.2, 0.2], atol=0.01)
    # 0..16 grey levels scaled to the full byte range
    assert int(ds.train.images.min()) == 0 and int(ds.train.images.max()) == 255


def test_digits_splits_are_disjoint_and_cover_the_data():
    # The 1,797 digits images are pairwise distinct, so bytes identify them.
    ds = load_dataset("digits", split_seed=4)
    train, val, test = _rows(ds.train), _rows(ds.val), _rows(ds.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 1797


def test_digits_split_is_deterministic_per_seed_and_differs_across_seeds():
    first = load_dataset("digits", split_seed=7)
    assert load_dataset("digits", split_seed=7) is first  # loaded once per process
    forget_loaded_datasets()
    again = load_dataset("digits", split_seed=7)
    assert again is not first
    for name in ("train", "val", "test"):
        assert torch.equal(again.split(name).images, first.split(name).images)
        assert torch.equal(again.split(name).labels, first.split(name).labels)
    other = load_dataset("digits", split_seed=8)
    assert _rows(other.test) != _rows(first.test)
    assert split_fingerprint(other.test) != split_fingerprint(first.test)
    assert other.split_seed == 8 and first.split_seed == 7


def test_digits_labels_match_images():
    # Each image keeps its own label: compare against scikit-learn's arrays.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    by_image = {
        np.rint(img * 255 / 16).astype(np.uint8).tobytes(): int(label)
        for img, label in zip(bunch.images, bunch.target)
    }
    split = load_dataset("digits").val
    assert [by_image[img.numpy().tobytes()] for img in split.images] == split.labels.tolist()


# --- registry --------------------------------------------------------------

def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(ValueError) as info:
        load_dataset("no_such_dataset")
    message = str(info.value)
    assert "no_such_dataset" in message and "digits" in message and "mnist" in message


def test_available_datasets_lists_builtin_ones():
    names = available_datasets()
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "celeba"):
        assert name in names and names[name]
    assert data.is_offline("digits") and not data.is_offline("mnist")


def test_register_dataset_and_reject_a_second_loader(monkeypatch):
    monkeypatch.setattr(data, "_REGISTRY", dict(data._REGISTRY))
    digits = load_dataset("digits")

    def tiny(root, download, split_seed):
        return ImageDataset(name="ignored", train=digits.train, val=digits.val, test=digits.test, num_classes=10)

    register_dataset("tiny_test_set", tiny, description="digits again", offline=True)
    register_dataset("tiny_test_set", tiny, description="digits again", offline=True)  # same loader: no-op
    loaded = load_dataset("tiny_test_set", split_seed=3)
    assert loaded.name == "tiny_test_set" and loaded.split_seed == 3  # filled in by load_dataset
    assert available_datasets()["tiny_test_set"] == "digits again"
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("tiny_test_set", lambda *a: None, description="other", offline=True)
    with pytest.raises(ValueError, match="split_seed"):
        load_dataset("tiny_test_set", split_seed=-1)


def test_containers_reject_bad_tensors():
    with pytest.raises(ValueError, match="uint8"):
        Split(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        Split(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
    good = Split(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels must lie"):
        ImageDataset(name="x", train=good, val=good, test=good, num_classes=3)


# --- conversions and sampling ---------------------------------------------

def test_to_float_and_to_uint8_are_inverse_and_clamp():
    every_byte = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    as_float = to_float(every_byte)
    assert as_float.dtype == torch.float32
    assert float(as_float.min()) == -1.0 and float(as_float.max()) == 1.0
    assert torch.equal(to_uint8(as_float), every_byte)
    assert to_uint8(torch.tensor([-3.0, 0.0, 5.0])).tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="uint8"):
        to_float(torch.zeros(3))


def test_sample_batch_is_reproducible_from_the_generator():
    split = load_dataset("digits").train
    images, labels = sample_batch(split, 32, torch.Generator().manual_seed(1))
    again, again_labels = sample_batch(split, 32, torch.Generator().manual_seed(1))
    other, _ = sample_batch(split, 32, torch.Generator().manual_seed(2))
    assert images.shape == (32, 1, 8, 8) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    assert not torch.equal(images, other)
    # each drawn image comes with its own label
    label_of = {img.numpy().tobytes(): int(lab) for img, lab in zip(split.images, split.labels)}
    assert [label_of[img.numpy().tobytes()] for img in to_uint8(images)] == labels.tolist()
    with pytest.raises(ValueError, match="batch_size"):
        sample_batch(split, 0, torch.Generator())


# --- torchvision datasets, offline ------------------------------------------

def test_mnist_without_files_and_download_off_says_where_and_how(tmp_path):
    empty = tmp_path / "no-data-here"
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("mnist", root=empty, download=False)
    message = str(info.value)
    assert "'mnist'" in message
    assert str(empty / "MNIST") in message
    assert "download=True" in message and "BENCHMARK_DATA_DIR" in message
    assert isinstance(info.value, FileNotFoundError)
    assert not empty.exists()  # nothing was downloaded or created


def test_cifar10_and_celeba_without_files_give_the_same_clear_error(tmp_path):
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("celeba", "celeba")):
        with pytest.raises(DatasetUnavailableError) as info:
            load_dataset(name, root=tmp_path)
        assert f"'{name}'" in str(info.value) and str(tmp_path / folder) in str(info.value)


@pytest.mark.parametrize("name, cls_name", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_format_files_load_through_torchvision(tmp_path, write_mnist_files, name, cls_name):
    rng = np.random.default_rng(0)
    n_train, n_test = 60, 20
    # Random pixels, with each image's index written into its first pixel so it can be traced.
    train_images = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    train_images[:, 0, 0] = np.arange(n_train)
    train_labels = np.arange(n_train) % 10
    test_images = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    test_labels = (np.arange(n_test) * 3) % 10
    write_mnist_files(tmp_path, cls_name, train_images, train_labels, test_images, test_labels)

    ds = load_dataset(name, root=tmp_path, split_seed=5)
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10 and ds.root == tmp_path
    # val carved from the official train split (1/6, stratified), test = the official test split
    assert (len(ds.train), len(ds.val), len(ds.test)) == (50, 10, 20)
    assert sorted(ds.val.labels.tolist()) == list(range(10))
    traced = torch.cat([ds.train.images[:, 0, 0, 0], ds.val.images[:, 0, 0, 0]]).tolist()
    assert sorted(traced) == list(range(n_train))  # a partition of the train file
    for split in (ds.train, ds.val):
        index = split.images[:, 0, 0, 0].long().numpy()
        assert np.array_equal(split.images[:, 0].numpy(), train_images[index])
        assert np.array_equal(split.labels.numpy(), train_labels[index])
    assert np.array_equal(ds.test.images[:, 0].numpy(), test_images)
    assert np.array_equal(ds.test.labels.numpy(), test_labels)
    # another seed carves another validation split
    other = load_dataset(name, root=tmp_path, split_seed=6)
    assert set(other.val.images[:, 0, 0, 0].tolist()) != set(ds.val.images[:, 0, 0, 0].tolist())
