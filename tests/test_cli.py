"""The headless CLI: clear one-line errors, and the run commands on real run folders."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import tiny_values

from resnet_tui.cli import main
from resnet_tui.store.runs import RunStore


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
    assert re.search(r"machine +CPU \d+% · RSS peak \d+\.\d\d GB · RAM \d+\.\d/\d+\.\d GB", out), out
    run_id = RunStore.from_values(values).run_ids()[0]
    assert run_id.endswith("-m8_cli")

    artifact = str(tmp_path / "artifact")
    code, out, _ = run_cli(capsys, "runs", "--artifact", artifact)
    assert code == 0 and run_id[:15] in out and "completed" in out

    code, out, _ = run_cli(capsys, "show", run_id[:15], "--artifact", artifact)
    assert code == 0 and '"BATCH_SIZE": 64' in out and re.search(r"best val acc +\d+\.\d+% \(epoch 1\)", out)
    assert re.search(r"machine +CPU \d+% · RSS peak", out), out  # the epoch's means, from machine.csv
    # Where it fails: the confusion matrix of the 64 test images, a row per class, and the worst pairs.
    assert re.search(r"Test split, 64 images, accuracy \d+\.\d+% \(end of training\)", out), out
    assert "true \\ pred plane auto bird cat deer dog frog horse ship truck acc" in out, out
    assert re.search(r" truck( (\d+|·)){10} (\d+\.\d%|—) most confused: ", out), out

    # evaluate: the saved model on the test split rebuilt from the config gives the same matrix.
    store = RunStore.from_values(values)
    before = store.open_run(run_id).read_result()
    code, out, _ = run_cli(capsys, "evaluate", run_id[:15], "--artifact", artifact)
    assert code == 0, out
    after = store.open_run(run_id).read_result()
    assert after["confusion"]["source"] == "resnet-tui evaluate"
    assert after["confusion"]["matrix"] == before["confusion"]["matrix"]
    assert after["test_accuracy"] == pytest.approx(before["test_accuracy"], abs=1e-6)
    assert "Test split, 64 images" in out and "(resnet-tui evaluate)" in out

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
    good.write_meta("m8_half")
    good.release_lock()  # no result and no live writer: interrupted
    bad = store.create_run("m8_broken")
    bad.release_lock()
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
    assert parser.parse_args(["--read-only", "serve"]).read_only  # before the subcommand too
    serve = parser.parse_args(["serve"])
    assert serve.token is None and serve.allow_origin == [] and serve.max_sessions == 4


def test_a_dataset_that_fails_to_load_leaves_no_run_behind(tmp_path, capsys):
    values = tiny_values(tmp_path, **{"DATASET.source": "npz"})
    values["DATA_PATH"] = str(tmp_path / "typo.npz")
    path = tmp_path / "m8_typo.json"
    path.write_text(json.dumps(values))
    code, _, err = run_cli(capsys, "train", str(path))
    assert code == 2 and "typo.npz" in err and "does not exist" in err and "Traceback" not in err
    assert RunStore.from_values(values).run_ids() == []  # no failed run for a typo


def test_validate_refuses_what_training_would_refuse(tmp_path, capsys):
    good = tmp_path / "m8_ok.json"
    good.write_text("{}")
    code, _, err = run_cli(capsys, "validate", str(good), "--set", "SEED=4294967296")
    assert code == 2 and err.strip() == (f"error: {good}: SEED: got 4294967296, "
                                         f"expected an integer >= 0 and <= 4294967295")
    latin1 = tmp_path / "m8_x.json"
    latin1.write_bytes(b'{"_c":"caf\xe9"}')
    code, _, err = run_cli(capsys, "validate", str(latin1))
    assert code == 2 and err.strip() == (f"error: {latin1}: not UTF-8 text: byte 0xe9 at offset 10 "
                                         f"cannot be decoded; save it as UTF-8")
    twice = tmp_path / "m8_twice.json"
    twice.write_text('{\n  "SEED": 1,\n  "SEED": 2\n}\n')
    code, _, err = run_cli(capsys, "validate", str(twice))
    assert code == 2 and err.strip() == (f'error: {twice}: duplicate key "SEED" at lines 2 and 3; '
                                         f"JSON would keep only the last: remove one")


def test_user_text_is_printed_as_typed_never_as_markup(tmp_path, capsys):
    from tui_support import write_fake_run

    base = "configs/m8_base.json"
    code, _, err = run_cli(capsys, "validate", base, "--set", "OPTIMIZER.type=[/]")
    assert code == 2 and 'OPTIMIZER.type: got "[/]", expected one of "sgd", "adam"' in err
    code, _, err = run_cli(capsys, "validate", base, "--set", "OPTIMIZER.type=[red]adam")
    assert code == 2 and 'got "[red]adam"' in err
    bracketed = tmp_path / "m8_[test].json"
    bracketed.write_text("{}")
    code, out, _ = run_cli(capsys, "validate", str(bracketed))
    assert code == 0 and f"ok: {bracketed} is a valid config" in out

    # Run ids, config names, config values and errors from a run's files.
    store = RunStore.under(tmp_path / "artifact")
    values = tiny_values(tmp_path, DATA_PATH="data/[b]x")
    write_fake_run(store, "20250101-120000-m8_[test]", values, status="completed", iterations=30)
    write_fake_run(store, "20250102-120000-m8_[bad]", values, status="failed", iterations=7, started=1735819200.0,
                   error="ValueError: a [/] in [red]the error")
    artifact = str(tmp_path / "artifact")
    code, out, _ = run_cli(capsys, "runs", "--artifact", artifact)
    assert code == 0 and "│ 20250101-120000-m8_[test] │ completed │" in out and "│ m8_[test] │" in out, out
    code, out, _ = run_cli(capsys, "show", "20250101", "--artifact", artifact)
    assert code == 0 and "20250101-120000-m8_[test] status: completed" in out, out
    assert re.search(r"run +20250101-120000-m8_\[test\] .* config +m8_\[test\]", out), out
    assert '"DATA_PATH": "data/[b]x"' in out
    code, out, _ = run_cli(capsys, "show", "20250102", "--artifact", artifact)
    assert code == 0 and out.count("ValueError: a [/] in [red]the error") == 3, out  # status, table, error.log
    code, out, _ = run_cli(capsys, "watch", "20250101", "--artifact", artifact)
    assert code == 0 and "run 20250101-120000-m8_[test]:" in out, out


def test_runs_at_80_columns_keep_ids_whole_and_errors_on_one_line(tmp_path, capsys, monkeypatch):
    import io

    from tui_support import write_fake_run

    from resnet_tui import cli
    from resnet_tui.report.console import CliConsole

    store = RunStore.under(tmp_path / "artifact")
    values = tiny_values(tmp_path)
    write_fake_run(store, "20261126-120000-m8_demo", values, status="completed", iterations=300)
    long_error = "StorageError: cannot write to /very/long/path/of/the/artifact/folder (LOG_PATH): " + "x" * 300
    write_fake_run(store, "20261126-130000-m8_base_long_name", values, status="failed", iterations=7,
                   error=long_error)
    artifact = str(tmp_path / "artifact")

    screen = io.StringIO()
    monkeypatch.setattr(cli, "console", CliConsole(file=screen, width=80, force_terminal=True, color_system=None))
    assert main(["runs", "--artifact", artifact]) == 0
    lines = screen.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) == 7  # title, 3 border/header lines, 2 rows, bottom border: no error wrapped down
    text = screen.getvalue()
    assert "20261126-120000-m8_demo" in text and "20261126-130000-m8_base_long_name" in text
    assert "best val" in text and "failed (Storage" in text and "date" not in text

    # Piped, every column and every id whole.
    monkeypatch.undo()
    code, out, _ = run_cli(capsys, "runs", "--artifact", artifact)
    assert code == 0 and "20261126-130000-m8_base_long_name" in out and "date" in out and "config" in out
    assert "x" * 80 not in out  # the error as a one-line summary; show has the rest


def test_progress_and_epoch_lines_fit_80_columns_by_dropping_fields(monkeypatch):
    import io

    from resnet_tui import cli
    from resnet_tui.events import EpochEnd, IterationEnd
    from resnet_tui.report.console import CliConsole

    for width in (80, 160):
        console = CliConsole(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
        monkeypatch.setattr(cli, "console", console)
        progress = cli.make_progress()
        stats = cli.progress_stats(IterationEnd(12345, 32, 1.0, 0.5, 0.1, 421.0, 1.2345, 0.5678, 60.0), width)
        progress.add_task("train", total=64000, completed=12345, stats=stats)
        console.print(progress.get_renderable())
        line = console.file.getvalue().splitlines()[0].rstrip()
        assert len(line) <= width and "12345/64000" in line and "ETA" in line and "…" not in line, line
        assert "img/s" in line and "lr 0.1" in line  # README lists them: the narrow line drops the bar instead
        assert ("━" in line) == (width == 160)
        event = EpochEnd(epoch=164, iteration=64000, loss=0.1234, accuracy=0.9876, val_loss=0.3456,
                         val_accuracy=0.9123, lr=0.001, duration=12.3, elapsed=5000.0)
        assert len(cli.epoch_line(event, width)) <= width and "val acc 91.23%" in cli.epoch_line(event, width)


@pytest.mark.parametrize("before", [True, False])
def test_artifact_works_before_or_after_the_subcommand(tmp_path, capsys, before):
    parser_args = ["--artifact", str(tmp_path / "elsewhere")]
    for command in (["runs"], ["show", "x"], ["resume", "x"], ["watch", "x"], ["serve"], ["train", "c.json"]):
        from resnet_tui.cli import build_parser

        argv = parser_args + command if before else command + parser_args
        assert build_parser().parse_args(argv).artifact == str(tmp_path / "elsewhere"), argv

    values = tiny_values(tmp_path, EPOCHS_COUNT=1)  # its own paths point under tmp_path/artifact
    path = tmp_path / "m8_where.json"
    path.write_text(json.dumps(values))
    artifact = str(tmp_path / "elsewhere")
    argv = ["--artifact", artifact, "train", str(path)] if before else ["train", str(path), "--artifact", artifact]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0, out
    (run_id,) = RunStore.under(artifact).run_ids()
    assert not (tmp_path / "artifact").exists()  # nothing went to the config's own folders
    assert f"saved in {artifact}/log/{run_id}" in out and f"final model {artifact}/model/{run_id}/final.keras" in out



def test_an_ambiguous_prefix_lists_the_runs_it_matches(tmp_path, capsys):
    from tui_support import write_fake_run

    store = RunStore.under(tmp_path / "artifact")
    values = tiny_values(tmp_path)
    ids = [f"20261126-1{n:02d}000-m8_demo" for n in range(7)]
    for run_id in ids:
        write_fake_run(store, run_id, values, status="completed", iterations=30)
    code, _, err = run_cli(capsys, "show", "2026", "--artifact", str(tmp_path / "artifact"))
    assert code == 2 and "run id '2026' is ambiguous: 7 runs start with it:" in err
    assert "and 2 more; give more of the id" in err


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
            f"(resume it with `resnet-tui resume {run.id} --artifact {artifact}`)") in out  # works as pasted


def test_evaluate_refuses_a_run_without_a_final_model_and_show_points_to_it(tmp_path, capsys):
    from tui_support import write_fake_run

    values = tiny_values(tmp_path)
    store = RunStore.from_values(values)
    write_fake_run(store, "20250102-090000-m8_light", values, status="failed", iterations=7, error="ValueError: x")
    code, out, err = run_cli(capsys, "evaluate", "20250102", "--artifact", str(tmp_path / "artifact"))
    assert code == 2 and not out
    assert err.strip().startswith("error: run 20250102-090000-m8_light (failed) has no final model at ")
    assert "only a run that completes or is stopped saves one" in err and "Traceback" not in err
    assert "confusion" not in store.open_run("20250102").read_result()

    # A run a live process writes is not evaluated under it.
    import os
    import socket

    write_fake_run(store, "20250103-080000-m8_demo", values, status=None, iterations=3)
    (store.roots["log"] / "20250103-080000-m8_demo" / "lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    code, out, err = run_cli(capsys, "evaluate", "20250103-08", "--artifact", str(tmp_path / "artifact"))
    assert code == 2 and "error: run 20250103-080000-m8_demo is running: evaluate it once it has ended" in err

    # A stopped run keeps its model but was not evaluated: show says how to get its matrix.
    write_fake_run(store, "20250103-090000-m8_demo", values, status="stopped", iterations=7)
    (store.roots["model"] / "20250103-090000-m8_demo").mkdir(parents=True)
    (store.roots["model"] / "20250103-090000-m8_demo" / "final.keras").write_bytes(b"")
    code, out, _ = run_cli(capsys, "show", "20250103-09", "--artifact", str(tmp_path / "artifact"))
    assert code == 0 and "no confusion matrix yet: `resnet-tui evaluate 20250103-090000-m8_demo`" in out


def test_show_without_or_with_a_damaged_machine_csv_has_no_machine_row(tmp_path, capsys):
    from tui_support import write_fake_run

    store = RunStore.under(tmp_path / "artifact")
    values = tiny_values(tmp_path)
    write_fake_run(store, "20250101-120000-m8_old", values, status="completed", iterations=30)
    write_fake_run(store, "20250102-120000-m8_bad", values, status="completed", iterations=30, started=1735819200.0)
    (store.open_run("20250102-120000-m8_bad").paths.log / "machine.csv").write_bytes(b"epoch\n\xff\n")
    for run_id in ("20250101", "20250102"):
        code, out, _ = run_cli(capsys, "show", run_id, "--artifact", str(tmp_path / "artifact"))
        assert code == 0 and "status completed" in out and " machine " not in out, out


def cli_process(*argv: str, env: dict) -> subprocess.CompletedProcess:
    """``resnet-tui ARGV`` as a script or CI job runs it: output piped, in ``env`` (colour codes dropped)."""
    done = subprocess.run([sys.executable, "-m", "resnet_tui.cli", *argv], env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=120)
    plain = lambda text: re.sub(r"\x1b\[[0-9;]*m", "", text)
    return subprocess.CompletedProcess(done.args, done.returncode, plain(done.stdout), plain(done.stderr))


@pytest.mark.parametrize("env", [{"COLUMNS": "40"}, {"COLUMNS": "80"}, {"FORCE_COLOR": "1"}],
                         ids=["COLUMNS=40", "COLUMNS=80", "FORCE_COLOR=1"])
def test_piped_output_is_never_wrapped_whatever_the_width(tmp_path, env):
    """`resnet-tui export ... | tee log`, a CI job, nohup: each message is one line however long
    its path, and tables keep their natural width, whatever $COLUMNS says (and FORCE_COLOR
    asks for colours, not for a width)."""
    from tui_support import write_fake_run

    deep = tmp_path.joinpath(*["a-folder-with-a-rather-long-name"] * 6)
    deep.mkdir(parents=True)
    config = deep / "m8_ok.json"
    config.write_text(json.dumps({"BATCH_SIZE": 64}))
    done = cli_process("validate", str(config), env=env)
    assert done.returncode == 0 and done.stdout == f"ok: {config} is a valid config for model m8\n", done.stdout

    bad = deep / "m8_bad.json"
    bad.write_text('{"BATCH_SIZE": 64,,}')
    done = cli_process("validate", str(bad), env=env)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert str(bad) in done.stderr and "invalid JSON at line 1, column 19" in done.stderr

    store = RunStore.under(deep / "artifact")
    run_id = "20261126-120000-m8_demo_with_a_long_config_name"
    write_fake_run(store, run_id, tiny_values(deep), status="completed", iterations=25)
    merged = deep / "merged.csv"
    done = cli_process("export", run_id, "--csv", str(merged), "--artifact", str(deep / "artifact"), env=env)
    assert done.returncode == 0 and done.stdout == f"csv: {merged}: 25 iterations joined with their epoch's values\n"

    done = cli_process("runs", "--artifact", str(deep / "artifact"), env=env)
    row = next(line for line in done.stdout.splitlines() if run_id in line)
    assert "completed" in row and "m8_demo_with_a_long_config_name" in row.replace(run_id, "") and "…" not in row

    done = cli_process("show", run_id, "--artifact", str(deep / "artifact"), env=env)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and any(re.fullmatch(r"\s*status\s+completed\s*", line) for line in lines), lines
    assert f'"LOG_PATH": "{deep / "artifact" / "log"}"' in done.stdout  # a long value stays on its key's line


def test_on_a_terminal_tables_fit_and_messages_are_left_to_the_terminal_to_fold():
    """On a terminal a message is one logical line (the terminal folds it at its edge, so a path
    copied from the screen is whole) while tables are fitted to the width."""
    import io

    from rich.table import Table

    from resnet_tui.report.console import CliConsole

    screen = io.StringIO()
    console = CliConsole(file=screen, width=40, force_terminal=True, color_system=None)
    path = "/a/path/" + "that-goes-on-and-on/" * 5 + "merged.csv"
    console.print(f"csv: {path}: 25 iterations joined with their epoch's values")
    assert screen.getvalue() == f"csv: {path}: 25 iterations joined with their epoch's values\n"

    screen.truncate(0), screen.seek(0)
    table = Table("key", "value")
    table.add_row("LOG_PATH", path)
    console.print(table)
    assert max(len(line) for line in screen.getvalue().splitlines()) <= 40


def test_the_resume_hint_works_as_pasted_when_the_run_lives_elsewhere(tmp_path, capsys):
    """A run under --artifact DIR: the hint named `resnet-tui resume ID` alone, which, pasted,
    looked under artifact/log and failed (issue 22, item 8)."""
    import shlex

    from tui_support import write_fake_run

    elsewhere = tmp_path / "elsewhere folder"
    store = RunStore.under(elsewhere)
    write_fake_run(store, "20250101-120000-m8_demo", tiny_values(tmp_path), status="stopped", iterations=12)
    code, out, _ = run_cli(capsys, "show", "20250101", "--artifact", str(elsewhere))
    hint = re.search(r"resume (resnet-tui resume .*?) \(r on", out)
    assert code == 0 and hint, out
    argv = shlex.split(hint.group(1))
    assert argv == ["resnet-tui", "resume", "20250101-120000-m8_demo", "--artifact", str(elsewhere)]
    code, out, _ = run_cli(capsys, "show", *argv[2:])  # the same arguments find the same run
    assert code == 0 and "20250101-120000-m8_demo" in out


def test_the_progress_line_shows_the_epochs_running_means_labelled(monkeypatch):
    """Issue 22, item 7: the line showed iteration 17's own loss (1.956318) beside the epoch's running
    accuracy (19.7%), unlabelled; at 80 columns it had no lr or img/s. Now both are the epoch's means,
    labelled, with lr and img/s at any width; a worst case still fits 80 columns whole."""
    import io

    from resnet_tui import cli
    from resnet_tui.events import IterationEnd, RunStarted
    from resnet_tui.report.console import CliConsole

    started = RunStarted("r", "m8_base", {}, "", 274042, 390, 64000, 164, 128, 45000, 5000, 10000)
    batch_17 = IterationEnd(17, 1, loss=1.356318, accuracy=0.21875, lr=0.1, images_per_sec=421.0,
                            epoch_loss=1.956318, epoch_accuracy=0.1966912, elapsed=5.0)
    worst = IterationEnd(12345, 164, loss=0.2, accuracy=1.0, lr=0.000316, images_per_sec=21345.0,
                         epoch_loss=10.123, epoch_accuracy=0.999, elapsed=5.0)
    for width, expected in ((80, "ep 1 mean loss 1.956 acc 19.7% lr 0.1 421 img/s"),
                            (160, "epoch 1  mean loss 1.9563  mean acc 19.67%  lr 0.1  421 img/s")):
        lines = []
        for event in (batch_17, worst):
            console = CliConsole(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
            monkeypatch.setattr(cli, "console", console)
            progress = cli.make_progress()
            sink = cli.ProgressSink(progress)
            sink(started)
            sink(event)
            console.file.truncate(0), console.file.seek(0)
            console.print(progress.get_renderable())
            lines.append(console.file.getvalue().splitlines()[0].rstrip())
        assert expected in lines[0] and "21.9%" not in lines[0] and "1.356" not in lines[0], lines[0]
        assert len(lines[1]) <= width and "12345/64000" in lines[1] and "…" not in lines[1], lines[1]
        assert "lr " in lines[1] and " img/s" in lines[1] and "ETA" in lines[1], lines[1]


def test_summary_on_a_narrow_terminal_fits_it_without_cutting_a_name(monkeypatch):
    """Issue 22, item 12: at 80 columns `summary` printed Keras' 110-column table, which the terminal
    folded into broken lines. Now it is drawn at the terminal's width, wrapping cells only at spaces;
    piped, it keeps Keras' width (below)."""
    import io

    from resnet_tui import cli
    from resnet_tui.report.console import CliConsole

    screen = io.StringIO()
    monkeypatch.setattr(cli, "console", CliConsole(file=screen, width=80, force_terminal=True, color_system=None))
    assert main(["summary", "configs/m8_base.json"]) == 0
    lines = screen.getvalue().splitlines()
    table = [line for line in lines if line.startswith(tuple("┏┃┡│├└"))]
    assert table and {len(line) for line in table} == {80}, {len(line) for line in table}
    cells = [cell.strip() for line in table for cell in line[1:-1].split("│")]
    for name in ("stage2_block1_proj_conv", "stage3_block3_out", "stage2_block1_1_relu[0][0]"):
        assert any(cell.startswith(name) for cell in cells), name  # whole, on one line
    assert "parameters: 274,042" in lines[-1]


