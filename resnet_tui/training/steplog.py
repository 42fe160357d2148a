"""Every iteration's exact loss and accuracy, however many steps Keras runs per call.

With ``steps_per_execution = k`` Keras runs k training steps inside one call
into TensorFlow and calls ``on_train_batch_end`` once, with the running means
after the last of them: the k-1 steps before it leave no trace in the logs.
:class:`StepLog` keeps that trace on the device. It wraps the model's
``train_step``: after Keras' own step it copies the running sums of the loss
tracker and of the accuracy metric (each metric's ``total`` and ``count``
variables, which Keras has just updated) into row ``step % capacity`` of a
small ring-buffer variable and counts the step. The streaming callback reads
the buffer and the counter once per execution (two small reads; with k = 1
that is all the per-batch work) and turns consecutive sums into each step's own
values: ``(total_i - total_{i-1}) / (count_i - count_{i-1})``. That is exact up
to the float32 rounding of Keras' own accumulation, with no running mean
multiplied back by a guessed sample count. The buffer is not part of the
model: saved weights and checkpoints are unchanged.

Under ``tf.distribute`` the buffer is created in the model's strategy scope as
a sync-on-read variable summed across replicas, like Keras' metric variables:
each replica writes its own sums, and the host read adds them up into the
global batch's sums; the counter reads the first replica's.

On JAX the step is a pure function of the state (``train_step(state, data)
-> (logs, state)``) and there are no variables to assign inside it:
:class:`JaxStepLog` wraps it to return the same four sums as one more entry
of the step's logs, read from the metric variables of the state the step
returns. One step per call there (STEPS_PER_EXECUTION 1; the trainer refuses
more on JAX), so the logs of every step reach the callback.

Why not a public API: Keras 3 has none that gives a step's own loss and
sample count. Batch ``logs`` are running means without the counts, and with
``steps_per_execution`` > 1 only the last step's reach callbacks. A
``keras.Model`` subclass with its own ``train_step`` (the guide's way) would
make every saved m8 a custom class that only loads with this package
imported, and would still have to read the same trackers to report Keras'
own values. So this wraps the instance's ``train_step`` and reads each Mean
metric's ``total`` and ``count`` variables, reaching the compiled ones through
``CompileMetrics.metrics`` (keras/src/trainers/compile_utils.py). Tested with
Keras 3.15; pyproject.toml pins ``keras<3.16``, and if the structure moves
every training test fails loudly with StepLogError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

METRICS = ("loss", "accuracy")  # columns: loss total, loss count, accuracy total, accuracy count
ATTRIBUTE = "_resnet_tui_steplog"  # where a model keeps its StepLog (a plain object: Keras does not track it)


class StepLogError(RuntimeError):
    pass


def attach(model: keras.Model) -> StepLog | JaxStepLog:
    """The model's step log for the backend it runs on, installed before fit() builds its train function."""
    import keras

    return JaxStepLog.attach(model) if keras.backend.backend() == "jax" else StepLog.attach(model)


def _sum_metrics(model: keras.Model) -> dict:
    """The compiled metrics that keep a ``total`` and a ``count`` (Keras' Mean family), by name."""
    found: dict = {}

    def visit(metric) -> None:
        if hasattr(metric, "total") and hasattr(metric, "count"):
            found.setdefault(metric.name, metric)
            return
        for inner in getattr(metric, "metrics", None) or ():  # CompileMetrics holds the real ones
            visit(inner)

    for metric in model.metrics:
        visit(metric)
    missing = [name for name in METRICS if name not in found]
    if missing:
        raise StepLogError(f"the model has no {' or '.join(missing)} metric with total and count "
                           f"(compile it with metrics=['accuracy'])")
    return found


class _WrappedStep:
    """Wraps a model's ``train_step``; the model keeps the wrapper (ATTRIBUTE) until it is detached."""

    def __init__(self, model: keras.Model):
        self.model = model
        self._original_train_step = model.train_step

    def _train_step(self, *args):  # pragma: no cover - each backend's wrapper defines it
        raise NotImplementedError

    def _install(self):
        self.model.train_step = self._train_step
        self.model.train_function = None  # fit() builds it again, around the wrapped step
        setattr(self.model, ATTRIBUTE, self)
        return self

    def detach(self) -> None:
        """Give the model back its own train_step."""
        model = self.model
        if getattr(model, ATTRIBUTE, None) is self:
            setattr(model, ATTRIBUTE, None)
        model.train_step = self._original_train_step
        model.train_function = None


