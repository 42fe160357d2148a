"""Dashboard: the machine in view: the Training screen's live line (CPU, memory, GPUs) and the
per-epoch means in Runs."""

from __future__ import annotations

import json
import re

from test_monitor import GB, gpu, sample
from tui_support import make_app, open_runs, select_config, text_of, wait_for

from resnet_tui import backend
from resnet_tui.machine.sampler import epoch_record
from resnet_tui.tui.screens.train_screen import TrainScreen
from resnet_tui.tui.widgets.machine_panel import machine_line
from resnet_tui.tui.widgets.runs_table import RunsTable

ONE_GPU = sample(187.4, 1_210_000_000, (gpu(0, 97.0, 10_200_000_000, 80 * GB, 64.0),))
FOUR_GPUS = sample(187.4, 1_210_000_000, tuple(gpu(i, 90.0 + i, 10_200_000_000, 80 * GB, 60.0 + i) for i in range(4)))


def test_the_line_in_full_when_wide():
    assert machine_line(ONE_GPU, 160) == "CPU 187% · RSS 1.21 GB · RAM 9.0/24.0 GB · GPU0 97% 10.2/80.0 GB 64°C"
    assert machine_line(sample(), 160) == "CPU 150% · RSS 1.00 GB · RAM 9.0/24.0 GB"  # no GPU: none shown
    assert machine_line(FOUR_GPUS, 200).count("/80.0 GB") == 4


def test_the_line_fits_80_columns_keeping_every_gpus_utilization():
    assert machine_line(ONE_GPU, 78) == "CPU 187% · RSS 1.21 GB · RAM 9.0/24.0 GB · GPU0 97% 10.2/80.0 GB 64°C"
    assert machine_line(ONE_GPU, 60) == "CPU 187% · RSS 1.2G · RAM 9.0/24.0G · GPU0 97% 10.2/80G 64°C"
    four = machine_line(FOUR_GPUS, 78)
    assert four == "CPU 187% · GPU0 90% 10.2G · GPU1 91% 10.2G · GPU2 92% 10.2G · GPU3 93% 10.2G"
    assert machine_line(FOUR_GPUS, 40) == "CPU 187% · GPU 90% 91% 92% 93%"
    for line in (machine_line(ONE_GPU, 80), four):
        assert len(line) <= 78


async def test_a_run_shows_its_machine_live_and_its_means_in_runs(tui_env):
    """A real tiny run: the Training screen's line while it trains and after it is stopped; Runs'
    Result tab after. (Long enough to be sampled while it trains: m1's two epochs may end first.)"""
    # 5000 epochs: JAX's compiled step ran 60 tiny epochs before a key press could (test_tui_live.py),
    # and on a loaded CI machine 200 could end before F7 did.
    (tui_env.configs / "tiny_long.json").write_text(json.dumps({**tui_env.values, "EPOCHS_COUNT": 5000}),
                                                     encoding="utf-8")
    app = make_app(tui_env)
    async with app.run_test(size=(80, 30)) as pilot:
        await select_config(pilot, "tiny_long")
        await pilot.press("f5")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        panel = screen.query_one("#machine")
        await wait_for(pilot, lambda: app.session.machine is not None, 180, "a machine sample")
        await pilot.pause()
        line = text_of(panel)
        label = {"tensorflow": "TensorFlow", "jax": "JAX"}[backend.current()]
        assert line.startswith(f"{label} · CPU ") and "RSS" in line and "RAM" in line, line  # the backend leads
        assert "GPU" not in line or app.session.machine.gpus  # GPUs only with a driver
        store = tui_env.store
        await wait_for(pilot, lambda: len(store.open_run(store.run_ids()[0]).read_epochs()) >= 2, 180, "two epochs")
        await pilot.press("f7")
        await wait_for(pilot, lambda: not app.session.active, 180, "the run to stop")
        await pilot.pause()
        assert text_of(panel).startswith("run means: CPU ")  # no stale live CPU % once it has ended

        await pilot.press("f4")
        runs = app.screen
        listed = runs.query_one(RunsTable)
        await wait_for(pilot, lambda: runs.shown and runs.shown[0].info.status.finished, 60,
                       lambda: f"the run's details (listed: {[(i.run_id, i.status) for i in listed.infos]}, "
                               f"shown: {[(d.info.status, d.problems) for d in runs.shown]})")
        detail = runs.shown[0]
        assert detail.info.status == "stopped", (detail.info, detail.error, text_of(runs.query_one("#run-error")))
        result = text_of(runs.query_one("#run-result"))
        assert "machine" in result and "RSS peak" in result, result
        assert len(runs.shown[0].machine) == runs.shown[0].info.epochs >= 2  # a row per whole epoch


async def test_runs_show_the_machine_row_and_survive_a_damaged_machine_csv(tui_fake_runs):
    store = tui_fake_runs.store
    run = store.open_run("20250104-100000-m8_lr05")
    for epoch in (1, 2, 3, 4):
        run.append_machine(epoch_record(epoch, [sample(180.0, int(1.2 * GB), (gpu(0, 95.0, int(10.1 * GB)),))]))
    run.close()
    damaged = store.open_run("20250101-120000-m8_demo").paths.log / "machine.csv"
    damaged.write_bytes(b"ep\xff\xfeoch,samples\n1,1\n")  # a header that is not UTF-8 (a damaged row is skipped)
    app = make_app(tui_fake_runs)
    async with app.run_test(size=(160, 50)) as pilot:
        screen, table = await open_runs(pilot)
        result = text_of(screen.query_one("#run-result"))
        assert re.search(r"machine +CPU 180% · RSS peak 1\.20 GB · RAM 9\.0/24\.0 GB · GPU 95% 10\.1/80\.0 GB max 60°C",
                         result), result

        table.move_cursor(row=[row.value for row in table.rows].index("20250101-120000-m8_demo"))
        await wait_for(pilot, lambda: screen.shown[0].info.run_id == "20250101-120000-m8_demo", 10, "the run")
        result = text_of(screen.query_one("#run-result"))
        assert "completed" in result and "CPU " not in result  # no machine row, the rest as ever
        assert "machine.csv: its header is damaged" in result  # said where problems are said
        assert screen.query_one(RunsTable).row_count == 4

        table.move_cursor(row=[row.value for row in table.rows].index("20250103-080000-m8_demo"))
        await wait_for(pilot, lambda: screen.shown[0].info.run_id == "20250103-080000-m8_demo", 10, "the old run")
        assert "machine" not in text_of(screen.query_one("#run-result"))  # a run without machine.csv
