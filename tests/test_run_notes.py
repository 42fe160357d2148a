"""A run's note, tags and hidden flag (notes.json), and deleting a run: the store and the CLI's
note, tag, hide, unhide, delete and runs --tag/--grep/--all, on real run folders (no training)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from test_cli import run_cli
from test_run_files import make_run

from resnet_tui.store.runs import RunBusyError, RunCorruptError, RunStore


def tree_state(root: Path) -> dict[str, str]:
    """Every file under root and its contents' hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def artifact(tmp_path):
    return tmp_path / "artifact"


@pytest.fixture
def store(artifact):
    return RunStore.under(artifact)


def cli(capsys, artifact, *argv):
    return run_cli(capsys, *argv, "--artifact", str(artifact))


def notes_of(run) -> dict:
    return json.loads((run.paths.log / "notes.json").read_text(encoding="utf-8"))


# -- the store --------------------------------------------------------------------------------

def test_notes_are_one_small_json_file_written_whole(store):
    run = make_run(store)
    assert run.read_notes().note == "" and not (run.paths.log / "notes.json").exists()
    run.update_notes(note="  lr 0.05 diverged  ", add=("lr", "base"))
    run.update_notes(remove=("base",), hidden=True)
    assert notes_of(run) == {"note": "lr 0.05 diverged", "tags": ["lr"], "hidden": True}
    assert [p.name for p in run.paths.log.iterdir() if p.name.startswith(".")] == []  # no partial file left
    info = run.info()
    assert (info.note, info.tags, info.hidden, info.status) == ("lr 0.05 diverged", ["lr"], True, "completed")
    with pytest.raises(ValueError, match="tag 'a b'"):
        run.update_notes(add=("a b",))


@pytest.mark.parametrize("content,problem", [
    ("{ not json", "notes.json: invalid JSON at line 1, column 3"),
    ('{"note": "x", "tags": "lr"}', 'notes.json: "tags" should be a list of strings, got "lr"'),
    ('{"hidden": "yes"}', 'notes.json: "hidden" should be true or false, got "yes"'),
])
def test_a_damaged_notes_file_is_a_problem_beside_the_status_never_a_corrupt_run(store, content, problem):
    run = make_run(store)
    (run.paths.log / "notes.json").write_text(content)
    (info,) = store.list_runs()
    assert info.status == "completed" and info.problem.startswith(problem) and info.damaged == []
    assert run.resume_problem() == f"run {run.id} already completed (epoch limit (1 epochs))"  # as without notes
    with pytest.raises(RunCorruptError, match=f"fix or remove {run.paths.log / 'notes.json'}"):
        run.update_notes(note="x")
    assert (run.paths.log / "notes.json").read_text() == content  # left alone


def test_a_running_runs_notes_change_but_it_is_neither_hidden_nor_deleted(store):
    run = store.create_run("m8_live")  # its lock is held by this process: running
    try:
        run.write_meta("m8_live")
        run.update_notes(note="watching it", add=("live",))
        assert run.info().status == "running" and run.info().tags == ["live"]
        for attempt in (lambda: run.update_notes(hidden=True), run.delete):
            with pytest.raises(RunBusyError, match=f"run {run.id} is running \\(process {os.getpid()}\\)"):
                attempt()
        assert run.paths.log.is_dir() and not run.info().hidden
    finally:
        run.release_lock()


def test_delete_removes_every_folder_of_the_run_under_every_root_and_nothing_else(tmp_path, monkeypatch):
    # Roots apart, and two keys sharing one folder (MODEL_PATH = ERROR_PATH).
    roots = {name: tmp_path / name for name in ("config", "log", "checkpoint", "model", "result")}
    store = RunStore({**roots, "error": tmp_path / "model"})
    monkeypatch.setattr("resnet_tui.store.runs.time.strftime", lambda _: "20250101-120000")
    doomed, kept = make_run(store, "m8_x"), make_run(store, "m8_x")  # the same second: one id the other's prefix
    assert (doomed.id, kept.id) == ("20250101-120000-m8_x", "20250101-120000-m8_x-2")
    for run in (doomed, kept):
        run.paths.model.mkdir(parents=True)
        run.paths.final_model.write_bytes(b"model")
        run.write_error("Traceback ...")
    (tmp_path / "log" / "notes-of-mine.txt").write_text("not a run")
    before = tree_state(tmp_path)
    removed = store.open_run(doomed.id).delete()
    assert sorted(removed) == sorted({doomed.paths.config, doomed.paths.log, doomed.paths.checkpoint,
                                      doomed.paths.model, doomed.paths.result})
    after = tree_state(tmp_path)
    assert after == {path: digest for path, digest in before.items() if f"/{doomed.id}/" not in f"/{path}"}
    assert [i.run_id for i in store.list_runs()] == [kept.id]


