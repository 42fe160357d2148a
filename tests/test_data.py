"""Dataset loading and the tf.data pipelines (CPU only; no test touches the network)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
import struct
import subprocess
import sys
import tarfile
import textwrap
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from support import REPO

from resnet_tui.config import config_from_values, default_values, set_dotted
from resnet_tui.data import cifar10, npz, torchvision_source
from resnet_tui.data.dataset import CIFAR10_CLASSES, Dataset, DatasetError, channel_stats
from resnet_tui.data.load import dispatch_load_dataset
from resnet_tui.data.pipeline import make_eval_dataset, make_train_dataset


def make_config(**values):
    """A validated config; keys are dotted names with '__' for '.' (DATASET__source)."""
    v = default_values()
    for key, value in values.items():
        set_dotted(v, key.replace("__", "."), value)
    if v["DATASET"]["source"] == "synthetic" and "DATASET__validation_count" not in values:
        v["DATASET"]["validation_count"] = v["DATASET"]["synthetic_train_count"] // 5  # a fifth, as m8_demo
    return config_from_values(v, "test")


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Every test is offline: a download attempt fails as it would without a network."""
    def offline(url, dest, progress):
        raise urllib.error.URLError("tests never download")
    monkeypatch.setattr(cifar10, "_download", offline)


def random_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


# --------------------------------------------------------------------------- cifar10 fakes

class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str``, as the real CIFAR files were written.

    Such strings load as bytes with encoding="bytes" (our loader, Keras') and
    as str with encoding="latin1" (torchvision), so one fake serves both.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # The real files name numpy 1's module, as old pickles do.
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The real CIFAR format: rows of 1024 R, 1024 G, 1024 B values (CHW, row-major)."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    entry = {b"batch_label": b"fake", b"labels": [int(v) for v in labels], b"data": rows, b"filenames": []}
    path.write_bytes(py2_pickle(entry))


def write_cifar_folder(root: Path, per_batch=4, test_count=3) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train_x, train_y = [], []
    for i in range(1, 6):
        x, y = random_images(per_batch, seed=i), rng.integers(0, 10, per_batch)
        write_batch(folder / f"data_batch_{i}", x, y)
        train_x.append(x)
        train_y.append(y)
    test_x, test_y = random_images(test_count, seed=99), rng.integers(0, 10, test_count)
    write_batch(folder / "test_batch", test_x, test_y)
    # torchvision also reads the class names.
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}))
    return {"x": np.concatenate(train_x), "y": np.concatenate(train_y), "x_test": test_x, "y_test": test_y}


# --------------------------------------------------------------------------- dispatch

def test_unknown_model_lists_known_ones():
    with pytest.raises(DatasetError, match="known models: m1 .*, m8 "):
        dispatch_load_dataset(3, make_config(DATASET__source="synthetic"))


# --------------------------------------------------------------------------- synthetic

def test_synthetic_sizes_types_and_determinism():
    cfg = make_config(DATASET__source="synthetic", DATASET__synthetic_train_count=2000,
                      DATASET__synthetic_test_count=500, DATASET__validation_count=400)
    ds = dispatch_load_dataset(8, cfg)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1600, 400, 500)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3)
        assert y.dtype == np.int64 and y.shape == (len(x),) and set(np.unique(y)) <= set(range(10))
    assert ds.mean.dtype == np.float32 and ds.mean.shape == (3,) and ds.std.shape == (3,)
    assert ds.source == "synthetic" and ds.description.endswith("1600 train / 400 val / 500 test")
    assert ds.class_names == CIFAR10_CLASSES
    stats = ds.stats()
    assert all(type(v) is float for v in stats["mean"] + stats["std"])

    again = dispatch_load_dataset(8, cfg)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    other = dispatch_load_dataset(8, cfg.with_values({"SEED": 7}))
    assert not np.array_equal(ds.x_train, other.x_train)

    small_val = dispatch_load_dataset(8, cfg.with_values({"DATASET.validation_count": 100}))
    assert (len(small_val.x_train), len(small_val.x_val)) == (1900, 100)


def test_light_mode_sizes():
    cfg = make_config(DATASET__source="synthetic", DATASET__synthetic_train_count=3000,
                      DATASET__synthetic_test_count=400, LIGHT_MODE=True)
    ds = dispatch_load_dataset(8, cfg)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1000, 200, 200)
    assert "LIGHT_MODE" in ds.description


