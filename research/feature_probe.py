"""Are the EfficientNet-Lite0 features worth their weights? A linear probe on CIFAR-10.

The retrieval benchmark hashes CIFAR-10 through the packaged ImageNet EfficientNet-Lite0
(``sortedhash.extractors.EfficientNetLite0Features``). This checks the two things that
table rests on: the packaged weights load strictly into the network definition (every
tensor fills the parameter of its name and shape, none left over or missing), and the
features they give beat those of the same network with random weights, and the raw pixels,
on a linear probe (logistic regression on standardised features, test accuracy).

Run: ``python research/feature_probe.py --data PATH [--train-per-class 500 --test-per-class 200]``
(PATH holds ``cifar10-train-jpg.tar.gz`` and ``cifar10-test-jpg.tar.gz``; the first images of
each class by file name).
"""

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash.datasets import load_cifar10_jpg
from sortedhash.extractors import EfficientNetLite0Features, _efficientnet_lite0_weights


def strict_load_report(image_size):
    """Tensors in the weight file, and whether the extractor's network holds exactly them."""
    weights = _efficientnet_lite0_weights()
    extractor = EfficientNetLite0Features(image_size=image_size, device="cpu")
    state = extractor._model("cpu").state_dict()
    same = state.keys() == weights.keys() and all(state[k].equal(weights[k]) for k in weights)
    return len(weights), same


def probe_accuracies(train_images, train_y, test_images, test_y, image_size=192, batch_size=64):
    """Linear-probe test accuracy of pretrained features, random-network features and raw pixels."""
    extractors = {
        "ImageNet EfficientNet-Lite0": EfficientNetLite0Features(image_size=image_size, batch_size=batch_size),
        "same network, random weights": EfficientNetLite0Features(image_size=image_size, batch_size=batch_size,
                                                                  weights=None, random_state=0),
    }
    scores = {}
    for name, extractor in extractors.items():
        start = time.perf_counter()
        train, test = extractor.fit_transform(train_images), extractor.transform(test_images)
        scores[name] = (_probe(train, train_y, test, test_y), time.perf_counter() - start)
    pixels = [images.reshape(len(images), -1).astype(np.float32) / 255 for images in (train_images, test_images)]
    start = time.perf_counter()
    scores["raw pixels"] = (_probe(pixels[0], train_y, pixels[1], test_y), time.perf_counter() - start)
    return scores


def _probe(train, train_y, test, test_y):
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(probe.fit(train, train_y).score(test, test_y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of the CIFAR-10 jpg archives")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=192)
    args = parser.parse_args()

    n_tensors, same = strict_load_report(args.image_size)
    print(f"weight file: {n_tensors} tensors; loaded strictly, the network holds exactly them: {same}")
    train_images, train_y, _ = load_cifar10_jpg(args.data, "train", per_class=args.train_per_class)
    test_images, test_y, _ = load_cifar10_jpg(args.data, "test", per_class=args.test_per_class)
    print(f"CIFAR-10: {len(train_images)} training / {len(test_images)} test images, {args.image_size} px")
    scores = probe_accuracies(train_images, train_y, test_images, test_y, args.image_size)
    pretrained = scores["ImageNet EfficientNet-Lite0"][0]
    print("| features | linear-probe accuracy | pretrained − this | seconds |")
    print("|---|---:|---:|---:|")
    for name, (accuracy, seconds) in scores.items():
        print(f"| {name} | {accuracy:.3f} | {pretrained - accuracy:+.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
