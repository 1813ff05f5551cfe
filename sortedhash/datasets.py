"""Readers for local copies of public retrieval datasets (nothing is downloaded).

Every function takes the path of the user's own copy; none assumes where it lives.
"""

import io
import os
import tarfile

import numpy as np

__all__ = ["load_cifar10_jpg", "load_20newsgroups"]


def _members_by_label(tar, per_label, suffix=""):
    """Files of an archive laid out ``.../<label>/<file>``, in name order, with their label
    index (alphabetical folder order), keeping the first ``per_label`` of each (all if None)."""
    members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(suffix)),
                     key=lambda m: m.name)
    names = sorted({m.name.split("/")[-2] for m in members})
    index = {name: i for i, name in enumerate(names)}
    counts = dict.fromkeys(names, 0)
    kept = []
    for m in members:
        name = m.name.split("/")[-2]
        if per_label is None or counts[name] < per_label:
            counts[name] += 1
            kept.append((m, index[name]))
    return kept, names


def load_cifar10_jpg(path, split="train", per_class=None):
    """CIFAR-10 from ``cifar10-{split}-jpg.tar.gz`` (``{split}/<class>/NNNN.jpg``).

    Parameters
    ----------
    path : str
        Folder holding ``cifar10-train-jpg.tar.gz`` / ``cifar10-test-jpg.tar.gz``.
    split : {"train", "test"}, default="train"
    per_class : int, default=None
        Keep the first ``per_class`` images of each class (by file name); None keeps all.

    Returns
    -------
    images : ndarray of shape (n, 32, 32, 3), uint8
    labels : ndarray of shape (n,), int64
        Class index in alphabetical folder order (the official label order).
    classes : list of str
    """
    from PIL import Image

    archive = os.path.join(path, f"cifar10-{split}-jpg.tar.gz")
    with tarfile.open(archive) as tar:
        kept, classes = _members_by_label(tar, per_class, suffix=".jpg")
        images, labels = [], []
        for m, label in kept:
            with Image.open(io.BytesIO(tar.extractfile(m).read())) as img:
                images.append(np.asarray(img.convert("RGB")))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64), classes


def load_20newsgroups(path, split="train", per_group=None, remove=("headers", "footers", "quotes")):
    """20 Newsgroups "bydate" posts from ``20news-bydate-{split}.tar.gz``.

    Parameters
    ----------
    path : str
        Folder holding the archives.
    split : {"train", "test"}, default="train"
    per_group : int, default=None
        Keep the first ``per_group`` posts of each group (by file name).
    remove : tuple, default=("headers", "footers", "quotes")
        Cleaning as in :func:`sklearn.datasets.fetch_20newsgroups`.

    Returns
    -------
    texts : list of str
    labels : ndarray of shape (n,), int64
    groups : list of str
    """
    from sklearn.datasets._twenty_newsgroups import (strip_newsgroup_footer, strip_newsgroup_header,
                                                     strip_newsgroup_quoting)

    archive = os.path.join(path, f"20news-bydate-{split}.tar.gz")
    with tarfile.open(archive) as tar:
        kept, groups = _members_by_label(tar, per_group)
        texts, labels = [], []
        for m, label in kept:
            text = tar.extractfile(m).read().decode("latin-1")
            if "headers" in remove:
                text = strip_newsgroup_header(text)
            if "footers" in remove:
                text = strip_newsgroup_footer(text)
            if "quotes" in remove:
                text = strip_newsgroup_quoting(text)
            texts.append(text)
            labels.append(label)
    return texts, np.array(labels, dtype=np.int64), groups