def synthetic_learnable_accuracy(seed: int = 0) -> float:
    """Validation accuracy of a tiny CNN after 200 Adam steps on 1000 synthetic images."""
    import keras

    cfg = make_config(DATASET__source="synthetic", DATASET__synthetic_train_count=1000,
                      DATASET__synthetic_test_count=10, DATASET__validation_count=200)
    ds = dispatch_load_dataset(8, cfg)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    train = make_train_dataset(ds, 16, augment=True, seed=seed)
    assert int(train.cardinality()) == 50  # known, so Keras knows the steps per epoch
    history = model.fit(train, epochs=4, verbose=0, shuffle=False)  # 200 steps
    assert len(history.history["loss"]) == 4
    _, accuracy = model.evaluate(make_eval_dataset(ds.x_val, ds.y_val, ds, 100), verbose=0)
    return accuracy


def test_synthetic_is_learnable():
    """A tiny CNN gets far above chance (10%) in a few hundred steps; fit re-iterates the dataset.

    Measured (benchmarks/learning_margins.py, SEED 0-7, oneDNN on and off, AVX2
    EPYC): 0.875-0.935; the bar of 0.5 is far under it."""
    accuracy = synthetic_learnable_accuracy(0)
    print(f"synthetic val accuracy {accuracy:.3f}")
    assert accuracy > 0.5


# --------------------------------------------------------------------------- npz

def test_npz_holds_out_validation_and_uses_it_as_test(tmp_path):
    x, y = random_images(300), np.arange(300) % 10
    path = write_npz(tmp_path / "d.npz", x_train=x, y_train=y)
    ds = dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(path),
                                              DATASET__validation_count=50))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (250, 50, 50)
    np.testing.assert_array_equal(ds.x_val, x[250:])  # the last ones, as the paper's 45k/5k
    np.testing.assert_array_equal(ds.y_train, y[:250])
    np.testing.assert_array_equal(ds.x_test, ds.x_val)
    assert "test = validation set" in ds.description


def test_npz_with_all_splits(tmp_path):
    path = write_npz(tmp_path / "d.npz", x_train=random_images(30), y_train=np.arange(30) % 10,
                     x_val=random_images(20, 1), y_val=np.zeros(20, np.int32),
                     x_test=random_images(10, 2), y_test=np.ones((10, 1), np.uint8))
    ds = dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(path)))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (30, 20, 10)
    assert ds.y_test.dtype == np.int64 and ds.y_test.shape == (10,)
    assert "test = validation" not in ds.description


def test_real_sample_npz(sample_npz_path):
    ds = dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(sample_npz_path)))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (10000, 2000, 2000)
    assert np.bincount(ds.y_train).tolist() == [1000] * 10
    # Statistics from the training split, close to the full CIFAR-10's, not the seed's std 0.20.
    raw = np.load(sample_npz_path)["x_train"].astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean, raw.mean(axis=(0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(ds.std, raw.std(axis=(0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(ds.mean, [0.4914, 0.4822, 0.4465], atol=0.01)
    np.testing.assert_allclose(ds.std, [0.2470, 0.2435, 0.2616], atol=0.01)

    light = dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(sample_npz_path),
                                                 LIGHT_MODE=True))
    assert (len(light.x_train), len(light.x_val), len(light.x_test)) == (1000, 200, 200)


@pytest.mark.parametrize("arrays, expected", [
    (dict(x_train=np.zeros((5, 3, 32, 32), np.uint8), y_train=np.zeros(5, np.int64)),
     r"x_train has shape \(5, 3, 32, 32\), expected \(N, 32, 32, 3\)"),
    (dict(x_train=np.zeros((5, 32, 32, 3), np.float32), y_train=np.zeros(5, np.int64)),
     "x_train has dtype float32, expected uint8"),
    (dict(x_train=np.zeros((5, 32, 32, 3), np.uint8), y_train=np.array([0, 1, 2, 3, 10])),
     "y_train has labels from 0 to 10, expected 0..9"),
    (dict(x_train=np.zeros((5, 32, 32, 3), np.uint8), y_train=np.array([0, -1, 2, 3, 4])),
     "y_train has labels from -1 to 4, expected 0..9"),
    (dict(x_train=np.zeros((5, 32, 32, 3), np.uint8), y_train=np.zeros(5, np.float32)),
     "y_train has .*dtype float32, expected integer class labels"),
    (dict(x_train=np.zeros((5, 32, 32, 3), np.uint8), y_train=np.zeros(4, np.int64)),
     "y_train has 4 labels but x_train has 5 images"),
    (dict(x_train=np.zeros((5, 32, 32, 3), np.uint8), y_train=np.zeros(5, np.int64),
          x_val=np.zeros((2, 32, 32, 3), np.uint8)), "has x_val but no y_val"),
    (dict(images=np.zeros((5, 32, 32, 3), np.uint8)), "has no x_train/y_train"),
])
def test_npz_validation_errors(tmp_path, arrays, expected):
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=expected):
        dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(path),
                                             DATASET__validation_count=1))


