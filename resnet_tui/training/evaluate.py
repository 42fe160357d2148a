"""Test-split figures of a model: loss, accuracy and the confusion matrix.

Used at the end of a completed run (trainer) and on demand for any saved model
(``resnet-tui evaluate RUN``), which rebuilds the run's test split from its
config with the trainer's own loading and pipeline functions (data/).
"""

from __future__ import annotations

import time

import numpy as np

from resnet_tui.events import RunStatus
from resnet_tui.store.runs import Run, StorageError
from resnet_tui.training.confusion import confusion_record, predicted_labels


class EvaluateError(Exception):
    """A run that cannot be evaluated; ``str()`` is one line for the user."""


def evaluate_on_test(model, test_ds, y_test: np.ndarray, class_names, source: str) -> dict:
    """``test_loss``, ``test_accuracy`` and ``confusion`` (confusion.py's record) of ``model``
    on ``test_ds``, a data.batches.eval_batches pipeline of the labels ``y_test``.

    Keras' evaluate gives the loss and accuracy (exact under a strategy: the
    pipeline's pads weigh 0); predict gives every image's class, in order, and
    the pads at the end of its output are cut off before counting.
    """
    from resnet_tui.training.processes import predict

    test_loss, test_accuracy = model.evaluate(test_ds, verbose=0)
    probabilities = predict(model, test_ds)  # with several processes, every process gets them all
    confusion = confusion_record(y_test, predicted_labels(probabilities, len(y_test)), class_names)
    confusion.update(source=source, evaluated=time.time())
    return {"test_loss": float(test_loss), "test_accuracy": float(test_accuracy), "confusion": confusion}


def evaluate_run(run: Run, log=lambda text: None) -> dict:
    """Evaluate run ``run``'s final model on its test split and record the figures in its result.json.

    Returns the updated result. Raises EvaluateError when the run has no final
    model, no result to add to or is running; RunCorruptError for a damaged run file;
    DatasetError when its data cannot be loaded; RunBusyError when another process
    takes the run while it is evaluated.
    """
    import keras

    from resnet_tui.config import run_config
    from resnet_tui.data.batches import eval_batches
    from resnet_tui.data.load import dispatch_load_dataset
    from resnet_tui.training.compile import compile_model

    info = run.require_readable()  # RunCorruptError names a damaged file
    if info.status == RunStatus.RUNNING:
        raise EvaluateError(f"run {run.id} is running: evaluate it once it has ended")
    model_path = run.paths.final_model
    if not model_path.is_file():
        raise EvaluateError(f"run {run.id} ({info.status}) has no final model at {model_path}: "
                            f"only a run that completes or is stopped saves one")
    result = run.read_result()
    if not isinstance(result, dict):
        raise EvaluateError(f"run {run.id} has no result.json to record the evaluation in")
    config = run_config(run)
    log(f"loading the data as the run's config says ({config.get('DATASET.source')})")
    dataset = dispatch_load_dataset(config.model_number, config)
    stats = (result.get("dataset") or {})
    # The statistics the model was trained with, as recorded; the rebuilt ones if none was.
    mean = np.asarray(stats.get("mean", dataset.mean), np.float32)
    std = np.asarray(stats.get("std", dataset.std), np.float32)
    if not np.allclose(mean, dataset.mean, atol=1e-6) or not np.allclose(std, dataset.std, atol=1e-6):
        log("warning: the training split's statistics differ from the run's record: "
            "the data changed since the run; its recorded statistics are used")
    model = keras.models.load_model(model_path, compile=False)
    compile_model(model, config, config.OPTIMIZER["learning_rate"])  # loss and metrics as the trainer's
    test_ds = eval_batches(dataset.x_test, dataset.y_test, (mean, std), config.BATCH_SIZE)
    log(f"evaluating {model_path} on {len(dataset.y_test)} test images")
    figures = evaluate_on_test(model, test_ds, dataset.y_test, dataset.class_names, source="resnet-tui evaluate")
    try:
        run.acquire_lock()  # RunBusyError if a process took the run meanwhile (resume)
        try:
            result = run.read_result() or result
            result.update(figures)
            run.write_result(result)
        finally:
            run.release_lock()
    except OSError as exc:
        raise StorageError.writing(run.paths.result, "RESULT_PATH", exc) from None
    return result
