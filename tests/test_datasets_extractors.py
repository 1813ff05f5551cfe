from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (DATA / "cifar10_jpg").exists(), reason="CIFAR-10 archives not found")
def test_load_cifar10_jpg():
    from sortedhash.datasets import load_cifar10_jpg

    images, labels, classes = load_cifar10_jpg(DATA / "cifar10_jpg", "test", per_class=3)
    assert images.shape == (30, 32, 32, 3) and images.dtype == np.uint8
    assert classes[0] == "airplane" and len(classes) == 10
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 3))


@pytest.mark.skipif(not (DATA / "20newsgroups").exists(), reason="20 Newsgroups archives not found")
def test_load_20newsgroups_removes_headers():
    from sortedhash.datasets import load_20newsgroups

    texts, labels, groups = load_20newsgroups(DATA / "20newsgroups", "test", per_group=2)
    assert len(texts) == 40 and len(groups) == 20 and np.bincount(labels).tolist() == [2] * 20
    raw, _, _ = load_20newsgroups(DATA / "20newsgroups", "test", per_group=2, remove=())

    def has_header(t):
        return any(line.startswith(("From:", "Subject:")) for line in t.split("\n\n")[0].splitlines())

    assert sum(map(has_header, raw)) >= 35  # raw posts keep their headers
    assert not any(map(has_header, texts))  # cleaned ones do not



def test_image_features_and_views():
    pytest.importorskip("efficientnet_lite_pytorch")
    from sortedhash.extractors import EfficientNetLite0Features

    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    ext = EfficientNetLite0Features(image_size=64, batch_size=2)
    features = ext.fit_transform(images)
    assert features.shape == (3, 1280) and np.isfinite(features).all()
    np.testing.assert_allclose(ext.transform(images), features, rtol=1e-4, atol=1e-5)
    views = EfficientNetLite0Features(image_size=64, n_views=2, random_state=0).transform(images)
    assert views.shape == (3, 2, 1280)
    assert not np.allclose(views[:, 0], views[:, 1])  # two different augmentations
    with pytest.raises(ValueError, match="uint8 RGB images"):
        ext.transform(images.astype(np.float32))
    explicit = EfficientNetLite0Features(image_size=64, batch_size=2, device="cpu").transform(images)
    if not torch.cuda.is_available():  # "auto" ran on the CPU too
        np.testing.assert_allclose(explicit, features, rtol=1e-4, atol=1e-5)
    else:  # cuDNN convolutions run in TF32 by default: on an H100 features moved by up to 0.018
        cosine = np.sum(explicit * features, axis=1) / (
            np.linalg.norm(explicit, axis=1) * np.linalg.norm(features, axis=1))
        assert cosine.min() > 0.999
        np.testing.assert_allclose(explicit, features, atol=0.05)
    with pytest.raises(ValueError, match="device must be 'auto' or a torch device"):
        EfficientNetLite0Features(image_size=64, device="gpu").transform(images)


def test_imagenet_weights_load_strictly():
    """Every tensor of the packaged file fills the parameter of its name, none left over."""
    pytest.importorskip("efficientnet_lite_pytorch")
    from sortedhash.extractors import EfficientNetLite0Features, _efficientnet_lite0_weights

    weights = _efficientnet_lite0_weights()
    state = EfficientNetLite0Features(image_size=64)._model("cpu").state_dict()
    assert list(state) == list(weights)
    assert all(torch.equal(state[k], weights[k]) for k in weights)


def test_random_weights_control_is_seeded_and_leaves_the_callers_rng():
    pytest.importorskip("efficientnet_lite_pytorch")
    from sortedhash.extractors import EfficientNetLite0Features

    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    pretrained = EfficientNetLite0Features(image_size=64, device="cpu").transform(images)
    torch.manual_seed(123)
    random_a = EfficientNetLite0Features(image_size=64, device="cpu", weights=None, random_state=0).transform(images)
    after = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), after)  # the random init drew from its own seed
    random_b = EfficientNetLite0Features(image_size=64, device="cpu", weights=None, random_state=0).transform(images)
    random_c = EfficientNetLite0Features(image_size=64, device="cpu", weights=None, random_state=1).transform(images)
    np.testing.assert_array_equal(random_a, random_b)
    assert not np.allclose(random_a, random_c) and not np.allclose(random_a, pretrained)
    extractor = EfficientNetLite0Features(image_size=64, device="cpu", random_state=0)
    np.testing.assert_array_equal(extractor.transform(images), pretrained)
    np.testing.assert_array_equal(extractor.set_params(weights=None).transform(images), random_a)  # not stale
    with pytest.raises(ValueError, match="weights must be 'imagenet' or None"):
        EfficientNetLite0Features(weights="imagenet21k").fit(images)
