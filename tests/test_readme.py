"""The README's quick start is what CI runs, and what `chainrule reproduce` prints."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands():
    """The shell lines of the fenced code blocks in the README's "Quick start" section,
    one list per block, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Quick start\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```(?:bash|sh|shell|console)?\s*\n(.*?)^```", match.group(1),
                        re.M | re.S)
    return [[line.strip() for line in block.splitlines() if line.strip()] for block in blocks]


def test_quick_start_has_exactly_two_commands():
    blocks = _quick_start_commands()
    assert len(blocks) == 2, blocks
    assert all(len(block) == 1 for block in blocks), blocks


def test_first_command_installs_and_reproduces():
    first = _quick_start_commands()[0][0]
    assert "pip install" in first
    assert "chainrule reproduce" in first


def test_ci_runs_the_readme_test_command_verbatim():
    lines = [line for block in _quick_start_commands() for line in block]
    test_lines = [line for line in lines if "pytest" in line]
    assert len(test_lines) == 1, test_lines
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_lines[0] in [line.strip() for line in ci], (test_lines[0], ci)
    # It installs the test extras, which hold the oracle (torch) and hypothesis.
    assert ".[test]" in test_lines[0]


def test_readme_numbers_match_the_reproduction():
    # The figures the README quotes are the ones `chainrule reproduce` must print
    # (checked against the homework in test_reproduce.py).
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "loss = 0.0696" in text and "test set accuracy = 0.953" in text


def _python_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\s*\n(.*?)^```", text, re.M | re.S)


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    # Every Python example in the README runs as printed (in a scratch directory,
    # since the saving example writes files), so the README cannot rot.
    blocks = _python_blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    # One namespace for all blocks: the README reads as one session, top to bottom.
    namespace = {"__name__": "readme_example"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    # The figures the README states in its comments are the ones printed.
    assert "0.953" in out
    # (the scikit-learn examples: scikit-learn's own MLPClassifier prints the same)
    assert "0.9733333333333334 161 [(64, 100), (100, 10)]" in out and "0.9711111" in out
    assert "dW1 = X^T @ dZ1 : (64, N) @ (N, 128) -> (64, 128)" in out
    assert "0.297 0.927" in out   # the hand-written loop's validation loss and accuracy
    assert (tmp_path / "model.npz").exists() and (tmp_path / "model.onnx").exists()
