"""The layer order is a checked contract (pyproject.toml's import-linter "layers"), and it catches an upward import.

    .venv/bin/pytest tests/test_architecture.py       # or `lint-imports` in the repository root
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the llmlab package under `root`, with `root`'s pyproject.toml."""
    script = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy under root, not the installed package
    return subprocess.run([str(script), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True)


def test_the_layers_contract_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "llmlab layers KEPT" in result.stdout


def test_a_planted_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "llmlab", tmp_path / "llmlab", ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    scoring = tmp_path / "llmlab" / "eval" / "scoring.py"
    scoring.write_text(scoring.read_text() + "\nfrom llmlab.train import loop  # planted: eval may not import train\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "llmlab.eval is not allowed to import llmlab.train" in result.stdout
    assert "llmlab.eval.scoring -> llmlab.train.loop" in result.stdout
