"""The tools configured in ``pyproject.toml`` pass on the whole checkout: ``ruff check .`` (the
rules of ``[tool.ruff.lint]``, line length 100), run by the ruff of the test environment (the
``test`` extra of setup.cfg installs it)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pytest_and_ruff_are_configured_in_pyproject_only():
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert {"pytest", "ruff"} <= tools.keys()
    assert {"E", "W", "F", "I", "UP"} <= set(tools["ruff"]["lint"]["select"])
    assert "[tool:pytest]" not in (ROOT / "setup.cfg").read_text()
