import gzip
import hashlib
import io

import numpy as np
import pytest

from pcastro.data import Dataset, _download, load_dataset, load_idx_pair, read_idx, write_idx
from pcastro.data._download import _sha256, _verify, download

DIGITS_COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mnist5k() -> Dataset:
    return load_dataset("mnist5k")


def _check_embedded(data, *, name, features, image_shape, counts):
    n = counts.sum()
    n_test = int(np.ceil(0.2 * n))
    assert data.name == name
    assert data.image_shape == image_shape
    assert data.num_classes == 10
    assert data.x_train.shape == (n - n_test, features)
    assert data.x_test.shape == (n_test, features)
    assert data.y_train.shape == (n - n_test,) and data.y_test.shape == (n_test,)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    for x in (data.x_train, data.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    train_counts = np.bincount(data.y_train, minlength=10)
    test_counts = np.bincount(data.y_test, minlength=10)
    np.testing.assert_array_equal(train_counts + test_counts, counts)
    # Stratified: every class keeps its 20% share in the test set, up to rounding.
    assert np.all(np.abs(test_counts - 0.2 * counts) <= 1)


def test_digits(digits):
    _check_embedded(digits, name="digits", features=64, image_shape=(8, 8), counts=DIGITS_COUNTS)
    # The original pixel values are the integers 0..16.
    np.testing.assert_array_equal(digits.x_train * 16, np.round(digits.x_train * 16))


def test_digits_split_is_fixed(digits):
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    np.testing.assert_array_equal(again.y_test, digits.y_test)


def test_mnist5k(mnist5k):
    counts = np.full(10, 500)
    _check_embedded(mnist5k, name="mnist5k", features=784, image_shape=(28, 28), counts=counts)
    np.testing.assert_array_equal(np.bincount(mnist5k.y_test), np.full(10, 100))


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"Unknown dataset name 'cifar'.*'digits'.*'fashion'"):
        load_dataset("cifar")


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(7, dtype=np.uint8),
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
        np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32),
    ],
)
def test_idx_round_trip(tmp_path, suffix, array):
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_standard(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8))
    write_idx(tmp_path / "images", np.zeros((2, 28, 28), dtype=np.uint8))
    labels = (tmp_path / "labels").read_bytes()
    images = (tmp_path / "images").read_bytes()
    assert int.from_bytes(labels[:4], "big") == 2049
    assert labels[4:] == (3).to_bytes(4, "big") + bytes([3, 1, 4])
    assert int.from_bytes(images[:4], "big") == 2051
    assert images[4:16] == b"".join(n.to_bytes(4, "big") for n in (2, 28, 28))
    assert len(images) == 16 + 2 * 28 * 28


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"<html>" + bytes(20))
    with pytest.raises(ValueError, match=r"'.*bad' has bad magic number"):
        read_idx(path)


def test_idx_bad_type_code(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(bytes([0, 0, 0x07, 1]) + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(ValueError, match="bad magic number"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_truncated(tmp_path, suffix):
    path = tmp_path / f"images{suffix}"
    good = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2, 3, 3))
    data = good + bytes(2 * 3 * 3 - 1)
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(ValueError, match=r"images(\.gz)?' is truncated.*\(2, 3, 3\)"):
        read_idx(path)


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="truncated.*header needs 16 bytes"):
        read_idx(path)


