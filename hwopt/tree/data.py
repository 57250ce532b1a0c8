"""Datasets for `hwopt tree`: the bundled scikit-learn digits or a user `.npz`.

Pure numpy (no TensorFlow): images are float32 NHWC, labels int64 class indices.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwopt.errors import DataError, UnsupportedModelError, UsageError
from hwopt.fileio import load_npz as read_npz

log = logging.getLogger(__name__)

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
DIGITS_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class TreeDataset:
    """Training and held-out arrays; `name` says where they came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed stratified split: the same `test_fraction` of every class goes to the held-out set."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = round(idx.size * test_fraction)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits_dataset(seed: int = 0) -> TreeDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), scaled to [0, 1], 80/20 split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UnsupportedModelError("the built-in digits dataset needs scikit-learn: install hwopt[train]") from None
    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[..., np.newaxis]
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = _stratified_split(y, DIGITS_TEST_FRACTION, seed)
    return TreeDataset("digits", x[tr], y[tr], x[te], y[te])


def _labels(y: np.ndarray, key: str, n: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = np.argmax(y, axis=1)
    elif y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{key} must hold one label per example ({n}), got shape {list(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"{key} must hold integer class labels")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"{key} holds negative class labels")
    return y


def load_npz(path: str | os.PathLike[str]) -> TreeDataset:
    """Read x_train, y_train, x_test, y_test from an .npz; a 3-D x gets a channel axis."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"dataset file not found: {p}")
    npz = read_npz(p)
    missing = [k for k in NPZ_KEYS if k not in npz]
    if missing:
        raise DataError(f"{p} lacks the arrays {', '.join(missing)} (needs {', '.join(NPZ_KEYS)})")
    arrays = {k: np.asarray(npz[k]) for k in NPZ_KEYS}
    xs = {}
    for k in ("x_train", "x_test"):
        x = arrays[k]
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataError(f"{k} must be numeric, got {x.dtype}")
        if x.ndim == 3:
            x = x[..., np.newaxis]
        if x.ndim < 2 or x.shape[0] == 0:
            raise DataError(f"{k} must be a non-empty batch of examples, got shape {list(x.shape)}")
        xs[k] = x.astype(np.float32)
    if xs["x_train"].shape[1:] != xs["x_test"].shape[1:]:
        raise DataError(f"x_train examples {list(xs['x_train'].shape[1:])} and x_test examples "
                        f"{list(xs['x_test'].shape[1:])} differ in shape")
    if not (np.all(np.isfinite(xs["x_train"])) and np.all(np.isfinite(xs["x_test"]))):
        raise DataError(f"{p} holds NaN or infinite inputs")
    y_train = _labels(arrays["y_train"], "y_train", xs["x_train"].shape[0])
    y_test = _labels(arrays["y_test"], "y_test", xs["x_test"].shape[0])
    return TreeDataset(p.stem, xs["x_train"], y_train, xs["x_test"], y_test)


def load_dataset(path: str | os.PathLike[str] | None, seed: int = 0) -> TreeDataset:
    """The user's .npz when given, else the built-in digits."""
    return load_digits_dataset(seed) if path is None else load_npz(path)
