"""The machine in view (resnet_tui/machine/sampler.py): real samples of this process, per-epoch records,
a run's machine.csv."""

import os
import threading
import time

import psutil
import pytest

from resnet_tui.events import EpochEnd, GpuSample, MachineEpoch, MachineSample, RunStarted
from resnet_tui.machine.sampler import MachineMonitor, Sampler, epoch_record, sample_gpus
from resnet_tui.store.runs import RunStore

GB = 1_000_000_000


def has_nvidia_driver() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:
        return False


def sample(cpu=150.0, rss=GB, gpus=()) -> MachineSample:
    return MachineSample(time.time(), cpu, rss, 9 * GB, 24 * GB, gpus)


def gpu(index=0, utilization=90.0, used=10 * GB, total=80 * GB, temperature=60.0) -> GpuSample:
    return GpuSample(index, utilization, used, total, temperature)


def test_a_sample_of_this_process_is_real_and_has_no_gpu_without_a_driver():
    sampler = Sampler()
    sum(i * i for i in range(200_000))  # some CPU to measure
    taken = sampler.sample()
    assert taken is not None and sampler.pid == os.getpid()
    assert taken.rss > 0 and taken.cpu_percent >= 0
    assert taken.ram_total == psutil.virtual_memory().total and 0 < taken.ram_used <= taken.ram_total
    if not has_nvidia_driver():
        assert taken.gpus == () and sample_gpus() == ()  # no error, simply none
    else:
        assert all(g.memory_total > 0 and 0 <= g.utilization <= 100 for g in taken.gpus)


def test_a_process_that_is_gone_gives_no_sample():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    sampler = Sampler(child.pid)
    child.wait()
    assert sampler.sample() is None


def test_an_epoch_record_means_the_samples_and_aggregates_gpus():
    samples = [sample(100.0, 1 * GB, (gpu(0, 80.0, 10 * GB, temperature=60.0), gpu(1, 100.0, 20 * GB, temperature=70.0))),
               sample(200.0, 3 * GB, (gpu(0, 60.0, 12 * GB, temperature=65.0), gpu(1, 100.0, 22 * GB, temperature=66.0)))]
    record = epoch_record(4, samples)
    assert (record.epoch, record.samples, record.cpu_percent, record.rss, record.rss_peak) == (4, 2, 150.0, 2 * GB, 3 * GB)
    assert (record.ram_used, record.ram_total, record.gpus) == (9 * GB, 24 * GB, 2)
    assert record.gpu_utilization == pytest.approx(85.0)  # the mean over the GPUs and the samples
    assert record.gpu_memory_used == pytest.approx(32 * GB) and record.gpu_memory_total == 160 * GB  # summed
    assert record.gpu_temperature == 70.0  # the hottest
    none = epoch_record(1, [sample()])
    assert none.gpus == 0 and none.gpu_utilization is None and none.gpu_temperature is None


def test_machine_records_round_trip_through_machine_csv(tmp_path):
    run = RunStore.under(tmp_path).create_run("m8_machine")
    records = [epoch_record(1, [sample()]), epoch_record(2, [sample(gpus=(gpu(),))])]
    for record in records:
        run.append_machine(record)
    run.close()
    assert run.read_machine() == records
    assert (run.paths.log / "machine.csv").read_text().startswith("epoch,samples,cpu_percent,rss,rss_peak,")
    assert RunStore.under(tmp_path / "other").create_run("old").read_machine() == []  # a run older than it


def test_the_monitor_samples_in_its_thread_and_closes_each_epoch():
    events = []
    # Periods long enough that a busy machine's stall between the two EpochEnds below is
    # shorter than one (epoch 2 must get no sample of the thread's own).
    monitor = MachineMonitor(events.append, interval=0.2).start()
    monitor(RunStarted("r", "c", {}, "", 0, 1, 2, 2, 1, 1, 0, 0))
    time.sleep(0.7)
    monitor(EpochEnd(1, 1, 0.5, 0.5, None, None, 0.1, 0.3, 0.3))
    monitor(EpochEnd(2, 2, 0.5, 0.5, None, None, 0.1, 0.0, 0.3))  # shorter than a period: sampled then
    monitor.stop()
    monitor.stop()  # twice is fine
    after_stop = len(events)
    time.sleep(0.3)
    assert len(events) == after_stop  # nothing after stop()
    live = [e for e in events if isinstance(e, MachineSample)]
    epochs = [e for e in events if isinstance(e, MachineEpoch)]
    assert len(live) >= 2 and [e.epoch for e in epochs] == [1, 2]
    assert epochs[0].samples >= 2 and epochs[1].samples == 1
    order = [type(e).__name__ for e in events if not isinstance(e, MachineSample)]
    assert order == ["RunStarted", "EpochEnd", "MachineEpoch", "EpochEnd", "MachineEpoch"]
    assert "machine-sampler" not in {thread.name for thread in threading.enumerate()}  # its thread ended


# -- in a run ----------------------------------------------------------------------
def samplers_alive() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "machine-sampler"]


def test_a_run_records_one_machine_row_per_epoch_and_stops_sampling_with_it(tiny_config):
    from resnet_tui.events import RunFinished
    from resnet_tui.training.trainer import Trainer

    config = tiny_config(EPOCHS_COUNT=3)
    events = []
    result = Trainer(config, sink=events.append, machine_interval=0.05).run()
    assert result.status == "completed", result.error
    assert not samplers_alive()
    assert isinstance(events[-1], RunFinished)
    assert [e.epoch for e in events if isinstance(e, MachineEpoch)] == [1, 2, 3]
    assert any(isinstance(e, MachineSample) for e in events)
    run = RunStore.from_values(config.values).open_run(result.run_id)
    rows = run.read_machine()
    assert [r.epoch for r in rows] == [1, 2, 3] and all(r.samples >= 1 and r.rss_peak >= r.rss > 0 for r in rows)
    assert all(r.ram_total == psutil.virtual_memory().total for r in rows)


def test_a_failed_run_stops_its_sampler_too(tiny_config):
    import keras

    from resnet_tui.training.trainer import Trainer

    class Explode(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise RuntimeError("the device fell off the bus")

    result = Trainer(tiny_config(), extra_callbacks=[Explode()], machine_interval=0.05).run()
    assert result.status == "failed" and not samplers_alive()


def test_a_runs_machine_summary_weighs_epochs_by_samples_and_names_several_gpus():
    from resnet_tui.report.tables import machine_summary

    two = (gpu(0, 90.0, 10 * GB, temperature=60.0), gpu(1, 100.0, 20 * GB, temperature=71.0))
    rows = [epoch_record(1, [sample(100.0, 1 * GB, two)]),
            epoch_record(2, [sample(200.0, 2 * GB, two)] * 3)]
    assert machine_summary(rows) == "CPU 175% · RSS peak 2.00 GB · RAM 9.0/24.0 GB · 2 GPUs 95% 30.0/160.0 GB max 71°C"
    assert machine_summary([epoch_record(1, [sample()])]) == "CPU 150% · RSS peak 1.00 GB · RAM 9.0/24.0 GB"
