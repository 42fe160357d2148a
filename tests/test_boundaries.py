"""The layering, checked from the source: each package imports only from the layers below it
(or its own), training knows nothing of Textual, the dashboard nothing of Keras at import time,
and the first screen paints before TensorFlow loads."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_tui"

# Lowest first. A module may import from its own layer and the layers below, never above.
LAYERS = (
    ("events", "registry", "backend", "health", "alerts"),  # the trainer-watcher contract, the models, the backend, run health
    ("machine",),  # the CPU, the sampler of what training uses, fd 2
    ("store",),  # what a run keeps on disk, and the one way files are written
    ("config",),  # a training config: schema, validation, files
    ("data", "models"),  # datasets and input pipelines; model builders and summaries
    ("training",),  # compile, fit, callbacks, checkpoints, evaluation
    ("sweep",),  # Optuna studies whose trials are runs
    ("report",),  # a run as text: tables, confusion, exports, formats
    ("tui", "cli", "serve"),  # the two front ends, and the dashboard in a browser
)
LAYER_OF = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def imports(path: Path, module_level_only: bool) -> set[str]:
    """Modules ``path`` imports (only its module-level statements if asked), lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; this project imports by full name"
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def part(module: str) -> str | None:
    """The layer part a module belongs to: ``resnet_tui.store.runs`` -> ``store``."""
    names = module.split(".")
    return names[1] if names[0] == "resnet_tui" and len(names) > 1 and names[1] in LAYER_OF else None


def source_files():
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__init__.py" or p.parent != PACKAGE]


def upward_imports() -> list[str]:
    bad = []
    for path in source_files():
        here = part("resnet_tui." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        assert here is not None, f"{path} is in no layer: add it to LAYERS"
        for module in sorted(imports(path, False)):
            there = part(module)
            if there is not None and LAYER_OF[there] > LAYER_OF[here]:
                bad.append(f"{path.relative_to(PACKAGE.parent)} ({here}) imports {module} ({there})")
    return bad


def test_every_import_points_down_the_layers():
    assert upward_imports() == []


def test_store_config_and_data_never_import_training_or_the_dashboard():
    for where in ("store", "config.py", "data", "events.py", "machine"):
        assert offenders(where, ("resnet_tui.training", "resnet_tui.tui", "textual"), False) == {}


def offenders(where: str, banned: tuple[str, ...], module_level_only: bool) -> dict[str, set[str]]:
    """Imports of ``banned`` modules in the file or folder ``where`` (under resnet_tui/)."""
    bad = {}
    target = PACKAGE / where
    for path in [target] if target.is_file() else sorted(target.rglob("*.py")):
        hits = {name for name in imports(path, module_level_only)
                if any(name == b or name.startswith(b + ".") for b in banned)}
        if hits:
            bad[str(path.relative_to(PACKAGE.parent))] = hits
    return bad


def test_training_never_imports_the_ui():
    assert offenders("training", ("textual", "rich", "textual_plotext", "resnet_tui.tui"), False) == {}


def test_the_dashboard_never_imports_keras_or_tensorflow_at_module_level():
    assert offenders("tui", ("keras", "tensorflow"), True) == {}


def test_the_checkers_see_imports(tmp_path):
    """The scans above would notice a violation (so their empty answers mean something)."""
    assert "keras" in imports(PACKAGE / "training" / "callbacks.py", True)
    assert "textual.app" in imports(PACKAGE / "tui" / "app.py", True)
    upward = tmp_path / "runs.py"
    upward.write_text("def f():\n    from resnet_tui.training.trainer import Trainer\n")
    assert "resnet_tui.training.trainer" in imports(upward, False)
    assert LAYER_OF[part("resnet_tui.training.trainer")] > LAYER_OF[part("resnet_tui.store.runs")]


@pytest.mark.parametrize("module", ["resnet_tui.tui.app", "resnet_tui.cli", "resnet_tui.config", "resnet_tui.store.runs"])
def test_importing_the_dashboard_does_not_load_tensorflow(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