def test_npz_missing_or_unreadable_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(DatasetError, match="does not exist"):
        dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(missing)))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="is not an .npz archive"):
        dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(garbage)))
    valid = write_npz(tmp_path / "cut.npz", x_train=random_images(4), y_train=np.arange(4))
    damaged = valid.read_bytes()
    member = damaged.index(b"\x93NUMPY")  # x_train's .npy data inside the zip: corrupt its header
    garbage.write_bytes(damaged[:member] + b"X" * 10 + damaged[member + 10:])
    with pytest.raises(DatasetError, match="is not a readable .npz file"):
        dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(garbage)))


def test_validation_count_too_large(tmp_path):
    path = write_npz(tmp_path / "d.npz", x_train=random_images(10), y_train=np.arange(10))
    with pytest.raises(DatasetError, match="validation_count is 10 but .* only 10 images"):
        dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(path),
                                             DATASET__validation_count=10))


# --------------------------------------------------------------------------- cifar10

def test_cifar10_folder_loads_with_channel_order(tmp_path):
    fake = write_cifar_folder(tmp_path)
    ds = dispatch_load_dataset(8, make_config(DATASET__source="cifar10", DATA_PATH=str(tmp_path),
                                              DATASET__validation_count=5))
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (15, 5, 3)
    np.testing.assert_array_equal(ds.x_train, fake["x"][:15])  # HWC, red first: same pixels back
    np.testing.assert_array_equal(ds.x_val, fake["x"][15:])
    np.testing.assert_array_equal(ds.y_val, fake["y"][15:])
    np.testing.assert_array_equal(ds.x_test, fake["x_test"])
    np.testing.assert_array_equal(ds.y_test, fake["y_test"])
    assert ds.description == "CIFAR-10: 15 train / 5 val / 3 test"


