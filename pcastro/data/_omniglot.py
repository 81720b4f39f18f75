"""Omniglot (Lake, Salakhutdinov & Tenenbaum, Science 2015), read from its zip files.

Images are 105x105 binary PNGs (white background, black ink); they are returned with ink
as 1, downsampled by area averaging to `size x size` and flattened to `float32` in [0, 1].
"""

import dataclasses
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np

_ENV_VAR = "PCASTRO_DATA"
_FILES = {
    "small1": "images_background_small1.zip",
    "small2": "images_background_small2.zip",
    "evaluation": "images_evaluation.zip",
    "runs": "all_runs.zip",
}


@dataclasses.dataclass(frozen=True, eq=False)
class CharacterSet:
    """Images of characters: `x[i]` is a flattened image of character `y[i]`, drawn by
    drawer `drawer[i]`; `alphabet[c]` and `name[c]` name character `c`."""

    x: np.ndarray
    y: np.ndarray
    drawer: np.ndarray
    alphabet: tuple[str, ...]
    name: tuple[str, ...]

    @property
    def num_characters(self) -> int:
        return len(self.name)


@dataclasses.dataclass(frozen=True, eq=False)
class OfficialRuns:
    """Lake et al.'s 20 one-shot runs: in run `r`, `support_x[r, c]` is the one training
    image of class `c` (20 classes), `query_x[r, q]` a test image whose class is
    `query_y[r, q]`."""

    support_x: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray


def _image(data: bytes, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        ink = Image.fromarray(np.uint8(255) - np.asarray(im.convert("L"), dtype=np.uint8))
        small = ink.resize((size, size), Image.BOX) if size != ink.width else ink  # pyright: ignore[reportAttributeAccessIssue]  # Pillow's alias of Resampling.BOX
        return (np.asarray(small, dtype=np.float32) / np.float32(255)).reshape(-1)


def find_omniglot(data_dir: str | Path | None) -> Path:
    """The folder holding the Omniglot zips: `data_dir` (or `$PCASTRO_DATA`), or its
    `omniglot/` subfolder."""
    if data_dir is None and not os.environ.get(_ENV_VAR):
        raise FileNotFoundError(
            "Omniglot is read from its zip files (" + ", ".join(_FILES.values()) + "), but "
            f"no folder was given: pass `--data-dir DIR` (or set {_ENV_VAR}=DIR) where DIR or "
            "DIR/omniglot holds them. They come from github.com/brendenlake/omniglot "
            "(python/*.zip and python/one-shot-classification/all_runs.zip)."
        )
    root = Path(data_dir if data_dir is not None else os.environ[_ENV_VAR])
    for folder in (root / "omniglot", root):
        if (folder / _FILES["evaluation"]).is_file():
            return folder
    raise FileNotFoundError(
        f"Omniglot: did not find {_FILES['evaluation']} in {str(root / 'omniglot')!r} or "
        f"{str(root)!r}. Put the zips ({', '.join(_FILES.values())}) there; they come from "
        "github.com/brendenlake/omniglot."
    )


def load_characters(folder: Path, which: str, *, size: int = 28) -> CharacterSet:
    """A background set (`"small1"`, `"small2"`) or the `"evaluation"` set, from
    `<set>/<Alphabet>/characterNN/<id>_<drawer>.png` inside its zip."""
    if which not in _FILES or which == "runs":
        raise ValueError(f"`which` must be one of small1, small2, evaluation; got {which!r}.")
    path = Path(folder) / _FILES[which]
    if not path.is_file():
        raise FileNotFoundError(f"Omniglot: {str(path)!r} is missing.")
    pattern = re.compile(r"^[^/]+/([^/]+)/(character\d+)/\d+_(\d+)\.png$")
    xs, keys, drawers = [], [], []
    with zipfile.ZipFile(path) as z:
        for entry in sorted(z.namelist()):
            match = pattern.match(entry)
            if match:
                xs.append(_image(z.read(entry), size))
                keys.append((match.group(1), match.group(2)))
                drawers.append(int(match.group(3)))
    if not xs:
        raise ValueError(f"Omniglot: {str(path)!r} holds no character images.")
    characters = sorted(set(keys))
    index = {key: i for i, key in enumerate(characters)}
    return CharacterSet(
        x=np.stack(xs),
        y=np.asarray([index[k] for k in keys], np.int32),
        drawer=np.asarray(drawers, np.int32),
        alphabet=tuple(a for a, _ in characters),
        name=tuple(f"{a}/{c}" for a, c in characters),
    )


def load_official_runs(folder: Path, *, size: int = 28) -> OfficialRuns:
    """The 20 official 20-way 1-shot runs from `all_runs.zip`."""
    path = Path(folder) / _FILES["runs"]
    if not path.is_file():
        raise FileNotFoundError(f"Omniglot: {str(path)!r} is missing.")
    support, query, labels = [], [], []
    with zipfile.ZipFile(path) as z:
        runs = sorted({n.split("/")[0] for n in z.namelist() if re.match(r"^run\d+/", n)})
        for run in runs:
            # class_labels.txt names files relative to the zip root: runNN/test/itemMM.png.
            classes = [f"{run}/training/class{c:02d}.png" for c in range(1, 21)]
            support.append(np.stack([_image(z.read(c), size) for c in classes]))
            pairs = [
                line.split()
                for line in z.read(f"{run}/class_labels.txt").decode().splitlines()
                if line.strip()
            ]
            query.append(np.stack([_image(z.read(item), size) for item, _ in pairs]))
            labels.append([classes.index(cls) for _, cls in pairs])
    return OfficialRuns(np.stack(support), np.stack(query), np.asarray(labels, np.int32))