def test_idx_truncated_gzip_stream(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]))[:-6])
    with pytest.raises(ValueError, match="could not be decompressed"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.arange(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(ValueError, match="'.*labels' has 2 trailing bytes"):
        read_idx(path)


def test_idx_pair_count_mismatch(tmp_path):
    write_idx(tmp_path / "images", np.zeros((4, 2, 2), dtype=np.uint8))
    write_idx(tmp_path / "labels", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="holds 4 images but labels file .* holds 3 labels"):
        load_idx_pair(tmp_path / "images", tmp_path / "labels")
    with pytest.raises(ValueError, match="expected a 1-D array of labels"):
        load_idx_pair(tmp_path / "labels", tmp_path / "images")


def _write_tiny_idx(folder, *, suffix=".gz", train=True, n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 5), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 5), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    for stem, array in arrays.items():
        if train or stem.startswith("t10k"):
            write_idx(folder / f"{stem}{suffix}", array)
    return arrays


@pytest.mark.parametrize("layout", ["folder", "parent"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_load_idx_dataset_from_env(tmp_path, monkeypatch, layout, suffix):
    folder = tmp_path / "mnist" if layout == "parent" else tmp_path
    arrays = _write_tiny_idx(folder, suffix=suffix)
    monkeypatch.setenv("PCASTRO_DATA", str(tmp_path))
    data = load_dataset("mnist")
    assert data.image_shape == (4, 5)
    assert data.x_train.shape == (6, 20) and data.x_test.shape == (4, 20)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    expected = arrays["train-images-idx3-ubyte"].reshape(6, 20) / 255
    np.testing.assert_allclose(data.x_train, expected, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])


def test_data_dir_beats_env(tmp_path, monkeypatch):
    _write_tiny_idx(tmp_path / "a" / "fashion-mnist", n_train=6)
    _write_tiny_idx(tmp_path / "b", n_train=8)
    monkeypatch.setenv("PCASTRO_DATA", str(tmp_path / "b"))
    assert load_dataset("fashion", data_dir=tmp_path / "a").x_train.shape[0] == 6
    assert load_dataset("fashion").x_train.shape[0] == 8


def test_subfolder_preferred_over_parent(tmp_path):
    _write_tiny_idx(tmp_path, n_train=6)
    _write_tiny_idx(tmp_path / "fashion-mnist", n_train=8)
    assert load_dataset("fashion", data_dir=tmp_path).x_train.shape[0] == 8


def test_missing_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("PCASTRO_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"(?s)train-images-idx3-ubyte.*nope.*PCASTRO_DATA"):
        load_dataset("mnist", data_dir=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"PCASTRO_DATA is not set.*download\('fashion'"):
        load_dataset("fashion")


def test_train_files_missing(tmp_path):
    _write_tiny_idx(tmp_path, train=False)
    with pytest.raises(FileNotFoundError, match=r"found the test files.*not the train files"):
        load_dataset("mnist", data_dir=tmp_path)


def test_verify_checksum(tmp_path):
    path = tmp_path / "file.gz"
    path.write_bytes(b"some bytes")
    good = _sha256(path)
    assert good == hashlib.sha256(b"some bytes").hexdigest()
    _verify(path, good)
    assert path.exists()
    with pytest.raises(ValueError, match=r"Checksum mismatch .*file\.gz.*expected sha256 0{64}"):
        _verify(path, "0" * 64)
    assert not path.exists()


def test_download_unknown_name(tmp_path):
    with pytest.raises(ValueError, match=r"expected one of \['fashion', 'mnist'\]"):
        download("digits", tmp_path)
    assert not any(tmp_path.iterdir())


def test_download_verifies_without_network(tmp_path, monkeypatch):
    # Serve fake files from memory instead of the network, with a patched checksum table.
    served = {"a.gz": b"good bytes", "b.gz": b"corrupted"}
    checksums = {"a.gz": hashlib.sha256(b"good bytes").hexdigest(), "b.gz": "0" * 64}
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return io.BytesIO(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(_download.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setitem(_download._SHA256, "mnist", checksums)
    monkeypatch.setitem(_download._MIRRORS, "mnist", ("https://one/", "https://two/"))
    with pytest.raises(ValueError, match=r"(?s)valid 'b.gz'.*one/b.gz.*Checksum mismatch"):
        download("mnist", tmp_path)
    folder = tmp_path / "mnist"
    assert (folder / "a.gz").read_bytes() == b"good bytes"
    assert sorted(p.name for p in folder.iterdir()) == ["a.gz"]  # bad and partial files gone
    assert urls == ["https://one/a.gz", "https://one/b.gz", "https://two/b.gz"]
    # A file already present with the right checksum is not fetched again.
    served["b.gz"] = b"fixed"
    checksums["b.gz"] = hashlib.sha256(b"fixed").hexdigest()
    assert download("mnist", tmp_path) == folder
    assert urls[3:] == ["https://one/b.gz"]