def test_cifar10_red_channel_comes_first(tmp_path):
    """A pure red image stored in CIFAR's layout loads as (255, 0, 0) pixels."""
    write_cifar_folder(tmp_path)
    red = np.zeros((2, 3072), np.uint8)
    red[:, :1024] = 255  # the first 1024 values of a row are the red plane
    entry = {b"labels": [0, 0], b"data": red}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle(entry))
    ds = dispatch_load_dataset(8, make_config(DATASET__source="cifar10", DATA_PATH=str(tmp_path),
                                              DATASET__validation_count=5))
    assert (ds.x_test[..., 0] == 255).all() and (ds.x_test[..., 1:] == 0).all()


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_cifar10_damaged_batch_names_the_file(tmp_path, damage):
    write_cifar_folder(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    if damage == "truncate":
        batch.write_bytes(batch.read_bytes()[:500])
    else:
        batch.unlink()
    with pytest.raises(DatasetError, match="data_batch_3 is (truncated or corrupt|missing)"):
        dispatch_load_dataset(8, make_config(DATASET__source="cifar10", DATA_PATH=str(tmp_path),
                                             DATASET__validation_count=5))


def cifar10_config(root: Path):
    return make_config(DATASET__source="cifar10", DATA_PATH=str(root), DATASET__validation_count=5)


@pytest.mark.parametrize("bad_label", [10, -1])
def test_cifar10_labels_outside_the_ten_classes_are_refused_before_tensorflow(tmp_path, bad_label):
    write_cifar_folder(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    write_batch(batch, random_images(3), np.array([0, bad_label, 9]))
    with pytest.raises(DatasetError) as info:
        dispatch_load_dataset(8, cifar10_config(tmp_path))
    low, high = min(0, bad_label), max(9, bad_label)
    assert str(info.value) == (f"CIFAR-10 batch file {batch.resolve()} has labels from {low} to {high}, "
                               f"expected 0..9")


class _RunsCode:
    """Pickles as a call to os.system: what a malicious batch file would hold."""

    def __reduce__(self):
        import os
        return os.system, ("touch pwned",)


def test_cifar10_batch_holding_other_objects_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_cifar_folder(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": [0]}, protocol=2))
    with pytest.raises(DatasetError) as info:
        dispatch_load_dataset(8, cifar10_config(tmp_path))
    message = str(info.value)
    assert message.startswith(f"CIFAR-10 batch file {batch.resolve()} holds objects other than the CIFAR arrays "
                              f"(posix.system); it was not loaded"), message
    assert "truncated" not in message and not (tmp_path / "pwned").exists()


def test_npz_path_that_is_a_folder_or_not_an_npz_says_what_it_is_and_what_is_expected(tmp_path):
    folder = tmp_path / "data.npz"
    folder.mkdir()
    text = tmp_path / "notes.npz"
    text.write_text("x_train, y_train\n")
    npy = tmp_path / "one.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    for path, what in ((folder, "is a folder"), (text, "is not an .npz archive"), (npy, "is not an .npz archive")):
        with pytest.raises(DatasetError) as info:
            dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(path)))
        message = str(info.value)
        assert message == f"DATA_PATH {path.resolve()} {what}; the npz source needs {npz.NPZ_EXPECTED}", message
    assert npz.NPZ_EXPECTED == ("an .npz file (numpy.savez) with x_train (N, 32, 32, 3) uint8 and y_train (N,) "
                                 "labels 0..9, optionally x_val/y_val and x_test/y_test")


def test_npz_holding_python_objects_is_not_loaded(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1, np.int64))
    with pytest.raises(DatasetError) as info:
        dispatch_load_dataset(8, make_config(DATASET__source="npz", DATA_PATH=str(path)))
    assert str(info.value) == (f"{path.resolve()}: x_train holds Python objects rather than an array of numbers; "
                               f"it was not loaded (unpickling could run code)")


