"""The import arrows docs/architecture.md promises, read from the source (issue 23 §4).

Every ``import`` counts, inside functions too: a lazy import is still an arrow. Rules:
the core never imports a plugin or an app; a plugin never imports an app or another plugin; compute packages never import the UI (the app's
auth and body limits are HTTP plumbing the labeling API shares); ``workbench.preference`` never imports ``workbench.labeling``
(labeling owns votes as data and calls the statistics; preference declares what it reads
as ``VoteSource``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPUTE = ("activations", "compare", "data", "geometry", "lenses", "models", "preference", "sae", "steering", "training", "labeling")


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(m for m in imports_of(path) if m.startswith(forbidden))
        found += [f"{path.relative_to(ROOT)} imports {m}" for m in bad]
    return found


def test_the_core_never_imports_a_plugin_or_an_app() -> None:
    assert offenders("workbench", ("plugins", "apps")) == []


def test_plugins_never_import_an_app() -> None:
    """An app is an entry point over plugins (``apps/labeling_server.py`` calls ``plugins.labeling.server``), never the reverse."""
    assert offenders("plugins", ("apps",)) == []


@pytest.mark.parametrize("package", COMPUTE)
def test_compute_never_imports_the_app(package: str) -> None:
    ui = ("workbench.app.ui", "workbench.app.shell", "workbench.app.job_ui", "workbench.app.panel_views", "workbench.cli", "gradio", "panel")
    assert offenders(f"workbench/{package}", ui) == []


def test_preference_never_imports_labeling() -> None:
    assert offenders("workbench/preference", ("workbench.labeling",)) == []


def test_no_plugin_imports_another() -> None:
    """What two plugins share lives in the core (the loop panel fits through workbench.*, not the Steering tab's actions)."""
    plugins = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists())
    found = []
    for name in plugins:
        found += offenders(f"plugins/{name}", tuple(f"plugins.{other}" for other in plugins if other != name))
    assert found == []


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    """A rule that cannot see an import inside a function would pass on anything."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from workbench.labeling.sessions import LabelingStore\n    import plugins.runs\n")
    assert {"workbench.labeling.sessions", "plugins.runs"} <= imports_of(module)
