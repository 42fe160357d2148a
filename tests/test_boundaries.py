"""The layering, checked from the source: training knows nothing of Textual, the
dashboard nothing of Keras at import time, and the first screen paints before
TensorFlow loads."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_tui"


def imports(path: Path, module_level_only: bool) -> set[str]:
    """Top-level package names ``path`` imports (only its module-level statements if asked)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def offenders(folder: str, banned: tuple[str, ...], module_level_only: bool) -> dict[str, set[str]]:
    bad = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        hits = {name for name in imports(path, module_level_only)
                if any(name == b or name.startswith(b + ".") for b in banned)}
        if hits:
            bad[str(path.relative_to(PACKAGE.parent))] = hits
    return bad


def test_training_never_imports_the_ui():
    assert offenders("training", ("textual", "rich", "textual_plotext", "resnet_tui.tui"), False) == {}


def test_the_dashboard_never_imports_keras_or_tensorflow_at_module_level():
    assert offenders("tui", ("keras", "tensorflow"), True) == {}


def test_the_checker_sees_imports():
    """The scan above would notice a violation (so its empty answer means something)."""
    assert "keras" in imports(PACKAGE / "training" / "callbacks.py", True)
    assert "textual.app" in imports(PACKAGE / "tui" / "app.py", True)


@pytest.mark.parametrize("module", ["resnet_tui.tui.app", "resnet_tui.cli", "resnet_tui.config", "resnet_tui.runs"])
def test_importing_the_dashboard_does_not_load_tensorflow(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
