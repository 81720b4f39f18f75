"""The Omniglot reader on tiny synthetic zips in the official layout, and the command's
message without the data."""

import io
import zipfile

import jax
import numpy as np
import pytest
from PIL import Image

import pcastro as pc
from pcastro.bench import OmniglotConfig, ScratchConfig, TransferConfig
from pcastro.bench._omniglot import make_body, with_new_head
from pcastro.cli import main
from pcastro.data._omniglot import find_omniglot, load_characters, load_official_runs


def _png(ink_box) -> bytes:
    # White background, a black (ink) square: PIL mode "1" like the official PNGs.
    pixels = np.ones((105, 105), bool)
    r0, r1, c0, c1 = ink_box
    pixels[r0:r1, c0:c1] = False
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def omniglot_dir(tmp_path):
    folder = tmp_path / "omniglot"
    folder.mkdir()
    with zipfile.ZipFile(folder / "images_evaluation.zip", "w") as z:
        for a, alphabet in enumerate(("Alpha", "Beta")):
            for c in (1, 2):
                for drawer in (1, 2, 3):
                    box = (10 * a, 10 * a + 35, 20 * c, 20 * c + 35)
                    z.writestr(
                        f"images_evaluation/{alphabet}/character{c:02d}/09{c}{a}_{drawer:02d}.png",
                        _png(box),
                    )
    with zipfile.ZipFile(folder / "all_runs.zip", "w") as z:
        labels = []
        for c in range(1, 21):
            z.writestr(f"run01/training/class{c:02d}.png", _png((c, c + 20, 0, 105)))
        for q in range(1, 21):
            target = 21 - q
            z.writestr(f"run01/test/item{q:02d}.png", _png((target, target + 20, 0, 105)))
            labels.append(f"run01/test/item{q:02d}.png run01/training/class{target:02d}.png")
        z.writestr("run01/class_labels.txt", "\n".join(labels) + "\n")
    return tmp_path


def test_characters_are_read_with_ink_as_one_and_downsampled(omniglot_dir):
    folder = find_omniglot(omniglot_dir)
    chars = load_characters(folder, "evaluation", size=15)
    assert chars.x.shape == (12, 15 * 15) and chars.x.dtype == np.float32
    assert chars.num_characters == 4 and chars.alphabet == ("Alpha", "Alpha", "Beta", "Beta")
    np.testing.assert_array_equal(np.bincount(chars.y), [3, 3, 3, 3])
    np.testing.assert_array_equal(np.unique(chars.drawer), [1, 2, 3])
    # A 35x35 ink square covers 35^2/105^2 of the image: its mean ink is 1/9.
    np.testing.assert_allclose(chars.x.mean(axis=1), 1 / 9, rtol=1e-5)
    assert chars.x.min() == 0.0 and chars.x.max() == 1.0


def test_official_runs_keep_the_class_of_each_query(omniglot_dir):
    runs = load_official_runs(find_omniglot(omniglot_dir), size=105)
    assert runs.support_x.shape == (1, 20, 105 * 105)
    np.testing.assert_array_equal(runs.query_y[0], np.arange(19, -1, -1))
    # Query q is drawn like class 21 - q: identical images.
    np.testing.assert_array_equal(runs.query_x[0, 0], runs.support_x[0, 19])


def test_without_the_data_the_command_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PCASTRO_DATA", raising=False)
    assert main(["oneshot", "--dataset", "omniglot", "--no-progress", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "brendenlake/omniglot" in err
    code = main(
        [
            "oneshot",
            "--dataset",
            "omniglot",
            "--data-dir",
            str(tmp_path),
            "--no-progress",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2 and "images_evaluation.zip" in capsys.readouterr().err


@pytest.mark.parametrize("body", ["mlp", "conv"])
def test_a_new_head_keeps_the_pretrained_body(body, getkey):
    cfg = OmniglotConfig(body=body, hidden=6, conv_channels=(2, 3))
    net = make_body(cfg, getkey(), 64, 7)
    assert net.input_shape == (64,) and net.shapes[-1] == (7,) and net.shapes[-2] == (6,)
    if body == "conv":  # the flat image is reshaped to 1x8x8 by the first block
        assert net.shapes[1:3] == ((2, 4, 4), (3, 2, 2))
    x = jax.random.uniform(getkey(), (3, 64))
    new = with_new_head(net, 5, getkey())
    assert new.shapes == (*net.shapes[:-1], (5,))
    assert isinstance(new.nodes[-1].energy, pc.CrossEntropy)
    # Same body modules and activations: identical features below the head.
    features = [jax.vmap(lambda e, n=n: n.nodes[0].predict([e]))(x) for n in (net, new)]
    np.testing.assert_array_equal(*features)
    assert all(a.activation is b.activation for a, b in zip(net.nodes[:-1], new.nodes[:-1]))
    assert jax.vmap(new)(x).shape == (3, 5)


def test_omniglot_settings_are_refused_outside_omniglot():
    from pcastro.bench._config import oneshot_config

    with pytest.raises(ValueError, match="`--body` is a setting of the omniglot protocol, not"):
        oneshot_config("scratch", dataset="digits", body="conv")
    with pytest.raises(ValueError, match="`OmniglotConfig` runs on `dataset='omniglot'`"):
        OmniglotConfig(dataset="digits")
    for cls in (ScratchConfig, TransferConfig):
        with pytest.raises(ValueError, match="configure an Omniglot run with `OmniglotConfig`"):
            cls(dataset="omniglot")