# -- the CLI --------------------------------------------------------------------------------

def test_note_tag_hide_unhide_from_the_command_line(store, artifact, capsys):
    run = make_run(store)
    code, out, _ = cli(capsys, artifact, "note", run.id[:15], "tried", "lr 0.05")
    assert code == 0 and f"note: {run.id}: tried lr 0.05" in out
    code, out, _ = cli(capsys, artifact, "note", run.id)
    assert code == 0 and out.strip() == "tried lr 0.05"

    # -NAME is a removal, not an option (-h included); --artifact may follow the tags.
    code, out, err = run_cli(capsys, "tag", run.id, "+base", "+h", "+lr:0.05", "-h", "-nope",
                             "--artifact", str(artifact))
    assert code == 0 and f"tags: {run.id}: #base #lr:0.05" in out, (out, err)
    assert f"warning: run {run.id} had no tag 'nope'" in err
    assert notes_of(run) == {"note": "tried lr 0.05", "tags": ["base", "lr:0.05"], "hidden": False}
    code, out, _ = cli(capsys, artifact, "tag", run.id)
    assert code == 0 and "#base #lr:0.05" in out
    for bad, message in (("base", "'base': give +NAME to add a tag and -NAME to remove one"),
                         ("+a,b", "tag 'a,b': use letters, digits"), ("+", "a tag cannot be empty")):
        code, _, err = cli(capsys, artifact, "tag", run.id, bad)
        assert code == 2 and message in err and "Traceback" not in err, err

    code, out, _ = cli(capsys, artifact, "show", run.id)
    assert code == 0 and "note: tried lr 0.05 tags: #base #lr:0.05 {" in out, out

    code, out, _ = cli(capsys, artifact, "hide", run.id)
    assert code == 0 and f"hidden: {run.id}" in out and notes_of(run)["hidden"] is True
    code, out, _ = cli(capsys, artifact, "hide", run.id)
    assert code == 0 and "already hidden" in out
    code, out, _ = cli(capsys, artifact, "unhide", run.id)
    assert code == 0 and f"shown: {run.id} is listed again" in out and notes_of(run)["hidden"] is False

    code, out, _ = cli(capsys, artifact, "note", run.id, "")  # an empty text clears it
    assert code == 0 and "cleared" in out and notes_of(run)["note"] == ""


def test_runs_leaves_hidden_runs_out_and_finds_runs_by_tag_and_text(store, artifact, capsys):
    base, light, hidden = make_run(store, "m8_base"), make_run(store, "m8_light"), make_run(store, "m8_old")
    base.update_notes(note="The baseline", add=("paper",))
    light.update_notes(note="quick look", add=("paper", "light"))
    hidden.update_notes(note="a baseline gone wrong", add=("paper",), hidden=True)

    def listed(*argv):
        code, out, _ = cli(capsys, artifact, "runs", *argv)
        assert code == 0
        return {r.id for r in (base, light, hidden) if r.id in out}, out

    shown, out = listed()
    assert shown == {base.id, light.id} and "1 hidden run (--all shows it)" in out
    assert "tags" in out and "#paper #light" in out  # a tags column, as some run has tags
    shown, out = listed("--all")
    assert shown == {base.id, light.id, hidden.id} and "1 hidden run, dimmed" in out
    assert listed("--tag", "light")[0] == {light.id}
    assert listed("--tag", "paper", "--tag", "#LIGHT")[0] == {light.id}  # every tag, case ignored
    shown, out = listed("--grep", "BASELINE")  # the note, case ignored
    assert shown == {base.id} and "1 hidden run (--all shows it)" in out  # the hidden one matches too
    assert listed("--grep", "baseline", "--all")[0] == {base.id, hidden.id}
    assert listed("--grep", "m8_light")[0] == {light.id}  # the config's name
    assert listed("--grep", light.id[-12:])[0] == {light.id}  # the id
    shown, out = listed("--tag", "nothing")
    assert shown == set() and "no runs match" in out


