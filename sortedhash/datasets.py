"""Readers for local copies of public retrieval datasets (nothing is downloaded).

Every function takes the path of the user's own copy; none assumes where it lives.
"""

import io
import os
import tarfile

import numpy as np

__all__ = ["load_cifar10_jpg", "load_20newsgroups"]


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
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")),
                         key=lambda m: m.name)
        classes = sorted({m.name.split("/")[-2] for m in members})
        index = {c: i for i, c in enumerate(classes)}
        counts = dict.fromkeys(classes, 0)
        images, labels = [], []
        for m in members:
            cls = m.name.split("/")[-2]
            if per_class is not None and counts[cls] >= per_class:
                continue
            counts[cls] += 1
            with Image.open(io.BytesIO(tar.extractfile(m).read())) as img:
                images.append(np.asarray(img.convert("RGB")))
            labels.append(index[cls])
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
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        groups = sorted({m.name.split("/")[-2] for m in members})
        index = {g: i for i, g in enumerate(groups)}
        counts = dict.fromkeys(groups, 0)
        texts, labels = [], []
        for m in members:
            group = m.name.split("/")[-2]
            if per_group is not None and counts[group] >= per_group:
                continue
            counts[group] += 1
            text = tar.extractfile(m).read().decode("latin-1")
            if "headers" in remove:
                text = strip_newsgroup_header(text)
            if "footers" in remove:
                text = strip_newsgroup_footer(text)
            if "quotes" in remove:
                text = strip_newsgroup_quoting(text)
            texts.append(text)
            labels.append(index[group])
    return texts, np.array(labels, dtype=np.int64), groups
