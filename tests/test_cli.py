"""The headless CLI: clear one-line errors, and the run commands on real run folders."""

import json
import re

import pytest
from conftest import tiny_values

from resnet_tui.cli import main
from resnet_tui.runs import RunStore


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables at a width where no cell is truncated."""
    from rich.console import Console

    import resnet_tui.cli as cli

    monkeypatch.setattr(cli, "console", Console(width=250))
    monkeypatch.setattr(cli, "err_console", Console(width=250, stderr=True))


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, re.sub(r"\s+", " ", out), re.sub(r"\s+", " ", err)


def test_validate_ok_and_bad(tmp_path, capsys):
    good = tmp_path / "m8_ok.json"
    good.write_text(json.dumps({"BATCH_SIZE": 64}))
    code, out, _ = run_cli(capsys, "validate", str(good))
    assert code == 0 and "valid config for model m8" in out

    bad = tmp_path / "m8_bad.json"
    bad.write_text('{"BATCH_SIZE": 64,,}')
    code, _, err = run_cli(capsys, "validate", str(bad))
    assert code == 2 and "invalid JSON at line 1, column 19" in err and "Traceback" not in err

    code, _, err = run_cli(capsys, "validate", str(good), "--set", "OPTIMIZER.learning_rate=-1")
    assert code == 2 and "OPTIMIZER.learning_rate: got -1, expected a number > 0" in err


def test_train_runs_show_and_missing_run(tmp_path, capsys, monkeypatch):
    values = tiny_values(tmp_path, EPOCHS_COUNT=1)
    path = tmp_path / "m8_cli.json"
    path.write_text(json.dumps(values))
    code, out, _ = run_cli(capsys, "train", str(path), "--set", "BATCH_SIZE=64")
    assert code == 0, out
    assert re.search(r"status +completed\s+why it ended +epoch limit \(1 epochs\)", out), out
    assert re.search(r"test acc +\d+\.\d+%", out), out
    run_id = RunStore.from_values(values).run_ids()[0]
    assert run_id.endswith("-m8_cli")

    artifact = str(tmp_path / "artifact")
    code, out, _ = run_cli(capsys, "runs", "--artifact", artifact)
    assert code == 0 and run_id[:15] in out and "completed" in out

    code, out, _ = run_cli(capsys, "show", run_id[:15], "--artifact", artifact)
    assert code == 0 and '"BATCH_SIZE": 64' in out and re.search(r"best val acc +\d+\.\d+% \(epoch 1\)", out)

    code, _, err = run_cli(capsys, "show", "no-such-run", "--artifact", artifact)
    assert code == 2 and "no run 'no-such-run'" in err and "Traceback" not in err

    code, _, err = run_cli(capsys, "resume", run_id, "--artifact", artifact)
    assert code == 2 and "already completed" in err

    # watch replays a finished run from its files and ends with its result.
    code, out, _ = run_cli(capsys, "watch", run_id, "--artifact", artifact)
    assert code == 0 and "epoch 1 iteration" in out and re.search(r"status +completed", out)


def test_summary_prints_parameter_count(capsys):
    code, out, _ = run_cli(capsys, "summary", "configs/m8_base.json")
    assert code == 0 and "parameters: 274,042" in out and "stage2_block1_proj_conv" in out


def test_runs_lists_corrupt_and_interrupted_runs_without_failing(tmp_path, capsys):
    store = RunStore.under(tmp_path / "artifact")
    good = store.create_run("m8_half")
    good.write_meta("m8_half")  # no result, owner (this pid) is not holding the lock: interrupted
    bad = store.create_run("m8_broken")
    (bad.paths.log / "run.json").write_text("{ this is not json")
    bad.paths.result.mkdir(parents=True)
    (bad.paths.result / "result.json").write_text('{"status": "compl')
    infos = {i.run_id: i for i in store.list_runs()}
    assert infos[good.id].status == "interrupted"
    assert infos[bad.id].status == "corrupt"
    assert infos[bad.id].problem.startswith("run.json: invalid JSON at line 1, column 3: Expecting property name")
    code, out, _ = run_cli(capsys, "runs", "--artifact", str(tmp_path / "artifact"))
    assert code == 0 and "interrupted" in out and "corrupt" in out


def test_read_only_flags_reach_the_dashboard_and_serve():
    from resnet_tui.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["--artifact", "x", "--read-only"]).read_only
    assert not parser.parse_args([]).read_only
    assert parser.parse_args(["serve", "--read-only"]).read_only
    serve = parser.parse_args(["serve"])
    assert serve.token is None and serve.allow_origin == [] and serve.max_sessions == 4


@pytest.mark.parametrize("name,content,problem", [
    ("result.json", '{"status": "completed", "started": "yesterday"}',
     'result.json: "started" should be a number, got "yesterday"'),
    ("result.json", '{"status": "failed", "error": 5}', 'result.json: "error" should be a string or null, got 5'),
    ("result.json", "[1, 2]", "result.json: should be a JSON object, got [1, 2]"),
    ("state.json", '{"epoch": "2"}', 'state.json: "epoch" should be an integer, got "2"'),
])
def test_a_damaged_run_file_is_listed_corrupt_and_refused_by_show_watch_resume(tmp_path, capsys, name, content,
                                                                               problem):
    from test_run_files import file_of, make_run

    artifact = tmp_path / "artifact"
    run = make_run(RunStore.under(artifact))
    file_of(run, name).write_text(content)
    code, out, _ = run_cli(capsys, "runs", "--artifact", str(artifact))
    assert code == 0 and f"corrupt ({problem}" in out, out
    for command in ("show", "watch", "resume"):
        code, out, err = run_cli(capsys, command, run.id, "--artifact", str(artifact))
        assert code == 2 and "Traceback" not in err + out, (command, out, err)
        assert err.startswith(f"error: run {run.id} is corrupt: {problem}"), (command, err)


def test_watch_ends_when_the_writer_died_without_a_result(tmp_path, capsys):
    from test_run_files import make_run

    artifact = tmp_path / "artifact"
    run = make_run(RunStore.under(artifact), result=None)
    code, out, err = run_cli(capsys, "watch", run.id, "--artifact", str(artifact), "--interval", "0.05")
    assert code == 1, (out, err)
    assert (f"run {run.id} is interrupted: its process ended without writing a result "
            f"(resume it with `resnet-tui resume {run.id}`)") in out