def test_cifar10_offline_says_where_to_put_it(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(DatasetError) as info:
        dispatch_load_dataset(8, make_config(DATASET__source="cifar10", DATA_PATH=str(root)))
    message = str(info.value)
    assert str((root / "cifar-10-python.tar.gz").resolve()) in message
    assert str((root / "cifar-10-batches-py").resolve()) in message
    assert cifar10.CIFAR10_URL in message and "tests never download" in message
    assert "Traceback" not in message


def fake_archive(tmp_path: Path, evil: bool = False) -> tuple[bytes, dict]:
    """A tar.gz laid out as the real one (cifar-10-batches-py/...), with tiny batches."""
    src = tmp_path / "src"
    fake = write_cifar_folder(src)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        if evil:
            info = tarfile.TarInfo("../evil.txt")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return buffer.getvalue(), fake


def test_cifar10_download_verifies_and_extracts(tmp_path, monkeypatch):
    archive, fake = fake_archive(tmp_path)
    calls = []

    def serve(url, dest, progress):
        assert url == cifar10.CIFAR10_URL
        for done in (len(archive) // 2, len(archive)):
            progress(done, len(archive))
        dest.write_bytes(archive)

    monkeypatch.setattr(cifar10, "_download", serve)
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    root = tmp_path / "data"
    ds = dispatch_load_dataset(8, make_config(DATASET__source="cifar10", DATA_PATH=str(root),
                                              DATASET__validation_count=5),
                               progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(archive), len(archive))
    np.testing.assert_array_equal(ds.x_test, fake["x_test"])
    assert (root / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not [p for p in root.iterdir() if p.name.startswith(".extract-")]


def test_cifar10_archive_with_wrong_md5_is_refused(tmp_path, monkeypatch):
    archive, _ = fake_archive(tmp_path)
    root = tmp_path / "data"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(archive)  # placed by hand; md5 is not CIFAR-10's
    with pytest.raises(DatasetError, match="is corrupt .*md5"):
        dispatch_load_dataset(8, make_config(DATASET__source="cifar10", DATA_PATH=str(root)))
    assert not (root / "cifar-10-batches-py").exists()


def test_cifar10_archive_with_odd_paths_is_refused(tmp_path, monkeypatch):
    archive, _ = fake_archive(tmp_path, evil=True)
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    root = tmp_path / "data"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(archive)
    with pytest.raises(DatasetError, match="unexpected path '../evil.txt'"):
        dispatch_load_dataset(8, make_config(DATASET__source="cifar10", DATA_PATH=str(root)))
    assert not (tmp_path / "evil.txt").exists() and not (root / "cifar-10-batches-py").exists()


# --------------------------------------------------------------------------- torchvision

def test_torchvision_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed
    with pytest.raises(DatasetError, match=r"pip install 'resnet-tui\[torchvision\]'"):
        dispatch_load_dataset(8, make_config(DATASET__source="torchvision", DATA_PATH=str(tmp_path)))


@pytest.mark.slow
def test_torchvision_loads_the_same_files(tmp_path, monkeypatch):
    """torchvision runs in a child process (torch imported after TensorFlow segfaults)."""
    if importlib.util.find_spec("torchvision") is None:  # not importorskip: torch must stay out of this process
        pytest.skip("the torchvision extra is not installed (pip install 'resnet-tui[torchvision]')")
    write_cifar_folder(tmp_path)
    cfg = make_config(DATASET__source="torchvision", DATA_PATH=str(tmp_path), DATASET__validation_count=5)
    # torchvision checks each file against the real CIFAR-10 md5: the fake folder fails it...
    with pytest.raises(DatasetError, match="torchvision could not load CIFAR-10 .*corrupted"):
        dispatch_load_dataset(8, cfg)
    # ...so, for the fake, the child accepts any existing file.
    relax = ("import os, torchvision.datasets.cifar as c\n"
             "c.check_integrity = lambda path, md5=None: os.path.isfile(path)\n")
    monkeypatch.setattr(torchvision_source, "_TORCHVISION_SCRIPT", relax + torchvision_source._TORCHVISION_SCRIPT)
    ds = dispatch_load_dataset(8, cfg)
    ref = dispatch_load_dataset(8, cfg.with_values({"DATASET.source": "cifar10"}))
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(ds, name), getattr(ref, name))
        assert getattr(ds, name).dtype == getattr(ref, name).dtype
    assert ds.source == "torchvision" and "torch" not in sys.modules


def test_other_sources_never_import_torch(tmp_path):
    """Neither importing resnet_tui.data nor loading the other sources imports torch (or TF before needed)."""
    npz = write_npz(tmp_path / "d.npz", x_train=random_images(40), y_train=np.arange(40) % 10)
    write_cifar_folder(tmp_path / "cifar")
    script = textwrap.dedent(f"""
        import sys
        from resnet_tui.config import default_values, config_from_values, set_dotted
        from resnet_tui.data.load import dispatch_load_dataset
        from resnet_tui.data.pipeline import make_train_dataset
        for source, path in (("synthetic", "unused"), ("npz", {str(npz)!r}), ("cifar10", {str(tmp_path / "cifar")!r})):
            v = default_values()
            set_dotted(v, "DATASET.source", source)
            set_dotted(v, "DATASET.validation_count", 5)
            v["DATA_PATH"] = path
            ds = dispatch_load_dataset(8, config_from_values(v, "t"))
        assert "tensorflow" not in sys.modules, "loading imported tensorflow"
        next(iter(make_train_dataset(ds, 4, augment=True, seed=0)))
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
        assert not leaked, leaked
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


# --------------------------------------------------------------------------- pipelines

def small_dataset(n=10, seed=0) -> Dataset:
    """n noise images with labels 0..n-1 (unique, so a label names its image)."""
    x = random_images(n, seed)
    y = np.arange(n, dtype=np.int64)
    mean, std = channel_stats(x)
    empty_x, empty_y = x[:0], y[:0]
    return Dataset(x, y, empty_x, empty_y, empty_x, empty_y, mean, std, "test", "test")


def epochs(dataset, count):
    """``count`` passes, as Keras' fit makes them: a new iterator per epoch."""
    return [[(xb.numpy(), yb.numpy()) for xb, yb in dataset] for _ in range(count)]


def standardized(ds: Dataset, x):
    return ((x.astype(np.float32) / 255 - ds.mean) / ds.std).astype(np.float32)


def test_standardization_train_and_eval():
    ds = dispatch_load_dataset(8, make_config(DATASET__source="synthetic", DATASET__synthetic_train_count=1000,
                                              DATASET__synthetic_test_count=100))
    (batches,) = epochs(make_train_dataset(ds, 128, augment=False, seed=0), 1)
    x = np.concatenate([b[0] for b in batches]).astype(np.float64)
    assert batches[0][0].dtype == np.float32 and x.shape == (800, 32, 32, 3)
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1, atol=1e-4)

    (val,) = epochs(make_eval_dataset(ds.x_val, ds.y_val, ds, 64), 1)
    assert [len(b[1]) for b in val] == [64, 64, 64, 8]  # in order, last batch partial
    np.testing.assert_allclose(np.concatenate([b[0] for b in val]), standardized(ds, ds.x_val), atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in val]), ds.y_val)
    # A (mean, std) pair works as well as a Dataset.
    (pair,) = epochs(make_eval_dataset(ds.x_test, ds.y_test, (ds.mean, ds.std), 100), 1)
    np.testing.assert_allclose(pair[0][0], standardized(ds, ds.x_test), atol=1e-5)


