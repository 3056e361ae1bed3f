"""Layers only point down: pyproject's ``[tool.importlinter]`` contracts, checked by import-linter.

``scripts/test.sh`` runs ``lint-imports`` too; this test makes ``pytest`` alone catch a violation,
and shows the contracts bite: the same package with one upward import, a Textual import in the
core or an import cycle is refused, naming the import. The tests keep a rule of their own: no test
module imports another (what they share is in a conftest.py or in tests/fixtures/).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the ``supportdesk`` package found under ``src``, with the project's contracts."""
    code = "import sys\nfrom importlinter.cli import lint_imports_command\nsys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                          env=dict(os.environ, PYTHONPATH=str(src)), cwd=src, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_import_contracts_hold():
    import supportdesk

    run = lint_imports(Path(supportdesk.__file__).parents[1])  # the package these tests import
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Contracts: 3 kept, 0 broken." in run.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("kb/calibration.py", "from supportdesk.answers import pipeline",
     "supportdesk.kb is not allowed to import supportdesk.answers"),
    ("models/adapters.py", "from supportdesk.training import gguf_lora",
     "supportdesk.models is not allowed to import supportdesk.training"),
    ("cpu.py", "from supportdesk.kb import embeddings",
     "supportdesk.cpu is not allowed to import supportdesk.kb"),
    ("training/background.py", "from supportdesk.cli import adapter",
     "supportdesk.training is not allowed to import supportdesk.cli"),
    ("answers/pipeline.py", "import textual",
     "supportdesk.answers.pipeline -> textual"),
    ("kb/embedding_model.py", "from supportdesk.kb import onnx_embedder",
     "No cycles are allowed in supportdesk.kb"),
])
def test_a_deliberate_bad_import_is_refused(tmp_path, module, line, broken):
    import supportdesk

    copy = tmp_path / "src" / "supportdesk"
    shutil.copytree(Path(supportdesk.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    run = lint_imports(copy.parent)
    assert run.returncode == 1, run.stdout + run.stderr
    assert broken in run.stdout, run.stdout


def test_no_test_module_imports_another():
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {name}" for name in names
                      if name.rsplit(".", 1)[-1].startswith("test_")]
    assert not found, "shared helpers go to a conftest.py or tests/fixtures/:\n" + "\n".join(found)