class StepLog(_WrappedStep):
    """A device-side ring buffer of the metrics' running sums after each training step."""

    def __init__(self, model: keras.Model, capacity: int):
        import tensorflow as tf

        self.capacity = int(capacity)
        self.read_upto = 0  # steps already handed out by take()
        strategy = model.distribute_strategy
        with strategy.scope():
            self.rows = tf.Variable(tf.zeros((self.capacity, 2 * len(METRICS)), tf.float32), trainable=False,
                                    name="steplog_rows", synchronization=tf.VariableSynchronization.ON_READ,
                                    aggregation=tf.VariableAggregation.SUM)
            self.steps = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="steplog_steps",
                                     synchronization=tf.VariableSynchronization.ON_READ,
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        super().__init__(model)

    # On the device ---------------------------------------------------------
    def _train_step(self, data):
        import tensorflow as tf

        logs = self._original_train_step(data)
        metrics = _sum_metrics(self.model)  # Python, once per trace: the metrics are built by now
        sums = []
        for name in METRICS:
            sums += [tf.cast(tf.convert_to_tensor(metrics[name].total), tf.float32),
                     tf.cast(tf.convert_to_tensor(metrics[name].count), tf.float32)]
        slot = tf.math.floormod(self.steps.read_value(), self.capacity)
        self.rows.assign(tf.tensor_scatter_nd_update(self.rows.read_value(), [[slot]], [tf.stack(sums)]))
        self.steps.assign_add(1)
        return logs

    # On the host -------------------------------------------------------------
    @classmethod
    def attach(cls, model: keras.Model) -> StepLog:
        """The model's StepLog, installing one (and dropping a train function built without it) if needed."""
        capacity = max(int(getattr(model, "steps_per_execution", 1) or 1), 1)
        log = getattr(model, ATTRIBUTE, None)
        if log is not None and log.capacity >= capacity:
            return log
        if log is not None:  # recompiled with more steps per execution: a bigger buffer
            log.detach()
        return cls(model, capacity)._install()

    def skip_to_now(self) -> None:
        """Forget steps not taken yet (e.g. a fit run without the streaming callback)."""
        self.read_upto = int(self.steps.numpy())

    def take(self, logs: dict | None = None) -> np.ndarray:
        """The rows of the steps since the last call, oldest first: float64 (n, 4) running sums
        ``[loss total, loss count, accuracy total, accuracy count]`` after each step."""
        done = int(self.steps.numpy())
        new = done - self.read_upto
        if new <= 0:
            return np.empty((0, 2 * len(METRICS)))
        if new > self.capacity:
            raise StepLogError(f"{new} steps ran since the last read but the step log holds {self.capacity}")
        rows = self.rows.numpy().astype(np.float64)
        first = self.read_upto % self.capacity
        self.read_upto = done
        return np.roll(rows, -first, axis=0)[:new]


class JaxStepLog(_WrappedStep):
    """The metrics' running sums after each step, carried out of JAX's pure step in its logs."""

    KEY = "resnet_tui_step_sums"  # the logs entry; the streaming callback takes it out again
    capacity = 1

    def _train_step(self, state, data):
        import jax.numpy as jnp

        logs, state = self._original_train_step(state, data)
        metrics_variables = state[3]  # (trainable, non-trainable, optimizer, metrics) as Keras' JAX trainer returns
        position = {id(v): i for i, v in enumerate(self.model.metrics_variables)}
        metrics = _sum_metrics(self.model)  # Python, once per trace
        sums = [metrics_variables[position[id(getattr(metrics[name], part))]]
                for name in METRICS for part in ("total", "count")]
        return {**logs, self.KEY: jnp.stack([jnp.asarray(v, jnp.float32) for v in sums])}, state

    @classmethod
    def attach(cls, model: keras.Model) -> JaxStepLog:
        if int(getattr(model, "steps_per_execution", 1) or 1) > 1:
            raise StepLogError("STEPS_PER_EXECUTION above 1 is not supported on the JAX backend: set it to 1 "
                               "(JAX compiles the whole step already)")
        log = getattr(model, ATTRIBUTE, None)
        if isinstance(log, cls):
            return log
        if log is not None:
            log.detach()
        return cls(model)._install()

    def skip_to_now(self) -> None:
        pass  # nothing is kept between steps

    def take(self, logs: dict | None = None) -> np.ndarray:
        """This step's row (see :meth:`StepLog.take`), popped from its logs so no other callback
        (nor the epoch's logs, which Keras takes from the metrics only while the keys match) sees it."""
        sums = None if logs is None else logs.pop(self.KEY, None)
        if sums is None:
            return np.empty((0, 2 * len(METRICS)))
        if not getattr(sums, "is_fully_addressable", True):  # several processes: every one holds it whole
            sums = sums.addressable_data(0)
        return np.asarray(sums, np.float64)[None, :]