def crop_of(padded: np.ndarray, image: np.ndarray):
    """The (top, left, flipped) whose crop of ``padded`` is ``image``, or None."""
    for top in range(9):
        for left in range(9):
            crop = padded[top:top + 32, left:left + 32]
            for flipped, candidate in ((False, crop), (True, crop[:, ::-1])):
                if np.allclose(candidate, image, atol=1e-5):
                    return top, left, flipped
    return None


def test_augmentation_is_per_image_per_epoch_and_keeps_labels():
    ds = small_dataset(10)
    train = make_train_dataset(ds, 4, augment=True, seed=3)  # batches of 4, 4, 2
    draws = []
    for epoch in epochs(train, 2):
        assert [len(y) for _, y in epoch] == [4, 4, 2]
        found = {}
        for xb, yb in epoch:
            assert xb.dtype == np.float32 and xb.shape[1:] == (32, 32, 3)
            for image, label in zip(xb, yb, strict=True):
                # Zero padding in standardized space: the mean colour.
                padded = np.pad(standardized(ds, ds.x_train[label]), ((4, 4), (4, 4), (0, 0)))
                where = crop_of(padded, image)
                assert where is not None, f"image labelled {label} is no crop/flip of its own original"
                found[int(label)] = where
        assert sorted(found) == list(range(10))  # every image once per epoch
        draws.append(found)
    assert len(set(draws[0].values())) > 3, "crops should differ between images of a batch"
    assert draws[0] != draws[1], "augmentation should change between epochs"


def test_shuffle_changes_per_epoch_and_is_reproducible():
    ds = small_dataset(10)
    import tensorflow as tf

    first = epochs(make_train_dataset(ds, 10, augment=True, seed=5), 3)
    tf.random.set_seed(1234)  # the global seed (which Keras' set_random_seed sets) plays no part
    again = epochs(make_train_dataset(ds, 10, augment=True, seed=5), 3)
    other = epochs(make_train_dataset(ds, 10, augment=True, seed=6), 1)
    orders = [e[0][1].tolist() for e in first]
    assert len({tuple(o) for o in orders}) == 3
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a[0][1], b[0][1])
        np.testing.assert_array_equal(a[0][0], b[0][0])
    assert not np.array_equal(first[0][0][0], other[0][0][0])

    # Without augmentation the images are exactly the standardized originals.
    (plain,) = epochs(make_train_dataset(ds, 10, augment=False, seed=5), 1)
    np.testing.assert_allclose(plain[0][0], standardized(ds, ds.x_train[plain[0][1]]), atol=1e-5)


# --------------------------------------------------------------------------- batches for several replicas