def test_summary_piped_is_keras_width_and_tensorflow_says_nothing():
    """Piped, the table keeps Keras' 110 columns whatever $COLUMNS says; TensorFlow's C++ lines
    while the model is built (``failed call to cuInit`` without a GPU) no longer reach stderr."""
    done = cli_process("summary", "configs/m8_base.json", env={"COLUMNS": "80", "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 0 and "parameters: 274,042" in done.stdout
    assert {len(line) for line in done.stdout.splitlines() if line.startswith(tuple("┏┃┡│├└"))} == {110}
    assert "cuInit" not in done.stderr and "E0000" not in done.stderr, done.stderr


def test_runs_at_80_columns_keep_every_status_whole(tmp_path, monkeypatch):
    """Issue 22, item 12: at 80 columns, beside a long run id, the status read `interrupt…`: it gave way
    down to len("completed"). Now a column is dropped first and every status is whole; piped, the table
    keeps every column at its natural width, no line padded, whatever $COLUMNS says."""
    import io

    from tui_support import write_fake_run

    from resnet_tui import cli
    from resnet_tui.report.console import CliConsole

    store = RunStore.under(tmp_path / "artifact")
    values = tiny_values(tmp_path)
    write_fake_run(store, "20261126-120000-m8_base_with_a_longer_name", values, status="completed", iterations=30)
    write_fake_run(store, "20261126-130000-m8_half", values, status=None, iterations=7)
    artifact = str(tmp_path / "artifact")
    screen = io.StringIO()
    monkeypatch.setattr(cli, "console", CliConsole(file=screen, width=80, force_terminal=True, color_system=None))
    assert main(["runs", "--artifact", artifact]) == 0
    lines = screen.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if "20261126-130000-m8_half" in line)
    assert "│ interrupted" in row and "best val" in screen.getvalue(), screen.getvalue()

    done = cli_process("runs", "--artifact", artifact, env={"COLUMNS": "80"})
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and all(line == line.rstrip() for line in lines)
    assert len({len(line) for line in lines[1:]}) == 1 and "date" in lines[2]  # every column, natural width
    assert "interrupted (its process ended without writing a result)" in done.stdout
