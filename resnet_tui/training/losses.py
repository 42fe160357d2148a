"""Cross-entropy with label smoothing on integer labels.

Keras 3's SparseCategoricalCrossentropy has no ``label_smoothing``; its
CategoricalCrossentropy has, on one-hot labels. The data pipeline keeps integer
labels (the accuracy metric and evaluation read them), so the loss one-hots them.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="resnet_tui")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """``categorical_crossentropy(one_hot(y), p, label_smoothing)``: the target is
    ``(1 - s) * one_hot(y) + s / classes``."""

    def __init__(self, label_smoothing: float, name: str = "smoothed_sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(y_pred)[-1],
                             dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
