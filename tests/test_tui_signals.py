"""The dashboard ended by a signal (a dropped SSH session's SIGHUP, a service manager's SIGTERM)
stops its run as the CLI does: the step under way finishes, the run is saved and recorded as
stopped, then the process exits with 128 + the signal (issue 22, item 3). A real process: the
signal must reach the app's own event loop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from support import REPO, wait_until
from tui_support import tiny_values, write_configs

from resnet_tui.store.runs import RunStore

CHILD = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from tui_support import select_config
from resnet_tui.store.runs import RunStore
from resnet_tui.tui.app import ResnetTuiApp

app = ResnetTuiApp(Path({configs!r}), store=RunStore.under({artifact!r}))

async def start(pilot):
    await select_config(pilot, "tiny")
    await pilot.press("f5")

app.run(headless=True, size=(120, 40), auto_pilot=start)
print("exit", app.return_code, flush=True)
sys.exit(app.return_code or 0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_the_dashboards_run_saved_then_exits(tmp_path, signum):
    values = tiny_values(tmp_path, EPOCHS_COUNT=200)
    configs = write_configs(tmp_path / "configs", values)
    artifact = tmp_path / "artifact"
    code = CHILD.format(tests=str(REPO / "tests"), configs=str(configs), artifact=str(artifact))
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    store = RunStore.under(artifact)
    try:
        run = wait_until(lambda: store.run_ids() and store.open_run(store.run_ids()[0]), 180, child, "a run")
        wait_until(lambda: len(run.read_iterations()) >= 3, 180, child, "a few iterations")
        child.send_signal(signum)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 128 + signum, err[-3000:]
    result = json.loads(run.paths.result_file.read_text())
    assert result["status"] == "stopped" and result["stop_reason"].startswith("stopped by user"), result
    assert run.paths.final_model.is_file() and run.info().status == "stopped"
