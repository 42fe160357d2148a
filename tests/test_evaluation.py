"""Where a model fails: the confusion matrix maths, its record, its rendering, and the
evaluation pipeline's padding (which must never be counted)."""

import io

import numpy as np
import pytest
from rich.console import Console

from resnet_tui import backend
from resnet_tui.data.dataset import CIFAR10_CLASSES
from resnet_tui.data.pipeline import make_eval_dataset
from resnet_tui.report.tables import confusion_report, per_class_comparison
from resnet_tui.training.confusion import (
    CLASS_NAMES,
    confusion_matrix,
    confusion_record,
    most_confused,
    per_class_accuracy,
    predicted_labels,
    read_record,
)


def render(renderable, width: int = 80) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def test_one_definition_of_the_class_names():
    assert CLASS_NAMES is CIFAR10_CLASSES
    assert CLASS_NAMES == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def test_rows_are_true_classes_and_columns_predictions():
    matrix = confusion_matrix([3, 3, 3, 5, 0], [3, 5, 5, 5, 9])
    assert matrix.shape == (10, 10) and matrix.sum() == 5
    assert matrix[3, 3] == 1 and matrix[3, 5] == 2 and matrix[5, 5] == 1 and matrix[0, 9] == 1
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        confusion_matrix([1, 2], [1])
    with pytest.raises(ValueError, match="outside 0..9"):
        confusion_matrix([1], [10])


def test_per_class_accuracy_and_the_most_confused_pairs():
    y_true = [3] * 10 + [5] * 10 + [1] * 4
    y_pred = [3] * 7 + [5] * 2 + [2] + [5] * 9 + [3] + [1] * 4
    matrix = confusion_matrix(y_true, y_pred)
    accuracy = per_class_accuracy(matrix)
    assert accuracy[3] == 0.7 and accuracy[5] == 0.9 and accuracy[1] == 1.0
    assert accuracy[0] is None  # no airplane in this split: no figure, not 0%
    pairs = most_confused(matrix)
    # cat -> dog 20% (2 of 10), then the two 10% cells: equal rate and count, in matrix order.
    assert [(p.true, p.predicted, p.count) for p in pairs] == [(3, 5, 2), (3, 2, 1), (5, 3, 1)]
    assert pairs[0].rate == pytest.approx(0.2)
    assert most_confused(confusion_matrix([1, 2], [1, 2])) == []


def test_the_record_is_json_and_a_damaged_one_is_ignored():
    record = confusion_record([0, 1, 1], [0, 1, 0])
    assert record["images"] == 3 and record["matrix"][1] == [1, 1] + [0] * 8
    assert record["classes"] == list(CLASS_NAMES) and record["accuracy"] == pytest.approx(2 / 3)
    assert read_record({"confusion": record})["per_class_accuracy"][:2] == [1.0, 0.5]
    for damaged in (None, {}, {"confusion": "x"}, {"confusion": {"classes": ["a", "b"], "matrix": [[1]]}},
                    {"confusion": {"classes": ["a"], "matrix": [[-1]]}}, {"confusion": {"matrix": [[1]]}}):
        assert read_record(damaged) is None, damaged


@pytest.mark.skipif(not backend.on_tensorflow(), reason="pads are tf.data's (MirroredStrategy); JAX's batches have none")
def test_pads_of_an_evaluation_pipeline_are_cut_before_counting():
    """For 4 replicas make_eval_dataset pads 17 images with 3 zero-weight copies of image 0; a
    real Keras model's predictions over it, cut to the real images, give the unpadded
    pipeline's matrix, counting 17 images (the pads would add 3 to image 0's row)."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (17, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 17)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    stats = (np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32))
    plain = model.predict(make_eval_dataset(x, y, stats, 8), verbose=0)
    padded = model.predict(make_eval_dataset(x, y, stats, 8, replicas=4), verbose=0)
    assert len(plain) == 17 and len(padded) == 20  # 3 pads
    want = confusion_matrix(y, plain.argmax(axis=1))
    got = confusion_matrix(y, predicted_labels(padded, len(y)))
    assert got.sum() == 17 and (got == want).all()
    with pytest.raises(ValueError, match="at least 18 rows"):
        predicted_labels(plain, 18)


def test_the_heatmap_fits_80_columns_and_names_the_most_confused():
    y_true = np.repeat(np.arange(10), 1000)
    y_pred = y_true.copy()
    y_pred[3000:3120] = 5  # 12% of the cats taken for dogs
    y_pred[5000:5050] = 3
    y_pred[0:1] = 8
    text = render(confusion_report({"confusion": confusion_record(y_true, y_pred)}))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert "Test split, 10,000 images, accuracy 98.29%" in text
    header = next(line for line in lines if "plane" in line)
    assert header.split() == ["true", "\\", "pred", "plane", "auto", "bird", "cat", "deer", "dog", "frog", "horse",
                              "ship", "truck", "acc"]
    cat = next(line for line in lines if line.startswith("cat "))
    assert cat.split() == ["cat", "·", "·", "·", "880", "·", "120", "·", "·", "·", "·", "88.0%"]
    assert next(line for line in lines if line.startswith("airplane")).split()[-1] == "99.9%"
    assert "most confused: cat → dog 12% (120 of 1,000) · dog → cat 5% (50 of 1,000) · airplane → ship 0%" \
           in " ".join(text.split())
    assert "No confusion matrix" in render(confusion_report({"status": "stopped"}))


def test_two_runs_per_class_side_by_side_with_the_difference():
    a = {"confusion": confusion_record([3, 3, 5, 5], [3, 5, 5, 5])}
    b = {"confusion": confusion_record([3, 3, 5, 5], [3, 3, 5, 3])}
    text = render(per_class_comparison([("run-a", a), ("run-b", b), ]), width=100)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in text.splitlines() if line.startswith("│")}
    assert rows["cat"] == ["50.00%", "100.00%", "+50.0%"] and rows["dog"] == ["100.00%", "50.00%", "-50.0%"]
    assert rows["airplane"] == ["—", "—", "—"] and rows["all"] == ["75.00%", "75.00%", "+0.0%"]
    # A run without a matrix is a column of dashes; none with one says so.
    text = render(per_class_comparison([("run-a", a), ("run-c", {}), ("run-b", b)]), width=100)
    assert "run-c" in text and "Δ" not in text
    assert "None of these runs has a confusion matrix" in render(per_class_comparison([("x", {}), ("y", None)]))
