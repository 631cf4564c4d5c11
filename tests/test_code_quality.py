"""The repository stays clean under its own linters: ruff (pyflakes, pycodestyle, import
order, bugbear) and mypy over the package, with the configuration in pyproject.toml.

They run here so that `python -m pytest -q`, which CI runs, keeps them clean.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_ruff_finds_nothing():
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_finds_nothing(tmp_path):
    result = _run("mypy", "--cache-dir", str(tmp_path / "mypy_cache"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_the_package_declares_its_types():
    # PEP 561: the marker must sit in the package and be installed with it.
    assert (ROOT / "src" / "chainrule" / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'chainrule = ["py.typed"]' in pyproject