def test_runs_without_tags_keeps_its_columns(store, artifact, capsys):
    make_run(store)
    code, out, _ = cli(capsys, artifact, "runs")
    assert code == 0 and "tags" not in out and "hidden" not in out


def test_delete_lists_the_folders_asks_and_removes_only_them(store, artifact, capsys, monkeypatch):
    doomed, kept = make_run(store, "m8_x"), make_run(store, "kept_y")
    before = tree_state(artifact)
    code, out, err = cli(capsys, artifact, "delete", doomed.id[:-2])  # a prefix; stdin is no terminal here
    assert code == 2 and "give --yes" in err
    for folder in (doomed.paths.config, doomed.paths.log, doomed.paths.checkpoint, doomed.paths.result):
        assert str(folder) in out
    assert f"run {doomed.id}: 4 folders" in out and tree_state(artifact) == before

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, _ = cli(capsys, artifact, "delete", doomed.id)
    assert code == 1 and f"delete run {doomed.id}? [y/N]" in out and "nothing deleted" in out
    assert tree_state(artifact) == before

    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, _ = cli(capsys, artifact, "delete", doomed.id)
    assert code == 0 and f"deleted: run {doomed.id} (4 folders)" in out
    assert tree_state(artifact) == {p: d for p, d in before.items() if doomed.id not in p}
    assert [i.run_id for i in store.list_runs()] == [kept.id]

    code, out, _ = cli(capsys, artifact, "delete", kept.id, "--yes")
    assert code == 0 and store.list_runs() == []


def test_a_running_run_is_noted_but_not_hidden_or_deleted(store, artifact, capsys):
    run = store.create_run("m8_live")  # its lock is held by this process: running
    try:
        run.write_meta("m8_live")
        before = tree_state(artifact)
        for command in (("hide", run.id), ("delete", run.id, "--yes"), ("delete", run.id)):
            code, out, err = cli(capsys, artifact, *command)
            assert code == 2, (command, out, err)
            done = "hidden" if command[0] == "hide" else "deleted"
            assert (f"error: run {run.id} is running (process {os.getpid()}): it cannot be {done} while it runs; "
                    "stop it first") in err and "Traceback" not in err
        assert tree_state(artifact) == before
        code, _, _ = cli(capsys, artifact, "note", run.id, "still", "going")
        assert code == 0 and notes_of(run)["note"] == "still going"
        code, _, _ = cli(capsys, artifact, "tag", run.id, "+live")
        assert code == 0 and notes_of(run)["tags"] == ["live"] and run.info().status == "running"
    finally:
        run.release_lock()


@pytest.mark.parametrize("command", [("note", "x"), ("tag", "+x"), ("hide",), ("unhide",), ("delete", "--yes")])
def test_a_typod_id_gets_the_same_error_as_show(store, artifact, capsys, command):
    make_run(store)
    _, _, expected = cli(capsys, artifact, "show", "2099-nope")
    code, out, err = cli(capsys, artifact, command[0], "2099-nope", *command[1:])
    assert code == 2 and err == expected and "no run '2099-nope'" in err and out == ""


def test_a_damaged_notes_file_is_listed_with_its_problem_and_refused_to_change(store, artifact, capsys):
    run = make_run(store)
    (run.paths.log / "notes.json").write_text('{"tags": ["a", 1]}')
    code, out, _ = cli(capsys, artifact, "runs")
    assert code == 0 and 'completed (notes.json: "tags" should be a list of strings, got ["a", 1])' in out, out
    code, out, _ = cli(capsys, artifact, "show", run.id)
    assert code == 0 and "status: completed (notes.json:" in out
    code, _, err = cli(capsys, artifact, "tag", run.id, "+b")
    assert code == 2 and f"error: run {run.id}: notes.json:" in err and "fix or remove" in err
    assert "Traceback" not in err