def test_a_last_batch_smaller_than_the_replica_count_sits_out_its_epoch():
    from resnet_tui.data.pipeline import images_per_epoch

    assert images_per_epoch(45000, 128, 8) == 45000  # the paper's split: last batch 72
    assert images_per_epoch(97, 32, 2) == 96 and images_per_epoch(97, 32, 1) == 97
    assert images_per_epoch(98, 32, 4) == 96 and images_per_epoch(100, 32, 4) == 100
    ds = small_dataset(11)
    train = make_train_dataset(ds, 4, augment=False, seed=3, replicas=2)  # 4 + 4 + 3: nothing dropped
    assert [len(y) for _, y in epochs(train, 1)[0]] == [4, 4, 3]
    train = make_train_dataset(ds, 5, augment=False, seed=3, replicas=2)  # 5 + 5 + 1: the 1 sits out
    assert int(train.cardinality()) == 2
    seen = [np.concatenate([y for _, y in epoch]) for epoch in epochs(train, 4)]
    assert all(len(labels) == len(set(labels.tolist())) == 10 for labels in seen)
    assert len({int(np.setdiff1d(np.arange(11), labels)[0]) for labels in seen}) > 1  # a different one each epoch


@pytest.mark.parametrize("count", [19, 17, 3, 2, 1, 40])
def test_eval_batches_for_two_replicas_split_evenly_and_weigh_exactly(count):
    """Every batch a multiple of 2 images (so each replica gets an equal, non-empty slice);
    the pads weigh 0 and the real images (N + P) / N, so the weighted means are the plain ones."""
    ds = small_dataset(count)
    rows = [batch for batch in make_eval_dataset(ds.x_train, ds.y_train, ds, 8, replicas=2)]
    pad = count % 2
    sizes = [len(b[1]) for b in rows]
    assert all(size % 2 == 0 for size in sizes) and sum(sizes) == count + pad
    assert all(len(b) == (3 if pad else 2) for b in rows)  # sample weights only when padded
    labels = np.concatenate([b[1].numpy() for b in rows])
    np.testing.assert_array_equal(labels[:count], ds.y_train)
    if pad:
        weights = np.concatenate([b[2].numpy() for b in rows])
        np.testing.assert_allclose(weights, [(count + pad) / count] * count + [0.0] * pad, rtol=1e-7)


def test_padded_evaluation_equals_the_plain_one():
    """On one device too, the padded, weighted batches give Keras' plain loss and accuracy (with L2).

    The weights are set, not learned, so the figures are the same on every CPU:
    the kernel's column j is image j (j < 10), so image i < 10 scores ~30 on its
    own class and under 1 elsewhere, and images 10-18 (columns of zeros) miss:
    accuracy is 10/19 and the losses differ from image to image."""
    import keras

    ds = small_dataset(19)
    flat = standardized(ds, ds.x_train).reshape(19, -1)
    kernel = np.zeros((flat.shape[1], 19), np.float32)
    kernel[:, :10] = 0.01 * flat[:10].T
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(19, activation="softmax",
                                                 kernel_regularizer=keras.regularizers.L2(0.1))])
    model.layers[-1].set_weights([kernel, np.zeros(19, np.float32)])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    plain = model.evaluate(make_eval_dataset(ds.x_train, ds.y_train, ds, 8), verbose=0, return_dict=True)
    assert set(plain) == {"loss", "accuracy"}  # the weighted metric keeps its plain name
    assert plain["accuracy"] == pytest.approx(10 / 19)
    for replicas in (2, 3, 4):
        padded = model.evaluate(make_eval_dataset(ds.x_train, ds.y_train, ds, 4 * replicas, replicas),
                                verbose=0, return_dict=True)
        assert padded == pytest.approx(plain, rel=1e-6), replicas


def test_synthetic_holds_out_exactly_the_validation_count_or_refuses_at_validate(tmp_path):
    """The synthetic source capped validation_count at 20% without a word (64 asked, 38 given) where
    the other sources hold out what is asked or refuse (issue 22, item 20)."""
    from conftest import tiny_values

    from resnet_tui.config import ConfigError, config_from_values

    config = config_from_values(tiny_values(tmp_path), "m1_x")  # 192 synthetic images, 64 for validation
    ds = dispatch_load_dataset(config.model_number, config)
    assert (len(ds.y_train), len(ds.y_val)) == (128, 64)
    with pytest.raises(ConfigError, match=r"DATASET.validation_count: is 192 but the synthetic source makes only 192"):
        config_from_values(tiny_values(tmp_path, **{"DATASET.validation_count": 192}), "m1_x")
